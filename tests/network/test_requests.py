"""What our requests look like and how they end, against in-process peers (issue 15, items 1, 7, 13):

- every association we open keeps TCP keepalive on and a finite socket timeout after connect;
- C-FIND, C-GET, C-MOVE and C-STORE go out at priority MEDIUM (0000H), like DCMTK's;
- a C-MOVE to another AE survives a PACS that says nothing for longer than the DIMSE timeout (pending
  responses are optional), and still ends, as a timeout, when the PACS stays silent past the idle bound;
- a C-FIND answer whose identifier cannot be decoded is counted once;
- the files we write carry our own Implementation Class UID and version name;
- cancelling a retrieve task on a frozen link never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.archive.paths import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from pacsbrowser.core.client import DICOMClient
from pacsbrowser.core.dicom.find import find_contexts
from pacsbrowser.core.dicom.server import DicomServer, ServerSettings
from pacsbrowser.core.errors import RetrieveInterrupted
from pacsbrowser.core.query import QueryService
from pacsbrowser.core.records import RetrieveMethod, RetryPolicy, ServerProfile, Timeouts, TLSConfiguration
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.store import StoreService
from tests.lab.client import run
from tests.lab.relay import Relay

from .conftest import Pacs, profile_via
from .links import client_threads, no_client_threads
from .recording import UNDECODABLE, RecordingSCP

pytestmark = [pytest.mark.timeout(90)]

MEDIUM = 0x0000


def _profile(scp: RecordingSCP, timeouts: Timeouts = Timeouts(connect=5, acse=5, dimse=5, network=10),
             **changes) -> ServerProfile:
    options = dict(name="recording", host=scp.host, port=scp.port, called_ae=scp.ae_title,
                   retry=RetryPolicy(max_retries=0), timeouts=timeouts)
    options.update(changes)
    return ServerProfile(**options)


def test_our_sockets_keep_alive_and_never_block_for_good() -> None:
    with RecordingSCP() as scp:
        client = DICOMClient.from_profile(_profile(scp))

        async def inspect() -> tuple[int, float | None]:
            await client.associate()
            try:
                raw = client.association.dul.socket.socket
                return raw.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), raw.gettimeout()
            finally:
                await client.release()

        keepalive, timeout = run(inspect())
    assert keepalive == 1
    assert timeout is not None and 0 < timeout <= 60, timeout


def test_requests_go_out_at_priority_medium(pacs: Pacs, tmp_path: Path) -> None:
    move_file = pacs.study.instances[0].path
    with RecordingSCP(answers=(_study_answer("1"),), move_file=move_file,
                      destination=pacs.address) as scp:
        profile = _profile(scp)

        async def every_service() -> None:
            service = QueryService(DICOMClient.from_profile(profile), profile)
            await service.find_studies().collect()
            with Archive(tmp_path / "archive", durable=False) as archive:
                retrieve = RetrieveService(profile, archive, listener_host="127.0.0.1")
                try:
                    await retrieve.get_study("2.25.777").wait()
                except Exception:  # noqa: BLE001 - nothing to get: only the request matters here
                    pass
                try:
                    await retrieve.move_study("2.25.777", destination_ae="ELSEWHERE").wait()
                except Exception:  # noqa: BLE001 - likewise
                    pass
            await StoreService(profile, parallel=1).store(move_file)

        run(every_service())
        services = {service for service, _ in scp.priorities}
        assert {"C-FIND", "C-GET", "C-MOVE", "C-STORE"} <= services, scp.priorities
        assert all(priority == MEDIUM for _, priority in scp.priorities), scp.priorities


def _study_answer(uid: str, patient_id: str = "P1") -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = uid
    ds.PatientID = patient_id
    ds.PatientName = "RECORDED^ONE"
    return ds


def test_a_move_elsewhere_outlasts_a_silent_pacs_up_to_the_idle_bound(pacs: Pacs, tmp_path: Path) -> None:
    """The PACS says nothing for 5 s before its first sub-operation: past the DIMSE timeout (2 s),
    within the idle bound (the network timeout, 8 s). Then one that stays silent past that."""
    timeouts = Timeouts(connect=5, acse=3, dimse=2, network=8)
    move_file = pacs.study.instances[0].path
    archive = Archive(tmp_path / "archive", durable=False)  # not written to: the files go elsewhere
    with archive, RecordingSCP(move_file=move_file, destination=pacs.address, quiet=5.0) as scp:
        service = RetrieveService(_profile(scp, timeouts, retrieve_method=RetrieveMethod.MOVE),
                                  archive, listener_host="127.0.0.1")
        started = time.monotonic()
        summary = run(service.move_study(pacs.study.study_uid, destination_ae="ELSEWHERE").wait(), timeout=60)
        took = time.monotonic() - started
    print(f"\n[links] C-MOVE to another AE, the PACS silent 5 s (DIMSE timeout 2 s): complete after {took:.1f} s")
    assert summary.complete, summary.reasons
    assert took >= 5.0

    archive = Archive(tmp_path / "archive2", durable=False)
    with archive, RecordingSCP(move_file=move_file, destination=pacs.address, quiet=30.0) as scp:
        service = RetrieveService(_profile(scp, timeouts, retrieve_method=RetrieveMethod.MOVE),
                                  archive, listener_host="127.0.0.1")
        started = time.monotonic()
        with pytest.raises(RetrieveInterrupted) as raised:
            run(service.move_study(pacs.study.study_uid, destination_ae="ELSEWHERE").wait(), timeout=60)
        took = time.monotonic() - started
    print(f"[links] C-MOVE to another AE, the PACS silent for good: ended after {took:.1f} s (idle bound 8 s)")
    assert raised.value.timed_out
    assert 8.0 <= took < 8.0 + timeouts.acse + 4
    assert not no_client_threads(), client_threads()


def test_an_undecodable_answer_is_counted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynetdicom.service_class as service_class

    real = service_class.encode

    def encode(ds, *args, **kwargs):  # the PACS's side only: it sends bytes nobody can decode
        if getattr(ds, "PatientID", "") == UNDECODABLE:
            return b"these bytes are not a deflated data set"
        return real(ds, *args, **kwargs)

    monkeypatch.setattr(service_class, "encode", encode)
    answers = (_study_answer("2.25.1"), _study_answer("2.25.2", UNDECODABLE), _study_answer("2.25.3"))
    with RecordingSCP(answers=answers, deflated_find=True) as scp:
        profile = _profile(scp)
        service = QueryService(DICOMClient.from_profile(profile), profile)

        async def find() -> tuple[list, object]:
            job = service.find_studies()
            found = await job.collect()
            return found, job.outcome

        found, outcome = run(find())
    assert len(found) == 2
    assert any("1 responses could not be read" in reason for reason in outcome.reasons), outcome.reasons


def test_files_we_write_carry_our_implementation_uid(pacs: Pacs, tmp_path: Path) -> None:
    with Relay(*pacs.address) as relay, Archive(tmp_path / "archive", durable=False) as archive:
        service = RetrieveService(profile_via(relay), archive, listener_host="127.0.0.1")
        run(service.get_series(pacs.study.study_uid, pacs.study.series_uids[0]).wait())
        rows = archive.instances(study_uid=pacs.study.study_uid)
        assert rows
        meta = pydicom.dcmread(rows[0].path, stop_before_pixels=True).file_meta
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION


def test_cancelling_a_retrieve_task_on_a_frozen_link_never_blocks_the_loop(pacs: Pacs, relay: Relay,
                                                                          tmp_path: Path) -> None:
    slow = Timeouts(connect=5, acse=30, dimse=30, network=60)
    relay.freeze_mid_pdu("down", after=600_000)
    with Archive(tmp_path / "archive", durable=False) as archive:
        service = RetrieveService(profile_via(relay, timeouts=slow), archive, listener_host="127.0.0.1",
                                  cancel_timeout=1.0)

        async def cancel_the_task() -> float:
            job = service.get_study(pacs.study.study_uid)
            waiter = asyncio.create_task(job.wait())
            while not relay.frozen:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            longest = 0.0
            last = time.monotonic()

            async def tick() -> None:
                nonlocal longest, last
                while True:
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    longest, last = max(longest, now - last), now

            ticker = asyncio.create_task(tick())
            await asyncio.sleep(0.05)
            job._task.cancel()  # the job's own task, as a closing window does
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            await asyncio.sleep(3.0)  # the abort runs on a worker meanwhile
            ticker.cancel()
            return longest

        longest = run(cancel_the_task(), timeout=60)
    print(f"\n[links] cancelling a retrieve task on a frozen link: longest loop stall {longest * 1000:.0f} ms")
    assert longest < 0.5, longest
    assert not no_client_threads(), client_threads()


def test_find_contexts_offer_deflate() -> None:
    """The undecodable-answer test relies on our C-FIND proposing Deflated Explicit VR Little Endian."""
    assert any("1.2.840.10008.1.2.1.99" in [str(s) for s in cx.transfer_syntax] for cx in find_contexts())




@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
def test_our_scp_sockets_keep_alive_and_never_block_for_good(secure: bool, certs, tmp_path: Path) -> None:
    """After accept, and after the TLS handshake, our SCP's sockets keep keepalive and a finite timeout."""
    server_tls = client_tls = None
    if secure:
        server_tls = TLSConfiguration(certificate=certs.server_cert, key=certs.server_key,
                                      ca_certificate=certs.ca_cert)
        client_tls = TLSConfiguration(certificate=certs.client_cert, key=certs.client_key,
                                      ca_certificate=certs.ca_cert)
    with Archive(tmp_path / "archive", durable=False) as archive:
        server = DicomServer(ServerSettings(host="127.0.0.1", port=0, ae_title="PBSOCK", tls=server_tls,
                                            timeouts=Timeouts(connect=5, acse=5, dimse=7, network=20)), archive)
        host, port = server.start()
        try:
            client = DICOMClient(host, port, called_ae="PBSOCK", tls=client_tls,
                                 retry_policy=RetryPolicy(max_retries=0))

            async def inspect() -> tuple[int, float | None, bool]:
                await client.associate()
                try:
                    raw = server.active_associations()[0].dul.socket.socket
                    return (raw.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), raw.gettimeout(),
                            isinstance(raw, ssl.SSLSocket))
                finally:
                    await client.release()

            keepalive, timeout, wrapped = run(inspect())
        finally:
            server.shutdown()
    assert wrapped is secure
    assert keepalive == 1
    assert timeout == 7, timeout  # the SCP's DIMSE timeout: one read or write may stall that long
