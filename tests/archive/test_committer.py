"""Durability in groups (core.archive.committer): `Archive.store(..., batched=True)` returns before
the fsync and the rename, which follow in groups on the committer's thread; `flush` and `close`
wait for them. FolderSyncs shares a folder's fsync between writers that renamed into it meanwhile.

(A SIGKILL in the middle of a batched C-GET: tests/retrieve/test_crash_bulk.py.)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.archive.committer import FolderSyncs
from pacsbrowser.core.archive.writer import fsync_dir

from .helpers import dataset_bytes, make_dataset, temp_files

pytestmark = pytest.mark.timeout(60)


def _encoded(ds) -> tuple[bytes, str]:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds)
    return buffer.getvalue(), str(ds.file_meta.TransferSyntaxUID)


def test_batched_stores_are_renamed_and_indexed_in_groups(workdir: Path):
    study, series = generate_uid(), generate_uid()
    sent = [make_dataset(study, series, fill=n) for n in range(300)]
    with Archive(workdir / "archive") as archive:
        started = time.perf_counter()
        stored = [archive.store(*_encoded(ds), batched=True) for ds in sent]
        replied = time.perf_counter() - started
        archive.flush()
        flushed = time.perf_counter() - started
        committer = archive._committer
        assert committer.committed == 300 and committer.failures == 0
        assert committer.groups < 300 / 4, committer.groups  # grouped, not one by one
        folder = stored[0].path.parent
        assert not temp_files(folder)
        assert archive.counts()["instances"] == 300
        for ds, one in zip(sent, stored):
            assert one.path.exists() and one.size == one.path.stat().st_size
            assert dataset_bytes(one.path)[1] == _encoded(ds)[0]
        assert archive.verify(deep=True).ok
    print(f"\n300 batched stores: replies after {replied * 1000:.0f} ms, all renamed and indexed after "
          f"{flushed * 1000:.0f} ms in {committer.groups} groups")


def test_close_finishes_what_is_pending(workdir: Path):
    study, series = generate_uid(), generate_uid()
    archive = Archive(workdir / "archive")
    stored = [archive.store(*_encoded(make_dataset(study, series, fill=n)), batched=True) for n in range(40)]
    archive.close()
    assert all(s.path.exists() for s in stored)
    assert not temp_files(stored[0].path.parent)
    with Archive(workdir / "archive") as again:
        assert again.last_repair is None  # closed cleanly: nothing to repair
        assert again.counts()["instances"] == 40


def test_a_replaced_copy_in_one_group_leaves_one_file_and_row(workdir: Path):
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    with Archive(workdir / "archive") as archive:
        first = archive.store(*_encoded(make_dataset(study, series, sop, fill=1)), batched=True)
        second = archive.store(*_encoded(make_dataset(study, series, sop, fill=2)), batched=True)
        archive.flush()
        assert first.path == second.path and archive.counts()["instances"] == 1
        assert dataset_bytes(second.path)[1] == _encoded(make_dataset(study, series, sop, fill=2))[0]
        assert not temp_files(second.path.parent)


def test_folder_fsyncs_are_shared_and_each_caller_waits_for_one_that_started_after_it(workdir: Path):
    folder = workdir / "series"
    folder.mkdir()
    runs: list[tuple[float, float]] = []
    lock = threading.Lock()

    def slow_fsync(path: Path) -> None:  # the real fsync, made slow enough for callers to meet
        began = time.monotonic()
        time.sleep(0.02)
        fsync_dir(path)
        with lock:
            runs.append((began, time.monotonic()))

    syncs = FolderSyncs(slow_fsync)
    calls: list[tuple[float, float]] = []

    def writer() -> None:
        for _ in range(10):
            called = time.monotonic()
            syncs.sync(folder)
            with lock:
                calls.append((called, time.monotonic()))

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(calls) == 60
    assert syncs.fsyncs == len(runs) < 45, syncs.fsyncs  # shared: fewer fsyncs than calls
    for called, returned in calls:
        assert any(began >= called and ended <= returned for began, ended in runs), (called, returned)
    assert not syncs._folders  # idle folders are forgotten
    print(f"\n60 folder syncs from 6 threads: {syncs.fsyncs} fsyncs")
