"""httpx's failures and HTTP error answers turned into the core's error family: HTTPStatusError
and its kinds (errors.py) for a status, ConnectionFailed, TLSError with its cause and Timeout for
the transport."""

from __future__ import annotations

import socket
import ssl

import httpx

from ..dicom.ae import classify_tls_error, client_ssl_context
from ..errors import ConnectionFailed, DICOMNetworkError, Timeout, TLSCause, TLSError
from ..records import ServerProfile, TLSConfiguration
from .errors import AccessDenied, AuthenticationFailed, HTTPStatusError, NotFoundAtURL


def status_error(response: httpx.Response, what: str, profile: ServerProfile) -> HTTPStatusError:
    """The typed error for an HTTP error answer, with what to do in words."""
    status, url = response.status_code, str(response.request.url)
    body = ""
    try:
        body = " ".join(response.text.split())[:300]
    except Exception:  # noqa: BLE001 - a body that cannot be read adds nothing
        body = ""
    web = profile.web
    if status == 401:
        if web is None or web.auth.value == "none":
            hint = "the server asks for a user and password or a token: set the profile's authentication"
        elif web.auth.value == "basic":
            hint = f"the server did not accept user {web.username!r} with this password: check both"
        else:
            hint = "the server did not accept the token: it may have expired; get a new one"
        return AuthenticationFailed(status, url, what, hint, body)
    if status == 403:
        return AccessDenied(status, url, what, "the server refuses this to this user (ask its administrator "
                                              "for the right to query, retrieve or store)", body)
    if status == 404:
        return NotFoundAtURL(status, url, what, "nothing at this address: check the DICOMweb root in the profile "
                                               "(e.g. https://host/dicom-web), or the item is gone", body)
    if status == 406:
        hint = "the server cannot send what we asked for in any form we accept"
    elif status == 413:
        hint = "the server refuses a request this large: send in smaller batches"
    elif status == 415:
        hint = "the server does not accept this kind of content"
    elif status in (502, 503, 504):
        hint = "the server or a gateway in front of it is down or overloaded: try again later"
    elif status >= 500:
        hint = "the server failed (its log says why)"
    else:
        hint = ""
    return HTTPStatusError(status, url, what, hint, body)


def _cause(exc: BaseException, kind: type) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        current = current.__cause__ or current.__context__
    return None


def transport_error(exc: httpx.HTTPError, profile: ServerProfile, what: str) -> DICOMNetworkError:
    """httpx's failure as one of ours (ConnectionFailed, TLSError, Timeout)."""
    host, port = profile.host, profile.port
    detail = f"{type(exc).__name__}: {exc}"
    tls_failure = _cause(exc, ssl.SSLError)
    if tls_failure is not None:
        return classify_tls_error(tls_failure, profile.tls, host, port)
    if isinstance(exc, httpx.TimeoutException):
        phase = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
        seconds = profile.timeouts.connect if isinstance(exc, httpx.ConnectTimeout) else profile.timeouts.dimse
        return Timeout(f"{phase} {host}:{port} ({what})", seconds, detail)
    if _cause(exc, socket.gaierror) is not None:
        return ConnectionFailed(host, port, "the host name cannot be resolved", detail,
                                hint="check the URL in the profile")
    if _cause(exc, ConnectionRefusedError) is not None:
        return ConnectionFailed(host, port, "connection refused: nothing listens on that port", detail,
                                hint="check the URL's port, and that the server runs")
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc) \
            and profile.web is not None and profile.web.https:
        explained = _closed_after_handshake(profile)
        if explained is not None:
            return explained
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        reason = "the server closed the connection"
        if profile.web is not None and not profile.web.https:
            reason += " (does it expect https://?)"
        return ConnectionFailed(host, port, reason, detail)
    if isinstance(exc, httpx.UnsupportedProtocol) or isinstance(exc, httpx.InvalidURL):
        return ConnectionFailed(host, port, "the URL cannot be used", detail)
    return ConnectionFailed(host, port, str(exc) or type(exc).__name__, detail)


def _closed_after_handshake(profile: ServerProfile) -> TLSError | None:
    """Why an HTTPS server hung up before answering, when TLS is why. With TLS 1.3 a server that
    refuses our client certificate (or its absence) does so after the handshake: the client sees
    only a closed connection. One more connection, a request, and what comes back tells."""
    tls = profile.tls or TLSConfiguration()
    host, port = profile.host, profile.port
    try:
        context = client_ssl_context(tls, host, port)
        with socket.create_connection((host, port), timeout=profile.timeouts.connect) as raw:
            with context.wrap_socket(raw, server_hostname=tls.server_name or host) as sock:
                sock.settimeout(profile.timeouts.connect)
                sock.sendall(b"HEAD / HTTP/1.0\r\nHost: " + host.encode("idna") + b"\r\n\r\n")
                data = sock.recv(1)
    except TLSError as error:
        return error
    except ssl.SSLError as error:
        return classify_tls_error(error, profile.tls, host, port)
    except OSError:
        return None
    if data:
        return None  # it answers now: not a TLS matter
    cause = TLSCause.CLIENT_CERT_REFUSED if tls.certificate else TLSCause.CLIENT_CERT_REQUIRED
    return TLSError(cause, host, port, "the server closed the connection right after the TLS handshake, "
                                       "without an answer (TLS 1.3 refuses a client certificate this way)")
