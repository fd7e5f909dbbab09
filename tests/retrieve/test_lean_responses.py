"""Pending C-GET and C-MOVE responses on the lean path (core.dicom.bulkreceive, issue 16).

One pending response comes per sub-operation. The lean reader decodes its command set itself, as
pynetdicom would (compared here field by field with pynetdicom's own decoding of what pynetdicom
encodes), and hands it to the request's sink (core.dicom.retrieve.send_retrieve) on the DUL
thread: the requestor thread sleeps until the final response. Against Orthanc: every pending
response of a C-GET and of a C-MOVE to our listener goes that way, the counts the window shows
come from them, and the C-MOVE's images, sub-operations of our own request, are stored batched
(the PACS keeps what a crash would lose) while a modality's stay durable before the reply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pynetdicom.dimse_messages import C_GET_RSP, C_MOVE_RSP, C_STORE_RQ
from pynetdicom.dimse_primitives import C_GET, C_MOVE, C_STORE

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.dicom import bulkreceive
from pacsbrowser.core.dicom.receive import ReceiveHandler
from pacsbrowser.core.dicom.retrieve import MOVE_GATHER
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.server import ArchiveServer
from tests.lab.client import profile_for, run

from .helpers import GeneratedStudy

pytestmark = pytest.mark.timeout(120)

CT = "1.2.840.10008.5.1.4.1.1.2"


def _command(primitive: Any, message_class: type) -> bytes:
    """The command set pynetdicom encodes for `primitive` (implicit VR little endian)."""
    message = message_class()
    message.primitive_to_message(primitive)
    fragments = list(message.encode_msg(1, 16382))
    return b"".join(bytes(pdv.presentation_data_value_list[0][1][1:]) for pdv in fragments)


def _decoded_by_pynetdicom(command: bytes, message_class: type) -> Any:
    from io import BytesIO

    from pydicom.filereader import read_dataset

    message = message_class()
    message.command_set = read_dataset(BytesIO(command), is_implicit_VR=True, is_little_endian=True)
    message.data_set = BytesIO()
    return message.message_to_primitive()


def _pending(cls: type, *, counts: tuple[int | None, ...] = (7, 3, 0, 1), sop_class: str | None = CT,
             status: int = 0xFF00) -> Any:
    primitive = cls()
    primitive.MessageIDBeingRespondedTo = 12
    primitive.Status = status
    if sop_class is not None:
        primitive.AffectedSOPClassUID = sop_class
    (primitive.NumberOfRemainingSuboperations, primitive.NumberOfCompletedSuboperations,
     primitive.NumberOfFailedSuboperations, primitive.NumberOfWarningSuboperations) = counts
    return primitive


@pytest.mark.parametrize("cls,message_class", [(C_GET, C_GET_RSP), (C_MOVE, C_MOVE_RSP)])
@pytest.mark.parametrize("counts", [(7, 3, 0, 1), (0, 500, 0, 0), (65535, 0, 2, 0), (5, None, None, None)])
@pytest.mark.parametrize("sop_class", [CT, None])
def test_a_pending_response_reads_as_pynetdicom_reads_it(cls, message_class, counts, sop_class):
    command = _command(_pending(cls, counts=counts, sop_class=sop_class), message_class)
    theirs = _decoded_by_pynetdicom(command, message_class)
    ours = bulkreceive.decode_retrieve_pending(command)
    assert ours is not None
    primitive = ours.primitive()
    assert type(primitive) is type(theirs)
    for keyword in ("MessageIDBeingRespondedTo", "Status", "AffectedSOPClassUID", "NumberOfRemainingSuboperations",
                    "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations", "NumberOfWarningSuboperations",
                    "ErrorComment", "OffendingElement"):
        assert getattr(primitive, keyword) == getattr(theirs, keyword), keyword
    assert (ours.remaining, ours.completed, ours.failed, ours.warning) == counts


@pytest.mark.parametrize("cls,message_class", [(C_GET, C_GET_RSP), (C_MOVE, C_MOVE_RSP)])
def test_what_is_not_a_plain_pending_response_is_left_to_pynetdicom(cls, message_class):
    final = _pending(cls, status=0x0000, counts=(None, 500, 0, 0))
    assert bulkreceive.decode_retrieve_pending(_command(final, message_class)) is None
    failed = _pending(cls, status=0xA702, counts=(None, 3, 1, 0))
    failed.ErrorComment = "out of resources"
    assert bulkreceive.decode_retrieve_pending(_command(failed, message_class)) is None
    store = C_STORE()
    store.MessageID, store.AffectedSOPClassUID, store.AffectedSOPInstanceUID = 3, CT, "1.2.3.4"
    store.Priority = 2
    assert bulkreceive.decode_retrieve_pending(_command(store, C_STORE_RQ)) is None
    pending = _command(_pending(cls), message_class)
    assert bulkreceive.decode_retrieve_pending(pending[:-2]) is None  # cut short
    assert bulkreceive.decode_retrieve_pending(pending + b"\x00\x00\x02\x09\x02\x00\x00\x00\x00\x00") is None


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """How many pending responses the lean reader decoded, how many reached the request's sink, the
    `gather` each request asked for, and how many socket reads were made on associations that
    gather (a spy: the real methods run)."""
    seen: dict[str, Any] = {"decoded": 0, "sunk": 0, "gather": [], "gathering_reads": 0}
    decode = bulkreceive.decode_retrieve_pending

    def counting_decode(command):
        response = decode(command)
        if response is not None:
            seen["decoded"] += 1
        return response

    sink_pending = bulkreceive.sink_pending

    def counting_sink_pending(assoc, message_id, sink, **options):
        def counting(response):
            taken = sink(response)
            seen["sunk"] += bool(taken)
            return taken

        seen["gather"].append(options.get("gather", 0.0))
        return sink_pending(assoc, message_id, counting, **options)

    recv = bulkreceive.BulkReader._recv

    def counting_recv(self):
        if self.gather:
            seen["gathering_reads"] += 1
        return recv(self)

    monkeypatch.setattr(bulkreceive, "decode_retrieve_pending", counting_decode)
    monkeypatch.setattr(bulkreceive, "sink_pending", counting_sink_pending)
    monkeypatch.setattr(bulkreceive.BulkReader, "_recv", counting_recv)
    return seen


def test_a_c_get_reads_every_pending_response_on_the_lean_path(big_orthanc, big_study: GeneratedStudy,
                                                                workdir: Path, counted):
    events: list[tuple[int | None, int | None]] = []
    with Archive(workdir / "archive") as archive:
        job = RetrieveService(profile_for(big_orthanc), archive).get_study(big_study.study_uid)

        async def follow():
            async for progress in job.updates():
                events.append((progress.remaining, progress.completed))
            return await job.wait()

        summary = run(follow())
    assert summary.complete and summary.received == 400
    assert summary.completed == 400
    # Orthanc sends one pending response per sub-operation (the last one's counts come in the final)
    assert counted["decoded"] >= 399 and counted["sunk"] == counted["decoded"], counted
    assert set(counted["gather"]) == {0.0} and counted["gathering_reads"] == 0  # its images come on it
    seen = [completed for _, completed in events if completed]
    assert seen and max(seen) >= 300, events[-5:]  # the window's counts came from them
    print(f"\n{counted['sunk']} pending responses taken on the lean path; {len(events)} progress updates")


def test_our_own_c_move_is_stored_batched_and_a_modality_durably(big_orthanc, big_study: GeneratedStudy,
                                                                  workdir: Path, move_port: int, counted):
    async def scenario(archive: Archive):
        scp = ArchiveServer(move_port, "PACSBROWSER", archive, host="127.0.0.1")
        async with scp:
            service = RetrieveService(profile_for(big_orthanc), archive, scp=scp)
            summary = await service.move_study(big_study.study_uid, "PACSBROWSER").wait()
            assert not scp._server.handler._own_moves  # ended with the job
            return summary

    with Archive(workdir / "archive") as archive:
        committed_before = archive._committer.committed
        summary = run(scenario(archive))
        assert summary.complete and summary.received == 400
        assert archive._committer.committed - committed_before == 400  # all 400 went through the committer
        assert counted["sunk"] >= 399, counted
        # the C-MOVE's association carries nothing else: its responses gathered, a few dozen per read
        # (one read per 20 ms at most, whatever the speed of the machine)
        assert counted["gather"] == [MOVE_GATHER]
        assert 0 < counted["gathering_reads"] < counted["sunk"] / 2, counted

    # A C-STORE claiming to be a sub-operation of a C-MOVE we did not send stays durable.
    handler = ReceiveHandler(Archive.__new__(Archive))
    stop = handler.expect_move("ORTHANC", "PACSBROWSER", 7)
    assert handler.batched_for("ORTHANC", "PACSBROWSER", 7)
    assert not handler.batched_for("MODALITY", "PACSBROWSER", 7)  # another sender
    assert not handler.batched_for("ORTHANC", "PACSBROWSER", 8)  # another request
    assert not handler.batched_for("ORTHANC", None, None)  # not a C-MOVE's
    stop()
    assert not handler.batched_for("ORTHANC", "PACSBROWSER", 7)


def test_a_c_move_cancelled_midway_stops_while_its_responses_gather(big_orthanc, big_study: GeneratedStudy,
                                                                    workdir: Path, move_port: int, counted):
    """The C-CANCEL of a C-MOVE goes out while the DUL thread lets pending responses gather (it
    wakes for anything queued to send): the job stops soon, with whole files only."""
    import time

    from .helpers import whole_files_only

    async def scenario(archive: Archive) -> tuple[float, Any]:
        scp = ArchiveServer(move_port, "PACSBROWSER", archive, host="127.0.0.1")
        async with scp:
            service = RetrieveService(profile_for(big_orthanc), archive, scp=scp, cancel_timeout=2.0)
            job = service.move_study(big_study.study_uid, "PACSBROWSER")
            cancelled_at = None
            async for progress in job.updates():
                if cancelled_at is None and progress.received >= 50:
                    cancelled_at = time.monotonic()
                    job.cancel()
            summary = await job.wait()
            assert cancelled_at is not None, "the move ended before it could be cancelled"
            return time.monotonic() - cancelled_at, summary

    with Archive(workdir / "archive") as archive:
        latency, summary = run(scenario(archive))
        assert summary.cancelled and 50 <= summary.received < 400, summary
        assert latency < 2.0 + 5.0, f"the C-MOVE took {latency:.2f} s to stop"
        assert counted["gather"] == [MOVE_GATHER]
        whole_files_only(archive)
        print(f"\nC-MOVE cancelled after {summary.received}/400: stopped {latency * 1000:.0f} ms after cancel()")


def test_a_cancel_midway_still_drains_through_pynetdicom(big_orthanc, big_study: GeneratedStudy, workdir: Path,
                                                         counted):
    """After C-CANCEL the pending responses go the usual way again, where the drain is watched."""
    with Archive(workdir / "archive") as archive:
        job = RetrieveService(profile_for(big_orthanc), archive).get_study(big_study.study_uid)

        async def cancel_after_some():
            async for progress in job.updates():
                if progress.received >= 50:
                    job.cancel()
                    break
            return await job.wait()

        summary = run(cancel_after_some())
    assert summary.cancelled and 50 <= summary.received < 400, summary
    assert counted["decoded"] >= counted["sunk"] > 0


def test_the_dul_loop_keeps_the_gil_only_on_a_thread_reading_on_the_lean_path():
    """pynetdicom.dul's `time.sleep(0)` (ResponsiveDUL's GIL yield) is skipped on an active lean
    reader's thread only: every other caller, and every other delay, sleeps as before."""
    import threading
    import time

    from pynetdicom import dul

    assert isinstance(dul.time, bulkreceive._DULTime)
    assert dul.time.monotonic is time.monotonic  # the rest of the module is time's
    started = time.perf_counter()
    dul.time.sleep(0.02)
    assert time.perf_counter() - started >= 0.015  # a real delay still sleeps

    class _Reader:
        active = True

    class Lean(bulkreceive.BulkDUL):  # a thread object only: never started as a DUL
        def __init__(self) -> None:
            threading.Thread.__init__(self)
            self._bulk = _Reader()  # type: ignore[assignment]  # just the flag the stand-in reads

        def run(self) -> None:
            dul.time.sleep(0)
            self._bulk.active = False
            dul.time.sleep(0)

    slept: list[tuple[object, float]] = []
    real = bulkreceive._DULTime._sleep

    def counting(seconds: float) -> None:
        slept.append((threading.current_thread(), seconds))
        real(seconds)

    thread = Lean()
    bulkreceive._DULTime._sleep = staticmethod(counting)  # type: ignore[assignment]  # a spy: it still sleeps
    try:
        thread.start()
        thread.join(5)
    finally:
        bulkreceive._DULTime._sleep = staticmethod(real)  # type: ignore[assignment]  # as it was
    assert [s for t, s in slept if t is thread] == [0]  # skipped while active, slept once inactive
