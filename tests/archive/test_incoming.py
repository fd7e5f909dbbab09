"""Temporary files made ahead (core.archive.incoming) and the reserve checked without a statvfs()
per file (writer.Reserve), issue 16.

A write takes an empty file made ahead by the archive's own thread and renames it into its series
folder, where it is the usual temporary file until the rename into place; the files made ahead
are gone when the archive closes, and after a crash the repair removes them without counting them
as interrupted writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.archive.incoming import AHEAD_PREFIX, INCOMING, Incoming
from pacsbrowser.core.archive.paths import TEMP_PREFIX

from .helpers import dataset_bytes, make_dataset, temp_files
from .test_committer import _encoded

pytestmark = pytest.mark.timeout(60)


def _ahead(root: Path) -> list[Path]:
    return sorted(p for p in (root / INCOMING).rglob("*") if p.is_file())


def test_files_made_ahead_are_taken_into_the_series_folder(workdir: Path):
    incoming = Incoming(workdir, ahead=4)
    folder = workdir / "study" / "series"
    try:
        assert incoming.take(folder) is None  # nothing ready yet: the writer makes its own
        deadline = time.monotonic() + 10
        while incoming.made_ahead < 8 and time.monotonic() < deadline:  # the thread fills both folders
            time.sleep(0.01)
        assert incoming.made_ahead == 8 and len(_ahead(workdir)) == 8
        assert all(p.name.startswith(AHEAD_PREFIX) for p in _ahead(workdir))
        taken = [incoming.take(folder) for _ in range(3)]
        for fd, path in (t for t in taken if t is not None):
            assert Path(path).parent == folder and Path(path).name.startswith(TEMP_PREFIX)
            os.write(fd, b"data")
            os.close(fd)
            assert Path(path).read_bytes() == b"data"
        assert incoming.taken_ready == 3
    finally:
        incoming.close()
    assert _ahead(workdir) == []  # the ready ones went with the close
    assert incoming.take(folder) is None  # and none are made any more


def test_stores_use_files_made_ahead_and_leave_nothing_behind(workdir: Path):
    study, series = generate_uid(), generate_uid()
    sent = [make_dataset(study, series, fill=n) for n in range(120)]
    with Archive(workdir / "archive") as archive:
        stored = [archive.store(*_encoded(ds), batched=n % 2 == 0) for n, ds in enumerate(sent)]
        for n in range(40):
            stored.append(archive.store(*_encoded(make_dataset(study, series, fill=1000 + n))))
        archive.flush()
        incoming = archive._incoming
        assert incoming.taken_ready > 100, (incoming.taken_ready, incoming.made_ahead)
        assert temp_files(archive.root) == []  # no temporary file in a series folder
        assert archive.counts()["instances"] == 160
        for ds, one in zip(sent, stored[:120]):
            assert dataset_bytes(one.path)[1] == _encoded(ds)[0]
        assert archive.verify(deep=True).ok
        assert _ahead(archive.root)  # ready for the next ones
    assert _ahead(workdir / "archive") == []
    with Archive(workdir / "archive") as again:
        assert again.last_repair is None and again.counts()["instances"] == 160


CRASH = textwrap.dedent("""
    import os, sys, time
    sys.path[:0] = {paths!r}
    from pacsbrowser.core.archive import Archive
    from tests.archive.test_committer import _encoded
    from tests.archive.helpers import make_dataset
    arc = Archive({root!r})
    for n in range(20):
        arc.store(*_encoded(make_dataset(study="1.2.3", series="1.2.3.4", sop=f"1.2.3.4.{{n}}")))
    arc.flush()
    deadline = time.monotonic() + 10
    while arc._incoming.made_ahead < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    os._exit(9)   # no close: the files made ahead stay
""")


def test_files_made_ahead_are_removed_after_a_crash_and_not_counted(workdir: Path):
    root = workdir / "archive"
    paths = [str(Path(__file__).resolve().parents[2])] + sys.path
    result = subprocess.run([sys.executable, "-c", CRASH.format(paths=paths, root=str(root))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 9, result.stderr
    left = _ahead(root)
    assert left and all(p.stat().st_size == 0 for p in left)
    with Archive(root) as arc:
        report = arc.last_repair
        assert report is not None and report.temp_files_removed == 0  # none was an interrupted write
        assert not set(left) & set(_ahead(root))  # those left by the crash are gone
        assert arc.counts()["instances"] == 20 and arc.verify(deep=True).ok


def test_the_reserve_is_read_from_the_disk_only_near_it(workdir: Path):
    study, series = generate_uid(), generate_uid()
    with Archive(workdir / "far", min_free_bytes=1 << 20) as archive:
        for n in range(50):
            archive.store(*_encoded(make_dataset(study, series, fill=n)), batched=True)
        far = archive._writer.reserve.asked
    free = shutil.disk_usage(workdir).free
    with Archive(workdir / "near", min_free_bytes=max(free - (32 << 20), 1)) as archive:  # 32 MB above it
        for n in range(50):
            archive.store(*_encoded(make_dataset(study, series, fill=n)), batched=True)
        near = archive._writer.reserve.asked
    assert far <= 2, far  # one statvfs() stands for the next second's writes
    assert near >= 50, near  # within the margin: every file against the disk, as before
    with Archive(workdir / "full", min_free_bytes=1 << 62) as archive:
        with pytest.raises(OSError) as refused:
            archive.store(*_encoded(make_dataset(study, series, fill=1)))
        assert "reserve" in str(refused.value)
