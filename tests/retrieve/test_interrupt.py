"""Stopping part-way: a cancel in the middle of a large study (real Orthanc), a PACS that aborts the
association after N sub-operations and one that ignores C-CANCEL (our own C-GET SCP): what arrived
stays whole, the message says how many, and the next retrieve fetches only the rest."""

from __future__ import annotations

import asyncio
import time

import pytest

from pacsbrowser.core.archive import Archive, ArchiveStream
from pacsbrowser.core.errors import DIMSEError, MoveDestinationUnknown, RetrieveInterrupted, ServiceNotSupported
from pacsbrowser.core.records import RetrievePhase, Timeouts
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.client import profile_for, run
from tests.lab.data import Catalog
from tests.lab.peers import free_port

from .helpers import GeneratedStudy, assert_same_as_source, whole_files_only

pytestmark = pytest.mark.timeout(120)

CANCEL_TIMEOUT = 2.0


def _service(peer, archive: Archive, **changes) -> RetrieveService:
    return RetrieveService(profile_for(peer, **changes), archive, listener_host="127.0.0.1",
                           cancel_timeout=CANCEL_TIMEOUT)


async def _cancel_after(job, count: int) -> tuple[float, list]:
    """Cancel once `count` instances have arrived; (seconds from cancel to the job's end, progress seen)."""
    seen = []
    cancelled_at = None
    async for progress in job:
        seen.append(progress)
        if cancelled_at is None and progress.received >= count:
            cancelled_at = time.monotonic()
            job.cancel()
    assert cancelled_at is not None, "the retrieve ended before it could be cancelled"
    return time.monotonic() - cancelled_at, seen


def test_cancel_in_the_middle_then_resume(big_orthanc, big_study: GeneratedStudy, archive: Archive, capsys):
    service = _service(big_orthanc, archive)
    job = service.get_study(big_study.study_uid)
    latency, seen = run(_cancel_after(job, 40))
    first = run(job.wait())
    assert first.cancelled and not first.complete
    assert latency < CANCEL_TIMEOUT + 5.0, f"the retrieve took {latency:.2f} s to stop"  # figure printed below
    assert 40 <= first.received < 400, first.received
    assert seen[-1].phase is RetrievePhase.DONE and any(p.cancelling for p in seen)
    assert any(p.remaining for p in seen) and all(p.total == 400 for p in seen if p.phase is RetrievePhase.RETRIEVING)
    kept = {row.sop_instance_uid for row in archive.instances(study_uid=big_study.study_uid)}
    assert len(kept) == first.received  # everything that arrived, nothing more, each file whole
    whole_files_only(archive)
    assert "cancelled" in first.summary and "cancelled" in first.reasons

    second = run(service.get_study(big_study.study_uid).wait(), timeout=60)
    assert second.complete, second.reasons
    assert second.already_present == len(kept) and second.received == 400 - len(kept)
    assert archive.counts()["instances"] == 400
    assert_same_as_source(archive, big_study.instances)
    whole_files_only(archive)
    with capsys.disabled():
        print(f"\n[retrieve] cancel of a C-GET from Orthanc after {first.received}/400 instances: "
              f"stopped {latency * 1000:.0f} ms after cancel(); resume fetched {second.received} "
              f"in {second.requests} requests")


def test_abort_part_way_then_retry_fetches_the_rest(retrieve_scp, lab_data: Catalog, archive: Archive):
    study = lab_data.study_by_accession("ACC2021009")  # 12 MR instances in 2 series
    files = [i.path for i in lab_data.instances_of_study(study.uid)]
    faulty = retrieve_scp(files, abort_after=5)
    with pytest.raises(RetrieveInterrupted) as caught:
        run(_service(faulty, archive).get_study(study.uid).wait())
    error = caught.value
    assert str(error).startswith("The PACS aborted the association during the C-GET: 5 of 12 instances arrived")
    assert "retrieve again to fetch the other 7" in str(error)
    assert error.received == 5 and error.expected == 12 and faulty.aborts_sent == 1
    assert error.summary is not None and error.summary.received == 5 and error.summary.aborted
    held = {row.sop_instance_uid for row in archive.instances(study_uid=study.uid)}
    assert held == set(faulty.sent) and len(held) == 5
    whole_files_only(archive)

    healthy = retrieve_scp(files)
    summary = run(_service(healthy, archive).get_study(study.uid).wait())
    assert summary.complete and summary.received == 7 and summary.already_present == 5
    assert set(healthy.sent) == {i.sop_instance_uid for i in lab_data.instances_of_study(study.uid)} - held
    assert len(healthy.sent) == 7  # nothing fetched twice
    assert_same_as_source(archive, lab_data.instances_of_study(study.uid))


def test_a_pacs_that_ignores_cancel_is_aborted_within_the_bound(retrieve_scp, lab_data: Catalog,
                                                                archive: Archive):
    study = lab_data.study_by_accession("ACC2021009")
    files = [i.path for i in lab_data.instances_of_study(study.uid)]
    stubborn = retrieve_scp(files, delay=1.0, ignore_cancel=True)  # 12 s to send them all
    service = RetrieveService(profile_for(stubborn), archive, cancel_timeout=1.0)
    job = service.get_study(study.uid)
    latency, _ = run(_cancel_after(job, 1))
    summary = run(job.wait())
    print(f"\ncancel -> abort of a PACS ignoring C-CANCEL: {latency * 1000:.0f} ms (cancel_timeout 1 s)")
    assert summary.cancelled and summary.aborted and latency < 1.0 + 5.0
    assert any("did not stop after C-CANCEL" in r for r in summary.reasons), summary.reasons
    assert summary.received < 12
    held = {row.sop_instance_uid for row in archive.instances(study_uid=study.uid)}
    assert len(held) == summary.received
    whole_files_only(archive)


def test_an_abort_while_an_instance_is_being_handed_over_leaves_it_whole(retrieve_scp, lab_data: Catalog,
                                                                         archive: Archive, monkeypatch):
    """CI found a `.part` left after the abort above: the abort runs on a worker thread while the
    association's own thread is still storing the instance that arrived with it, and the job's
    last flush came before that instance's hand-over to the committer. Here every hand-over is
    slowed, so the abort always falls in one: the job still ends with every file whole and indexed."""
    real = ArchiveStream.commit_later

    def slow_commit_later(self):
        stored, hand_over = real(self)

        def later():
            time.sleep(0.8)
            hand_over()
        return stored, later

    monkeypatch.setattr(ArchiveStream, "commit_later", slow_commit_later)
    study = lab_data.study_by_accession("ACC2021009")
    files = [i.path for i in lab_data.instances_of_study(study.uid)]
    stubborn = retrieve_scp(files, delay=0.3, ignore_cancel=True)
    service = RetrieveService(profile_for(stubborn), archive, cancel_timeout=0.5)
    job = service.get_study(study.uid)
    run(_cancel_after(job, 1))
    summary = run(job.wait())
    assert summary.cancelled and summary.aborted, summary.reasons
    held = {row.sop_instance_uid for row in archive.instances(study_uid=study.uid)}
    assert len(held) == summary.received >= 2  # the one being handed over at the abort counts too
    whole_files_only(archive)


def test_cancel_before_anything_is_sent(orthanc, lab_data: Catalog, archive: Archive):
    async def scenario():
        job = _service(orthanc, archive).get_study(lab_data.studies[0].uid)
        job.start()
        job.cancel()
        return await job

    summary = run(scenario())
    assert summary.cancelled and summary.received == 0 and summary.requests == 0


def test_awaiting_task_cancelled_stops_the_retrieve(big_orthanc, big_study: GeneratedStudy, archive: Archive):
    """asyncio cancellation of the awaiting task (a window closing) stops the C-GET the same way."""
    async def scenario():
        job = _service(big_orthanc, archive).get_study(big_study.study_uid)
        task = asyncio.ensure_future(job.wait())
        async for progress in job:
            if progress.received >= 20:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return job

    job = run(scenario())
    assert job.done and job.summary is not None and job.summary.cancelled
    whole_files_only(archive)


def test_c_get_refused_suggests_c_move(retrieve_scp, lab_data: Catalog, archive: Archive):
    study = lab_data.study_by_accession("ACC2019002")
    scp = retrieve_scp([i.path for i in lab_data.instances_of_study(study.uid)], get=False)
    with pytest.raises(ServiceNotSupported) as caught:
        run(_service(scp, archive).get_study(study.uid).wait())
    assert "C-GET" in caught.value.services and "C-MOVE" in str(caught.value)


def test_c_move_refused_suggests_c_get(retrieve_scp, lab_data: Catalog, archive: Archive):
    study = lab_data.study_by_accession("ACC2019002")
    scp = retrieve_scp([i.path for i in lab_data.instances_of_study(study.uid)], move=False)
    with pytest.raises(ServiceNotSupported) as caught:
        run(_service(scp, archive, move_destination="ELSEWHERE").move_study(study.uid).wait())
    assert "C-MOVE" in caught.value.services and "C-GET" in str(caught.value)


def test_a_pacs_that_answers_no_queries_gets_one_request(retrieve_scp, lab_data: Catalog, archive: Archive):
    """No instance query: no resume, the default storage contexts, one C-GET of the study."""
    study = lab_data.study_by_accession("ACC2016004")
    scp = retrieve_scp([i.path for i in lab_data.instances_of_study(study.uid)], find=False)
    summary = run(_service(scp, archive).get_study(study.uid).wait())
    assert summary.received == 10 and not summary.planned and summary.expected is None
    assert summary.complete and summary.requests == 1
    assert any("does not answer queries" in n for n in summary.notes), summary.notes
    assert_same_as_source(archive, lab_data.instances_of_study(study.uid))


def test_a_silent_move_is_aborted_after_the_idle_bound(retrieve_scp, lab_data: Catalog, archive: Archive):
    """A C-MOVE SCP that goes quiet part-way (no response, nothing at our listener): the job ends
    after the profile's DIMSE timeout of silence, saying how many arrived."""
    study = lab_data.study_by_accession("ACC2021009")
    port = free_port()
    scp = retrieve_scp([i.path for i in lab_data.instances_of_study(study.uid)], stall_after=3,
                       move_destinations={"PACSBROWSER": ("127.0.0.1", port)})
    timeouts = Timeouts(connect=5, acse=5, dimse=1.5, network=30)
    service = RetrieveService(profile_for(scp, listener_port=port, timeouts=timeouts), archive,
                              listener_host="127.0.0.1", cancel_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(RetrieveInterrupted) as caught:
        run(service.move_study(study.uid).wait())
    elapsed = time.monotonic() - started
    print(f"\nsilent C-MOVE ended after {elapsed * 1000:.0f} ms (idle bound 1.5 s)")
    error = caught.value
    assert error.timed_out and error.received == 3 and error.expected == 12
    assert str(error).startswith("The PACS stopped answering during the C-MOVE"), str(error)
    assert elapsed < 20, elapsed  # idle bound and our listener's grace; the network timeout is 30 s
    assert len(archive.instances(study_uid=study.uid)) == 3
    whole_files_only(archive)


def test_move_from_our_own_scp_and_unknown_destination(retrieve_scp, lab_data: Catalog, archive: Archive):
    study = lab_data.study_by_accession("ACC2016004")
    port = free_port()
    scp = retrieve_scp([i.path for i in lab_data.instances_of_study(study.uid)],
                       move_destinations={"PACSBROWSER": ("127.0.0.1", port)})
    service = RetrieveService(profile_for(scp, listener_port=port), archive, listener_host="127.0.0.1")
    summary = run(service.move_study(study.uid).wait())
    assert summary.complete and summary.received == 10
    assert_same_as_source(archive, lab_data.instances_of_study(study.uid))
    other = RetrieveService(profile_for(scp, calling_ae="NOBODYKNOWS", listener_port=port), archive,
                            listener_host="127.0.0.1")
    with pytest.raises(MoveDestinationUnknown) as caught:
        run(other.move_study(study.uid, resume=False).wait())
    assert caught.value.certain and f"register AE title NOBODYKNOWS at host 127.0.0.1, port {port}" in str(caught.value)


def test_get_of_what_the_pacs_cannot_send_is_an_error(dcmqrscp, lab_data: Catalog, archive: Archive):
    """Nothing arrived and the PACS said why: an error in words, not an empty summary."""
    study = lab_data.study_by_accession("ACC2024003")
    rle_series = lab_data.series_of(study.uid)[0]  # 8 RLE instances; the stock dcmqrscp accepts no RLE
    with pytest.raises(DIMSEError) as caught:
        run(RetrieveService(profile_for(dcmqrscp), archive).get_series(study.uid, rle_series.uid).wait())
    error = caught.value
    assert error.status == 0xA702 and error.service == "C-GET"
    assert "could not send 8 instances" in str(error) and "transfer syntax" in str(error)
    assert error.summary.received == 0 and archive.counts()["instances"] == 0
