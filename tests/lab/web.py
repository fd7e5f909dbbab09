"""Orthanc with its DICOMweb plugin (Debian package orthanc-dicomweb), for the DICOMweb tests.

    peer = WebOrthancPeer(https=certs, users={"alice": "secret"}, client_certificates=True).start()
    peer.url            # https://127.0.0.1:<port>/dicom-web
    peer.rest("/statistics")   # Orthanc's REST API, over the same HTTPS, user and client certificate

``https=certs`` serves the DICOMweb root over HTTPS with the lab's server certificate;
``client_certificates`` then requires a client certificate signed by the lab's CA; ``users`` turns
Orthanc's HTTP basic authentication on (AuthenticationEnabled, RegisteredUsers). Everything stays on
127.0.0.1 (the lab's loopback shim).

HTTPS is not Orthanc's own: Debian 12's Orthanc 1.10.1 crashes on the first HTTPS request with
SslEnabled (its civetweb 1.15 calls an OpenSSL 1.1 function that OpenSSL 3 lacks: SIGSEGV at a NULL
function pointer, seen in gdb). A TLS front (tls_proxy.py, a lab process like the peers) listens on
`https_port` and forwards to Orthanc's plain HTTP port; `url` names the front.

What else its DICOMweb plugin 1.7 does, as found (the client copes; see core/web):
- QIDO-RS query values are not percent-decoded: `PatientName=DOE%2A` matches nothing, `DOE*` works,
  and non-ASCII values (which must be percent-encoded) never match. The wildcard `?` matches
  nothing either. core/web/qido.py sends a widened `*` variant and matches the answers itself.
- Several ModalitiesInStudy values are separated by commas (a backslash matches nothing).
- STOW-RS: an instance a Lua ReceivedInstanceFilter refuses ("FilteredOut") is reported as stored;
  a part Orthanc cannot index (no Series Instance UID) comes back in FailedSOPSequence (0xC000) in
  an HTTP 400 answer whose body is DICOM JSON without a Content-Type.
- `transfer-syntax=*` in WADO-RS's Accept gives each instance in the syntax it is stored in.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from .certs import LabCerts
from .peers import LOOPBACK, LabError, OrthancPeer, _PeerProcess, free_port, rest_payload

DICOMWEB_PLUGIN = Path("/usr/lib/orthanc/libOrthancDicomWeb.so.1.7")
ROOT = "/dicom-web"


class WebOrthancPeer(OrthancPeer):
    package = "orthanc-dicomweb"

    def __init__(self, *, https: LabCerts | None = None, users: Mapping[str, str] | None = None,
                 client_certificates: bool = False, **options: Any) -> None:
        super().__init__(**options)
        if client_certificates and https is None:
            raise LabError("client certificates need https")
        self.https = https
        self.users = dict(users or {})
        self.client_certificates = client_certificates
        self._client: httpx.Client | None = None

        self.front: TLSFront | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def url(self) -> str:
        """The DICOMweb root (behind the TLS front with https)."""
        port = self.front.port if self.front is not None else self.http_port
        return f"{self.scheme}://{LOOPBACK}:{port}{ROOT}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> "WebOrthancPeer":
        super().start(timeout, attempts)
        if self.https is not None and self.front is None:
            self.front = TLSFront(self.http_port, self.https, self.client_certificates, workdir=self.workdir)
            try:
                self.front.start()
            except LabError:
                self.front.stop()
                self.front = None
                super().stop()
                raise
        return self

    def begin_stop(self) -> None:
        if self.front is not None:
            self.front.begin_stop()
        super().begin_stop()

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()
            self.front = None
        super().stop()

    def configuration(self) -> dict[str, Any]:
        if not DICOMWEB_PLUGIN.is_file():
            raise LabError(f"{DICOMWEB_PLUGIN} not found: the DICOMweb tests need the Debian package "
                           "'orthanc-dicomweb'")
        config = super().configuration()
        config["Plugins"] = [str(DICOMWEB_PLUGIN)]
        config["DicomWeb"] = {"Enable": True, "Root": f"{ROOT}/", "EnableWado": False, "Ssl": bool(self.https),
                              "StudiesMetadata": "MainDicomTags", "SeriesMetadata": "MainDicomTags"}
        if self.users:
            config.update({"AuthenticationEnabled": True, "RegisteredUsers": self.users})
        return config

    # -- Orthanc's REST API over the same HTTP(S), user and client certificate

    def _http_client(self, timeout: float) -> httpx.Client:
        """Orthanc's own (plain) HTTP port, with the user when authentication is on."""
        if self._client is None:
            auth = None
            if self.users:
                user, password = next(iter(self.users.items()))
                auth = httpx.BasicAuth(user, password)
            self._client = httpx.Client(base_url=f"http://{LOOPBACK}:{self.http_port}", auth=auth, timeout=timeout,
                                        trust_env=False)
        return self._client

    def _close_http(self) -> None:
        super()._close_http()
        if getattr(self, "_client", None) is not None:
            self._client.close()
            self._client = None

    def rest(self, path: str, method: str = "GET", body: bytes | str | Any = None, *,
             raw: bool = False, timeout: float = 30.0) -> Any:
        payload = rest_payload(body)
        try:
            response = self._http_client(timeout).request(method, path, content=payload, timeout=timeout)
        except httpx.HTTPError as exc:
            self._close_http()
            raise LabError(f"Orthanc {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            raise LabError(f"Orthanc {method} {path}: HTTP {response.status_code}: {response.content[:2000]!r}")
        if raw:
            return response.content
        if response.headers.get("Content-Type", "").startswith("application/json") and response.content:
            return response.json()
        return response.content


class TLSFront(_PeerProcess):
    """tls_proxy.py as a lab process: HTTPS on `port` (the lab's server certificate; with
    `client_certificates`, a client certificate signed by the lab's CA required), forwarded to
    `target` on loopback."""

    binary = Path(sys.executable)
    package = "python3"
    label = "tls-front"

    def __init__(self, target: int, certs: LabCerts, client_certificates: bool, *, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.target, self.certs, self.client_certificates = target, certs, client_certificates
        self.port = free_port()

    def _pick_ports(self) -> None:
        self.port = free_port()

    def _ports(self) -> list[int]:
        return [self.port]

    def _command(self) -> list[str]:
        command = [str(self.binary), str(Path(__file__).with_name("tls_proxy.py")), "--listen", str(self.port), "--target",
                   str(self.target), "--cert", str(self.certs.server_cert), "--key", str(self.certs.server_key)]
        if self.client_certificates:
            command += ["--client-ca", str(self.certs.ca_cert)]
        return command
