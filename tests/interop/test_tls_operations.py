"""Issue 15, item 6 and the TLS part of its "Show": find, get, move and send against the DICOM TLS
Orthanc (orthanc_tls: client certificate required), not only echo; and the on-demand C-MOVE
listener, which was plain TCP on every interface and accepted anyone: it now speaks the profile's
TLS (Orthanc reaches it with "UseDicomTls"), accepts only the PACS's AE title plus the allow-list,
and binds the address we reach the PACS from (loopback here)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.client import DICOMClient
from pacsbrowser.core.errors import ListenerError
from pacsbrowser.core.query import QueryService
from pacsbrowser.core.records import TLSConfiguration
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.store import StoreService
from tests.lab.client import profile_for, run
from tests.lab.data import Catalog, lab_uid
from tests.lab.peers import OrthancPeer, free_port

pytestmark = pytest.mark.timeout(120)

MOVE_AE = "PBTLSMOVE"  # our AE title for the TLS C-MOVEs: Orthanc knows it as a UseDicomTls modality


def _tls(certs) -> TLSConfiguration:
    # Our certificate: the lab's "server" pair (serverAuth and clientAuth), as a workstation that is
    # both a TLS client (find, get, send) and a TLS server (its C-MOVE listener) would carry.
    return TLSConfiguration(certificate=certs.server_cert, key=certs.server_key, ca_certificate=certs.ca_cert)


@pytest.fixture
def tls_move_port(orthanc_tls: OrthancPeer) -> Iterator[int]:
    """A port for our TLS listener that orthanc_tls knows as MOVE_AE with UseDicomTls; removed after."""
    port = free_port()
    orthanc_tls.add_modality("pbtlsmove", MOVE_AE, "127.0.0.1", port, UseDicomTls=True)
    yield port
    orthanc_tls.rest("/modalities/pbtlsmove", "DELETE")
    orthanc_tls.modalities.pop("pbtlsmove", None)


def _echo(port: int, calling: str, *, tls: ssl.SSLContext | None = None) -> bool:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 10
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="ANY", tls_args=(tls, None) if tls else None)
    try:
        return bool(assoc.is_established and assoc.send_c_echo().Status == 0)
    finally:
        if assoc.is_established:
            assoc.release()


def _client_context(certs, *, certificate: bool = True) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(certs.ca_cert))
    if certificate:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


def test_tls_find(orthanc_tls: OrthancPeer, lab_data: Catalog, certs):
    profile = profile_for(orthanc_tls, tls=_tls(certs))
    service = QueryService(DICOMClient.from_profile(profile), profile, cancel_timeout=5.0)

    async def main():
        return await service.find_studies().collect()

    studies = run(main(), timeout=60)
    assert {s.study_instance_uid for s in studies} == {s.uid for s in lab_data.studies}


def test_tls_get(orthanc_tls: OrthancPeer, lab_data: Catalog, certs, archive: Archive):
    service = RetrieveService(profile_for(orthanc_tls, tls=_tls(certs)), archive, cancel_timeout=3.0)
    study = lab_data.studies[0]
    summary = run(service.get_study(study.uid).wait(), timeout=60)
    assert summary.complete, summary.reasons
    assert summary.received == study.instance_count == len(archive.instances(study_uid=study.uid))


def test_tls_move_to_our_tls_listener(orthanc_tls: OrthancPeer, lab_data: Catalog, certs, archive: Archive,
                                      tls_move_port: int):
    """A TLS profile whose C-MOVE destination (us) is reached over TLS: Orthanc's modality has
    UseDicomTls; our on-demand listener speaks TLS with the profile's certificate and checks
    Orthanc's against the profile's CA. The study arrives."""
    profile = profile_for(orthanc_tls, tls=_tls(certs), calling_ae=MOVE_AE, listener_port=tls_move_port)
    service = RetrieveService(profile, archive, cancel_timeout=3.0)  # listener_host: where we reach the PACS from
    study = lab_data.studies[1]
    summary = run(service.move_study(study.uid).wait(), timeout=60)
    assert summary.complete, summary.reasons
    assert summary.received == study.instance_count == len(archive.instances(study_uid=study.uid))


def test_tls_send(orthanc_tls: OrthancPeer, lab_data: Catalog, certs, workdir: Path):
    source = pydicom.dcmread(lab_data.instances_of_study(lab_data.studies[0].uid)[0].path)
    source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = lab_uid("tls-send", "instance")
    path = workdir / "sent.dcm"
    source.save_as(path, enforce_file_format=True)
    service = StoreService(profile_for(orthanc_tls, tls=_tls(certs)), parallel=1)
    try:
        summary = run(service.store(path), timeout=60)
        assert len(summary.stored) == 1 and not summary.failed and summary.error is None
        assert orthanc_tls.lookup(str(source.SOPInstanceUID))
    finally:
        orthanc_tls.delete_uid(str(source.SOPInstanceUID))


def test_the_on_demand_listener_takes_only_the_pacs_and_the_allow_list(orthanc: OrthancPeer, archive: Archive):
    """Plain profile: the listener binds the address we reach the PACS from (loopback), and accepts
    the PACS's AE title and the allow-list only."""
    profile = profile_for(orthanc, listener_port=free_port())
    service = RetrieveService(profile, archive, listener_allowed=["FRIEND"])

    async def main() -> None:
        async with service.listening() as scp:
            host, port = scp.address
            assert host == "127.0.0.1"
            assert await asyncio.to_thread(_echo, port, orthanc.aet)
            assert await asyncio.to_thread(_echo, port, "FRIEND")
            assert not await asyncio.to_thread(_echo, port, "STRANGER")

    run(main(), timeout=60)


def test_the_on_demand_listener_speaks_the_profiles_tls(orthanc_tls: OrthancPeer, certs, archive: Archive):
    profile = profile_for(orthanc_tls, tls=_tls(certs), listener_port=free_port())
    service = RetrieveService(profile, archive)

    async def main() -> None:
        async with service.listening() as scp:
            host, port = scp.address
            assert host == "127.0.0.1"
            assert await asyncio.to_thread(_echo, port, orthanc_tls.aet, tls=_client_context(certs))
            assert not await asyncio.to_thread(_echo, port, orthanc_tls.aet)  # plain TCP: no
            assert not await asyncio.to_thread(_echo, port, orthanc_tls.aet,  # no client certificate: no
                                               tls=_client_context(certs, certificate=False))

    run(main(), timeout=60)


def test_a_tls_move_without_our_certificate_says_what_is_missing(orthanc_tls: OrthancPeer, certs, archive: Archive):
    for tls, words in ((TLSConfiguration(ca_certificate=certs.ca_cert), "certificate and key"),
                       (replace(_tls(certs), ca_certificate=None), "CA certificate")):
        service = RetrieveService(profile_for(orthanc_tls, tls=tls, listener_port=free_port()), archive)

        async def main(service: RetrieveService = service) -> None:
            async with service.listening():
                pass

        with pytest.raises(ListenerError, match=words):
            run(main(), timeout=30)
