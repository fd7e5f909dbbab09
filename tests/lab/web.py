"""Orthanc with its DICOMweb plugin (Debian package orthanc-dicomweb), for the DICOMweb tests.

    peer = WebOrthancPeer(https=certs, users={"alice": "secret"}, client_certificates=True).start()
    peer.url            # https://127.0.0.1:<port>/dicom-web
    peer.rest("/statistics")   # Orthanc's REST API, over the same HTTPS, user and client certificate

``https=certs`` turns Orthanc's HTTP server to HTTPS (SslEnabled, SslCertificate = the lab's server
certificate and key in one PEM); ``users`` turns HTTP basic authentication on (RegisteredUsers);
``client_certificates`` requires a client certificate signed by the lab's CA (SslVerifyPeers,
SslTrustedClientCertificates). Everything stays on 127.0.0.1 (the lab's loopback shim).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from .certs import LabCerts
from .peers import LOOPBACK, LabError, OrthancPeer

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

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def url(self) -> str:
        """The DICOMweb root."""
        return f"{self.scheme}://{LOOPBACK}:{self.http_port}{ROOT}"

    def configuration(self) -> dict[str, Any]:
        if not DICOMWEB_PLUGIN.is_file():
            raise LabError(f"{DICOMWEB_PLUGIN} not found: the DICOMweb tests need the Debian package "
                           "'orthanc-dicomweb'")
        config = super().configuration()
        config["Plugins"] = [str(DICOMWEB_PLUGIN)]
        config["DicomWeb"] = {"Enable": True, "Root": f"{ROOT}/", "EnableWado": False, "Ssl": bool(self.https),
                              "StudiesMetadata": "MainDicomTags", "SeriesMetadata": "MainDicomTags"}
        if self.https:
            pem = self.workdir / "https.pem"  # Orthanc wants the certificate and its key in one file
            pem.write_text(self.https.server_cert.read_text() + self.https.server_key.read_text())
            config.update({"SslEnabled": True, "SslCertificate": str(pem)})
            if self.client_certificates:
                config.update({"SslVerifyPeers": True,
                               "SslTrustedClientCertificates": str(self.https.ca_cert)})
        if self.users:
            config.update({"AuthenticationEnabled": True, "RegisteredUsers": self.users})
        return config

    # -- Orthanc's REST API over the same HTTP(S), user and client certificate

    def _http_client(self, timeout: float) -> httpx.Client:
        if self._client is None:
            verify: ssl.SSLContext | bool = False
            if self.https:
                verify = ssl.create_default_context(cafile=str(self.https.ca_cert))
                if self.client_certificates:
                    verify.load_cert_chain(str(self.https.client_cert), str(self.https.client_key))
            auth = None
            if self.users:
                user, password = next(iter(self.users.items()))
                auth = httpx.BasicAuth(user, password)
            self._client = httpx.Client(base_url=f"{self.scheme}://{LOOPBACK}:{self.http_port}", verify=verify,
                                        auth=auth, timeout=timeout, trust_env=False)
        return self._client

    def _close_http(self) -> None:
        super()._close_http()
        if getattr(self, "_client", None) is not None:
            self._client.close()
            self._client = None

    def rest(self, path: str, method: str = "GET", body: bytes | str | Any = None, *,
             raw: bool = False, timeout: float = 30.0) -> Any:
        if isinstance(body, str):
            payload: bytes | None = body.encode()
        elif body is None or isinstance(body, bytes | bytearray):
            payload = body
        else:
            payload = json.dumps(body).encode()
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
