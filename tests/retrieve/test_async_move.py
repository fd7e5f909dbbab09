"""Issue 15, item 5: a C-MOVE from an "answer first, send later" PACS. Orthanc with
"SynchronousCMove": false answers Success as soon as it has queued a job, then sends the
instances; we used to stop at the final response (and stop the on-demand listener), losing them.
Now the job waits for every planned instance under the idle watchdog, the listener up."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.records import RetrievePhase, Timeouts
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.client import profile_for, run
from tests.lab.peers import OrthancPeer, free_port

from .helpers import GeneratedStudy, RetrieveSCP, assert_same_as_source, make_big_study, whole_files_only

pytestmark = pytest.mark.timeout(180)


class AnswerFirstSCP(RetrieveSCP):
    """A C-MOVE SCP that answers Success with no sub-operation counts at once, then, `later` seconds
    on, opens its own association to the destination and sends the instances (`gap` apart)."""

    def __init__(self, files: Any, *, later: float = 0.5, gap: float = 0.01, **options: Any) -> None:
        super().__init__(files, **options)
        self.later, self.gap = later, gap
        self.senders: list[threading.Thread] = []
        self.stored: list[int] = []

    def _on_move(self, event: Any):
        destination = self.move_destinations.get(str(event.move_destination or "").strip())
        if destination is None:
            yield None, None
            return
        yield destination[0], destination[1]
        matches = self._matches(event.identifier)
        sender = threading.Thread(target=self._send_later, args=(destination, str(event.move_destination).strip(),
                                                                  matches), name="answer-first-sender")
        self.senders.append(sender)
        sender.start()
        yield 0  # "nothing to do here": pynetdicom answers Success, completed 0

    def _send_later(self, destination: tuple[str, int], ae_title: str, matches: list) -> None:
        if self._stop.wait(self.later):
            return
        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        for pair in {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in matches}:
            ae.add_requested_context(*pair)
        assoc = ae.associate(destination[0], destination[1], ae_title=ae_title)
        if not assoc.is_established:
            return
        try:
            for ds in matches:
                if self._stop.is_set() or not assoc.is_established:
                    break
                status = assoc.send_c_store(ds)
                self.stored.append(int(getattr(status, "Status", -1)))
                self._stop.wait(self.gap)
        finally:
            if assoc.is_established:
                assoc.release()

    def shutdown(self) -> None:
        super().shutdown()
        for sender in self.senders:
            sender.join(15)


@pytest.fixture(scope="module")
def async_study(tmp_path_factory: pytest.TempPathFactory) -> GeneratedStudy:
    return make_big_study(tmp_path_factory.mktemp("async-move") / "study", 100, series=2, size=64, label="async")


@pytest.fixture
def async_orthanc(orthanc_factory, async_study: GeneratedStudy) -> OrthancPeer:
    peer = orthanc_factory(load=False, aet="ASYNCMOVE", extra_config={"SynchronousCMove": False})
    peer.load(async_study.paths())
    return peer


def test_move_from_an_answer_first_pacs_brings_all_100(async_orthanc: OrthancPeer, async_study: GeneratedStudy,
                                                        archive: Archive, move_port: int):
    profile = profile_for(async_orthanc, listener_port=move_port, timeouts=Timeouts.uniform(15))
    service = RetrieveService(profile, archive, listener_host="127.0.0.1", cancel_timeout=3.0)

    async def main():
        job = service.move_study(async_study.study_uid)
        phases = []
        async for progress in job:
            phases.append(progress.phase)
        return await job, phases

    started = time.monotonic()
    summary, phases = run(main(), timeout=150)
    print(f"async C-MOVE of {len(async_study.instances)} instances: {time.monotonic() - started:.2f} s, "
          f"final status 0x{summary.status:04X}, PACS counted {summary.completed} completed")
    assert summary.status == 0x0000
    assert summary.complete, summary.reasons
    assert summary.received == 100 and not summary.missing
    assert RetrievePhase.FINISHING in phases
    assert archive.counts()["instances"] == 100
    assert assert_same_as_source(archive, async_study.instances) == 100
    whole_files_only(archive)
    assert service._own_scp is None  # the on-demand listener stopped after the last one came


def test_a_pacs_that_answers_success_with_no_counts_then_sends(async_study: GeneratedStudy, archive: Archive,
                                                             start_scp, move_port: int):
    """The final response says Success and counts nothing (pynetdicom's answer to zero
    sub-operations); the 100 instances come afterwards on another association: all arrive."""
    scp = start_scp(AnswerFirstSCP, async_study.paths(), later=1.0,
                    move_destinations={"PACSBROWSER": ("127.0.0.1", move_port)})
    profile = profile_for(scp, listener_port=move_port, timeouts=Timeouts.uniform(10))
    service = RetrieveService(profile, archive, listener_host="127.0.0.1", cancel_timeout=3.0)
    started = time.monotonic()
    summary = run(service.move_study(async_study.study_uid).wait(), timeout=90)
    print(f"answer-first C-MOVE: {time.monotonic() - started:.2f} s, status 0x{summary.status:04X}, "
          f"PACS counted {summary.completed} completed, {summary.received} arrived")
    assert summary.status == 0x0000 and summary.completed == 0
    assert summary.complete, summary.reasons
    assert summary.received == 100 and archive.counts()["instances"] == 100
    assert scp.stored == [0] * 100  # every C-STORE answered Success: the listener stayed up
    whole_files_only(archive)


def test_an_answer_first_pacs_that_then_sends_nothing_ends_with_a_clear_reason(
        async_orthanc: OrthancPeer, async_study: GeneratedStudy, archive: Archive, tmp_path: Path):
    """The PACS answers Success but its sub-operations cannot reach us (it knows our AE at a port
    where nothing listens): the job ends after the idle time, saying so, and lists what is missing."""
    async_orthanc.add_modality("nowhere", "NOWHERE", "127.0.0.1", 9)  # discard port: refused
    profile = profile_for(async_orthanc, calling_ae="NOWHERE", listener_port=free_port(), timeouts=Timeouts.uniform(3))
    service = RetrieveService(profile, archive, listener_host="127.0.0.1", cancel_timeout=3.0)
    started = time.monotonic()
    summary = run(service.move_study(async_study.study_uid).wait(), timeout=60)
    took = time.monotonic() - started
    print(f"gave up after {took:.2f} s: {summary.reasons}")
    assert not summary.complete and summary.received == 0 and len(summary.missing) == 100
    assert any("nothing more arrived" in r for r in summary.reasons), summary.reasons
    assert took < 30
