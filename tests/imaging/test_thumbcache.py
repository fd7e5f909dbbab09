"""core.thumbcache: keyed by SOP Instance UID, size and the source file's fingerprint."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pacsbrowser.core.imaging import Kind, render
from pacsbrowser.core.thumbcache import ThumbnailCache, fingerprint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")


@pytest.fixture
def source(samples, workdir) -> Path:
    """A private copy of a sample, so the test can replace it."""
    path = workdir / "ct.dcm"
    shutil.copyfile(samples["ct_two_windows"].path, path)
    return path


@pytest.fixture
def cache(workdir) -> ThumbnailCache:
    return ThumbnailCache(workdir / "archive" / "thumbnails")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_round_trip_keeps_pixels_and_what_the_thumbnail_says(cache, source):
    thumbnail = render(source, 64)
    uid = thumbnail.sop_instance_uid
    assert cache.get(uid, 64, source) is None
    path = cache.put(uid, 64, source, thumbnail)
    assert path is not None and path.is_relative_to(cache.directory) and path.suffix == ".png"
    again = cache.get(uid, 64, source)
    np.testing.assert_array_equal(again.pixels, thumbnail.pixels)
    assert not again.pixels.flags.writeable
    for attr in ("kind", "label", "sop_instance_uid", "modality", "photometric", "transfer_syntax", "rows",
                 "columns", "frames", "frame", "window"):
        assert getattr(again, attr) == getattr(thumbnail, attr), attr
    assert cache.get(uid, 128, source) is None  # another size is another entry


def test_placeholders_and_colour_are_cached_too(cache, samples, workdir):
    for name in ("sr", "rgb", "truncated_pixels"):
        src = workdir / f"{name}.dcm"
        shutil.copyfile(samples[name].path, src)
        thumbnail = render(src, 32)
        uid = thumbnail.sop_instance_uid or f"2.25.{len(name)}"
        cache.put(uid, 32, src, thumbnail)
        again = cache.get(uid, 32, src)
        assert (again.kind, again.label, again.detail) == (thumbnail.kind, thumbnail.label, thumbnail.detail)
        np.testing.assert_array_equal(again.pixels, thumbnail.pixels)
    assert cache.get("2.25.4242.40", 32, workdir / "sr.dcm").kind is Kind.NO_PIXELS


def test_a_replaced_instance_is_a_miss_and_its_stale_entry_goes(cache, source, samples):
    thumbnail = render(source, 64)
    uid = thumbnail.sop_instance_uid
    old = cache.put(uid, 64, source, thumbnail)
    # the archive replaces the file: a new file renamed over the old one (new inode, new mtime)
    replacement = source.with_name("incoming.tmp")
    shutil.copyfile(samples["mono1"].path, replacement)
    os.replace(replacement, source)
    assert cache.get(uid, 64, source) is None
    newer = render(source, 64)
    new = cache.put(uid, 64, source, newer)
    assert new != old and not old.exists()
    assert cache.entries(uid) == [new]
    np.testing.assert_array_equal(cache.get(uid, 64, source).pixels, newer.pixels)


def test_same_size_same_second_rewrite_is_still_a_miss(cache, source):
    """Rewritten in place with the same size: mtime_ns changes (and the inode is kept)."""
    thumbnail = render(source, 64)
    uid = thumbnail.sop_instance_uid
    cache.put(uid, 64, source, thumbnail)
    before = fingerprint(source)
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert fingerprint(source) != before
    assert cache.get(uid, 64, source) is None


def test_invalidate_drops_every_size(cache, source):
    thumbnail = render(source, 64)
    uid = thumbnail.sop_instance_uid
    for size in (32, 64, 128):
        cache.put(uid, size, source, render(source, size))
    assert len(cache.entries(uid)) == 3
    assert cache.invalidate(uid) == 3
    assert cache.entries(uid) == [] and cache.get(uid, 64, source) is None
    assert cache.invalidate(uid) == 0  # nothing left: no error


def test_a_damaged_entry_is_a_miss_and_is_removed(cache, source):
    thumbnail = render(source, 64)
    uid = thumbnail.sop_instance_uid
    path = cache.put(uid, 64, source, thumbnail)
    path.write_bytes(path.read_bytes()[:100])
    assert cache.get(uid, 64, source) is None
    assert not path.exists()


def test_missing_source_is_a_miss_not_an_error(cache, workdir, source):
    thumbnail = render(source, 64)
    assert cache.put("2.25.1", 64, workdir / "gone.dcm", thumbnail) is None
    assert cache.get("2.25.1", 64, workdir / "gone.dcm") is None


def test_a_crafted_uid_stays_inside_the_cache(cache, source):
    thumbnail = render(source, 16)
    for uid in ("../../../../etc/passwd", "/abs/olute", "1.2.3/../../x", "C:\\x", "x" * 300):
        path = cache.put(uid, 16, source, thumbnail)
        assert path.resolve().is_relative_to(cache.directory.resolve()), uid
        assert cache.get(uid, 16, source) is not None
        assert cache.invalidate(uid) == 1
    assert cache.instance_dir("1.2.840.113619.2.55").name == "1.2.840.113619.2.55"  # valid UIDs are kept


def test_concurrent_writers_leave_one_whole_file(cache, source):
    thumbnail = render(source, 64)
    uid = thumbnail.sop_instance_uid
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                cache.put(uid, 64, source, thumbnail)
                got = cache.get(uid, 64, source)
                assert got is not None  # a reader never sees half a file
        except BaseException as exc:  # noqa: BLE001 - collected, asserted empty in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, name=f"cache-writer-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert [p.name for p in cache.entries(uid)] == [cache.path_for(uid, 64, fingerprint(source)).name]
    assert not [p for p in _files(cache.directory) if p.name.startswith(".tmp-")]


def test_clear(cache, source):
    thumbnail = render(source, 16)
    cache.put(thumbnail.sop_instance_uid, 16, source, thumbnail)
    cache.clear()
    assert cache.directory.is_dir() and _files(cache.directory) == []


def test_temporary_files_of_a_dead_writer_are_swept(cache, source):
    thumbnail = render(source, 16)
    uid = thumbnail.sop_instance_uid
    cache.put(uid, 16, source, thumbnail)
    folder = cache.instance_dir(uid)
    stale, fresh = folder / ".tmp-1-dead.png", folder / ".tmp-2-busy.png"
    stale.write_bytes(b"half a png")
    fresh.write_bytes(b"being written")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    cache.put(uid, 16, source, thumbnail)
    assert not stale.exists() and fresh.exists()  # a writer still at work is left alone
