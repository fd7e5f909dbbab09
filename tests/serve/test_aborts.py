"""Aborts in the middle of an operation, from both sides, against real peers and the fault SCP:
a PACS that aborts mid C-FIND and mid C-MOVE (mid C-GET: tests/retrieve/test_interrupt.py), and a
sender that aborts or dies mid C-STORE into our listener (ArchiveServer, the server of `listen`).

Each time: a typed error or outcome that says what happened in words, nothing half-written listed
in the archive, and the next operation works.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.client import DICOMClient
from pacsbrowser.core.errors import AssociationAborted, RetrieveInterrupted
from pacsbrowser.core.query import QueryService
from pacsbrowser.core.records import QueryKeys, Received, Timeouts
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.server import ArchiveServer
from tests.archive.helpers import make_dataset, save
from tests.lab import rawpdu
from tests.lab.client import profile_for, run
from tests.lab.data import Catalog
from tests.lab.fault_scp import study_dataset
from tests.lab.peers import DCMTK_BIN, free_port, peer_env
from tests.retrieve.helpers import RetrieveSCP, assert_same_as_source, whole_files_only

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")]

LISTENER_AE = "PBLISTEN"


def _studies(n: int):
    return [study_dataset(PatientName=f"ABORT^{i:03d}", PatientID=f"AB{i:03d}", StudyInstanceUID=f"1.2.826.0.77.{i}",
                          StudyDate="20240101", StudyTime="101010") for i in range(n)]


def _query_service(peer) -> QueryService:
    profile = profile_for(peer, timeouts=Timeouts.uniform(5))
    return QueryService(DICOMClient.from_profile(profile), profile, cancel_timeout=2.0)


# ------------------------------------------------------------------------------ C-FIND


def test_a_pacs_aborting_mid_find_then_the_next_find_works(fault_scp, orthanc, lab_data: Catalog):
    scp = fault_scp("abort_after_n", abort_after=3, datasets=_studies(10))
    service = _query_service(scp)
    got = []

    async def read():
        found = service.find(QueryKeys.studies())
        try:
            async for study in found:
                got.append(study)
        finally:
            got.append(found.outcome)

    with pytest.raises(AssociationAborted) as caught:
        run(read())
    outcome = got.pop()
    print(f"\nC-FIND aborted by the PACS: {caught.value}")
    assert str(caught.value).startswith("The PACS closed the association during the C-FIND"), str(caught.value)
    assert len(got) == 3 and outcome.aborted and outcome.incomplete and outcome.count == 3
    assert scp.aborts_sent == 1

    # the same client again: a new association, a whole answer (from a PACS that behaves)
    healthy = fault_scp("ok", datasets=_studies(10))
    again = run(_query_service(healthy).find(QueryKeys.studies()).collect())
    assert len(again) == 10
    # and a real PACS, by the same path
    real = run(_query_service(orthanc).find(QueryKeys.studies()).collect())
    assert len(real) == len(lab_data.studies)


# ------------------------------------------------------------------------------ C-MOVE


def test_a_pacs_aborting_mid_move_then_a_retry_fetches_the_rest(start_scp, lab_data: Catalog, archive: Archive):
    study = lab_data.study_by_accession("ACC2021009")  # 12 MR instances in 2 series
    files = [i.path for i in lab_data.instances_of_study(study.uid)]
    port = free_port()
    faulty = start_scp(RetrieveSCP, files, abort_after=4, move_destinations={"PACSBROWSER": ("127.0.0.1", port)})
    service = RetrieveService(profile_for(faulty, listener_port=port), archive, listener_host="127.0.0.1",
                              cancel_timeout=1.0)
    with pytest.raises(RetrieveInterrupted) as caught:
        run(service.move_study(study.uid).wait())
    error = caught.value
    print(f"\nC-MOVE aborted by the PACS: {error}")
    assert str(error).startswith("The PACS aborted the association during the C-MOVE"), str(error)
    assert error.received == 4 and error.expected == 12 and faulty.aborts_sent == 1
    held = {row.sop_instance_uid for row in archive.instances(study_uid=study.uid)}
    assert held == set(faulty.sent)
    whole_files_only(archive)

    healthy = start_scp(RetrieveSCP, files, move_destinations={"PACSBROWSER": ("127.0.0.1", port)})
    summary = run(RetrieveService(profile_for(healthy, listener_port=port), archive,
                                  listener_host="127.0.0.1").move_study(study.uid).wait())
    assert summary.complete and summary.received == 8 and summary.already_present == 4
    assert len(healthy.sent) == 8
    assert_same_as_source(archive, lab_data.instances_of_study(study.uid))
    whole_files_only(archive)


# ------------------------------------------------------------------------------ C-STORE into us


class _Listener:
    """ArchiveServer (what `pacsbrowser listen` runs) on a loop of its own thread, with the records
    it delivered."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.records: list[Received] = []
        self.loop = asyncio.new_event_loop()
        self.server = ArchiveServer(0, LISTENER_AE, archive, host="127.0.0.1", grace=1.0,
                                    timeouts=Timeouts(connect=2, acse=2, dimse=3, network=3),
                                    on_image_received=self.records.append)

    def __enter__(self) -> _Listener:
        import threading

        self.thread = threading.Thread(target=self.loop.run_forever, name="listener-loop", daemon=True)
        self.thread.start()
        self.call(self.server.start())
        return self

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def port(self) -> int:
        return self.server.address[1]

    def storescu(self, path) -> subprocess.CompletedProcess:
        return subprocess.run([str(DCMTK_BIN / "storescu"), "-aet", "SENDER", "-aec", LISTENER_AE, "127.0.0.1",
                               str(self.port), str(path)], capture_output=True, text=True, timeout=60,
                              env=peer_env(), stdin=subprocess.DEVNULL)

    def idle(self, bound: float = 15.0) -> None:
        deadline = time.monotonic() + bound
        while self.server._server is not None and self.server._server.active_associations():
            assert time.monotonic() < deadline, "the listener still holds an association"
            time.sleep(0.02)


def test_a_sender_aborting_mid_store_leaves_nothing_and_the_next_store_works(archive: Archive, workdir):
    ds = make_dataset(extra_bytes=300_000, patient_id="ABORT1", name="ABORT^HALF")
    with _Listener(archive) as listener:
        peer = rawpdu.RawPeer.connect("127.0.0.1", listener.port)
        with peer:
            accepted = peer.associate(LISTENER_AE, [(1, ds.SOPClassUID, [ExplicitVRLittleEndian])])
            assert accepted
            pdus = rawpdu.command_pdus(rawpdu.c_store(ds), 1, 16384)
            for item in pdus[: len(pdus) // 2]:
                peer.send(item)
            peer.send(rawpdu.abort())
            assert peer.closed_by_peer(10)
        listener.idle()

        good = save(make_dataset(patient_id="ABORT2", name="ABORT^GOOD"), workdir / "good.dcm")
        result = listener.storescu(good)
        assert result.returncode == 0, result.stderr
        archive.flush()
        assert archive.instance(ds.SOPInstanceUID) is None
        assert archive.instance(str(make_dataset_uid(good))) is not None
        stats = listener.server.stats
        assert stats.stored == 1 and stats.failed == 0 and stats.associations == 2
    assert [r.sop_instance_uid for r in listener.records] == [str(make_dataset_uid(good))]
    whole_files_only(archive)


def make_dataset_uid(path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_storescu_killed_mid_store_leaves_nothing_half_written(archive: Archive, workdir):
    """A real sender (DCMTK storescu) killed in the middle of a 120 MB C-STORE: the connection just
    drops (no A-ABORT); nothing of that instance is listed or left on disk, the next store works."""
    big = save(make_dataset(extra_bytes=120_000_000, patient_id="ABORT3", name="ABORT^BIG"), workdir / "big.dcm")
    big_uid = make_dataset_uid(big)
    with _Listener(archive) as listener:
        sender = subprocess.Popen([str(DCMTK_BIN / "storescu"), "-aet", "DYING", "-aec", LISTENER_AE, "127.0.0.1",
                                   str(listener.port), str(big)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=peer_env(), stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while listener.server.stats.associations < 1:
                assert time.monotonic() < deadline and sender.poll() is None, "storescu never associated"
                time.sleep(0.005)
            time.sleep(0.05)  # some of the data set is on its way
            sender.send_signal(signal.SIGKILL)
        finally:
            sender.wait(10)
        listener.idle()
        assert listener.server.stats.stored == 0, "the whole file arrived before the kill: nothing was cut"

        good = save(make_dataset(patient_id="ABORT4", name="ABORT^NEXT"), workdir / "next.dcm")
        result = listener.storescu(good)
        assert result.returncode == 0, result.stderr
        archive.flush()
        assert archive.instance(big_uid) is None
        assert archive.instance(make_dataset_uid(good)) is not None
    assert len(listener.records) == 1
    assert not [p for p in archive.root.rglob("*") if big_uid in p.name]
    whole_files_only(archive)

