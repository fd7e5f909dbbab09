"""The DICOMweb peers of the lab, as fixtures for every test folder (registered in tests/conftest.py,
so that tests/web and tests/ui share one Orthanc of each kind per session).

Session-scoped:
    web_orthanc        plain HTTP, no authentication, the lab data loaded (66 instances)
    web_orthanc_secure HTTPS (the lab's server certificate), HTTP basic authentication
                       (alice / "correct horse"), no data
    web_orthanc_mtls   HTTPS requiring a client certificate signed by the lab's CA, no data
    web_big_orthanc    web_big_study (100 CT instances), read only
Per test: fresh_web_orthanc (empty, to store into).
Helpers: web_profile(peer, **endpoint) -> a DICOMweb ServerProfile for a peer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pacsbrowser.core.records import DICOMwebEndpoint, ServerProfile, Timeouts, TLSConfiguration
from tests.lab.certs import LabCerts
from tests.lab.data import Catalog
from tests.lab.peers import LabError, stop_all
from tests.lab.web import WebOrthancPeer

USER, PASSWORD = "alice", "correct horse"


def web_profile(peer: WebOrthancPeer, *, tls: TLSConfiguration | None = None, timeout: float = 30.0,
                **endpoint: Any) -> ServerProfile:
    return ServerProfile.dicomweb("lab dicomweb", DICOMwebEndpoint(endpoint.pop("url", peer.url), **endpoint),
                                  tls=tls, timeouts=Timeouts.uniform(timeout))


def _start(peer: WebOrthancPeer, what: str, files: Any = None) -> WebOrthancPeer:
    try:
        peer.start()
        if files is not None:
            peer.load(files)
    except LabError as exc:
        peer.stop()
        pytest.fail(f"{what} could not be started: {exc}", pytrace=False)
    return peer


@pytest.fixture(scope="session")
def web_orthanc(lab_data: Catalog, _lab_peers: list[Any]) -> WebOrthancPeer:
    peer = WebOrthancPeer(aet="WEBORTHANC")
    _lab_peers.append(peer)
    return _start(peer, "Orthanc with DICOMweb", lab_data.paths())


@pytest.fixture(scope="session")
def web_orthanc_secure(certs: LabCerts, _lab_peers: list[Any]) -> WebOrthancPeer:
    peer = WebOrthancPeer(aet="WEBSECURE", https=certs, users={USER: PASSWORD})
    _lab_peers.append(peer)
    return _start(peer, "Orthanc with DICOMweb over HTTPS")


@pytest.fixture(scope="session")
def web_orthanc_mtls(certs: LabCerts, _lab_peers: list[Any]) -> WebOrthancPeer:
    peer = WebOrthancPeer(aet="WEBMTLS", https=certs, client_certificates=True)
    _lab_peers.append(peer)
    return _start(peer, "Orthanc with DICOMweb over HTTPS with client certificates")


@pytest.fixture
def fresh_web_orthanc() -> Iterator[WebOrthancPeer]:
    """An empty Orthanc with DICOMweb for one test (to store into)."""
    peer = WebOrthancPeer(aet="WEBFRESH")
    _start(peer, "Orthanc with DICOMweb")
    try:
        yield peer
    finally:
        stop_all([peer])


@pytest.fixture(scope="session")
def web_big_study(lab_dir: Any) -> Any:
    """100 CT instances of 256 x 256 in 2 series, every tenth RLE Lossless (tests/retrieve's maker)."""
    from tests.retrieve.helpers import make_big_study

    return make_big_study(lab_dir / "web-big", 100, size=256, label="webbig", rle_every=10)


@pytest.fixture(scope="session")
def web_big_orthanc(web_big_study: Any, _lab_peers: list[Any]) -> WebOrthancPeer:
    """An Orthanc with DICOMweb holding web_big_study (read only): served by WADO-RS and by C-GET."""
    peer = WebOrthancPeer(aet="WEBBIG")
    _lab_peers.append(peer)
    return _start(peer, "Orthanc with DICOMweb", web_big_study.paths())
