"""How the window names a server and its services: AE titles and C-FIND / C-GET / C-MOVE for a DICOM
network (DIMSE) profile, the URL and QIDO-RS / WADO-RS / STOW-RS for a DICOMweb one. Qt-free."""

from __future__ import annotations

from ..core.records import RetrieveMethod, ServerProfile, WebAuth

_AUTH_WORDS = {WebAuth.NONE: "no authentication", WebAuth.BASIC: "HTTP basic authentication",
               WebAuth.BEARER: "a bearer token"}


def address(profile: ServerProfile) -> str:
    """Where the server is: "ORTHANC at pacs:4242", or the DICOMweb URL."""
    if profile.web is not None:
        return profile.web.base_url
    return f"{profile.called_ae} at {profile.host}:{profile.port}"


def transport(profile: ServerProfile) -> str:
    """TCP / TLS for DIMSE, HTTP / HTTPS for DICOMweb."""
    if profile.web is not None:
        return "HTTPS" if profile.web.https else "HTTP"
    return "TLS" if profile.tls else "TCP"


def retrieve_method(profile: ServerProfile) -> str:
    if profile.web is not None:
        return RetrieveMethod.WADO.value
    return RetrieveMethod.MOVE.value if profile.retrieve_method is RetrieveMethod.MOVE else RetrieveMethod.GET.value


def query_service(profile: ServerProfile | None) -> str:
    return "QIDO-RS" if profile is not None and profile.is_web else "C-FIND"


def send_service(profile: ServerProfile | None) -> str:
    return "STOW-RS" if profile is not None and profile.is_web else "C-STORE"


def echo_service(profile: ServerProfile | None) -> str:
    """What the Echo button sends."""
    return "a small QIDO-RS request" if profile is not None and profile.is_web else "C-ECHO"


def description(profile: ServerProfile) -> str:
    """One line for a tooltip: where it is and how we talk to it."""
    if profile.web is not None:
        who = f" as {profile.web.username}" if profile.web.auth is WebAuth.BASIC else ""
        return f"DICOMweb at {profile.web.base_url}, {_AUTH_WORDS[profile.web.auth]}{who}"
    return f"{profile.called_ae} at {profile.host}:{profile.port}, we are {profile.calling_ae}"


def test_steps(profile: ServerProfile | None) -> str:
    """What the connection test checks, for the Test button's tooltip."""
    if profile is not None and profile.is_web:
        return "Check every step: name, TCP, TLS, HTTP, a QIDO-RS request"
    return "Check every step: name, TCP, TLS, association, C-ECHO, C-FIND"
