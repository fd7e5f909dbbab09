"""The write path: an encoded data set becomes a file in the archive (a temporary file in the
destination folder, fsync, rename), behind the File Meta Information we write; and the bookkeeping
that lets closing, indexing and maintenance respect writes under way."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ArchiveError
from .incoming import Incoming
from .part10 import (
    InstanceInfo,
    MalformedDataset,
    RawHeader,
    StoredInstance,
    _file_meta_bytes,
    parse_dataset,
    split_part10,
)
from .paths import TEMP_PREFIX, relative_path


def _write_chunks(fd: int, chunks: Iterable[bytes]) -> None:
    """How the bytes reach the disk (a test hook: tests make it fail with ENOSPC half way)."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def _write_rest(fd: int, chunk: memoryview) -> None:
    while chunk:
        chunk = chunk[os.write(fd, chunk):]


def _refuse_below(free: int, size: int, minimum: int) -> None:
    if free - size < minimum:
        raise OSError(errno.ENOSPC, f"{free // (1024 * 1024)} MB free, less than the archive's reserve "
                                    f"of {minimum // (1024 * 1024)} MB after this file")


class Reserve:
    """The archive's reserve (`min_free_bytes`) checked for a stream of writes without a statvfs()
    per file: the free space read last, less every byte checked since, stands for the disk's while
    it is under `refresh` seconds old and leaves `margin` bytes above the reserve; otherwise the
    disk is asked, as for every file before. What others write meanwhile (the index's own growth,
    other programs) must exceed the margin within a second to cross the reserve; near the reserve,
    every file is checked against the disk."""

    def __init__(self, refresh: float = 1.0, margin: int = 64 << 20) -> None:
        self.refresh, self.margin = refresh, margin
        self.asked = 0  # statvfs() calls (tests read it)
        self._lock = threading.Lock()
        self._free: int | None = None
        self._at = 0.0

    def check(self, folder: Path, size: int, minimum: int, *, written: int = 0) -> None:
        """ENOSPC when `size` more bytes would leave less than `minimum` free; `written`: bytes
        already on the disk since the last check (a streamed file, checked once complete)."""
        if not minimum:
            return
        with self._lock:
            free = self._free
            if free is not None and time.monotonic() - self._at < self.refresh:
                estimate = free - written - size
                if estimate >= minimum + self.margin:
                    self._free = estimate
                    return
        self.asked += 1
        free = shutil.disk_usage(folder).free
        with self._lock:
            self._free, self._at = free - size, time.monotonic()
        _refuse_below(free, size, minimum)


def _describe(header: Any, transfer_syntax: str, sop_class_uid: str, sop_instance_uid: str,
              source_ae: str) -> tuple[InstanceInfo, bytes]:
    """What a data set's header says of it, and the File Meta bytes it is stored behind; the same for
    a whole data set (`FileWriter`) and a streamed one (`StreamingWrite`)."""
    info = InstanceInfo.from_dataset(header, sop_class_uid, sop_instance_uid)
    if not info.sop_class_uid:
        raise MalformedDataset("the data set has no SOP Class UID")
    return info, _file_meta_bytes(info.sop_class_uid, info.sop_instance_uid, transfer_syntax, source_ae)


def fsync_dir(path: Path) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_FADVISE = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 0)


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing a file's dirty pages now, without waiting (Linux: fadvise
    DONTNEED starts writeback of the dirty pages and drops only the pages already clean: a file
    just written mostly stays cached). The committer's fsync later finds the data on its way: on
    the lab's ext4, fsyncing 128 fresh 0.5 MB files took 90-110 ms, 23 ms when each was started
    this way as it was handed over; the last group of a 500-image C-GET, which the job waits for,
    went from 76-133 ms to 8-18 ms. Best effort: no error raised, nothing done without posix_fadvise."""
    if _FADVISE is None:
        return
    try:
        _FADVISE(fd, 0, 0, _DONTNEED)
    except OSError:
        pass


class PendingPaths:
    """The relative paths being written or waiting to be indexed: the indexer and maintenance
    leave those files alone. Hold `lock` to check and act on a path in one step."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, rel: str) -> None:
        with self.lock:
            self._counts[rel] += 1

    def release(self, rel: str) -> None:
        with self.lock:
            self.release_locked(rel)

    def release_locked(self, rel: str) -> None:
        self._counts[rel] -= 1
        if self._counts[rel] <= 0:
            del self._counts[rel]

    def busy(self, rel: str) -> bool:
        with self.lock:
            return self.busy_locked(rel)

    def busy_locked(self, rel: str) -> bool:
        return bool(self._counts.get(rel))


class WriteGate:
    """Writes under way (each in a `section`); once closed, no new one starts and `close` waits
    for the rest."""

    def __init__(self, root: Path, readonly: bool) -> None:
        self.root, self.readonly = root, readonly
        self.closed = False
        self._writers = 0
        self._cond = threading.Condition()

    def require_writable(self) -> None:
        if self.readonly:
            raise ArchiveError(f"the archive {self.root} is open read-only")
        if self.closed:
            raise ArchiveError(f"the archive {self.root} is closed")

    @contextmanager
    def section(self) -> Iterator[None]:
        with self._cond:
            self.require_writable()
            self._writers += 1
        try:
            yield
        finally:
            with self._cond:
                self._writers -= 1
                self._cond.notify_all()

    def close(self, timeout: float) -> int:
        """Refuse new writes and wait up to `timeout` s for those under way; how many are left."""
        with self._cond:
            self.closed = True
            self._cond.wait_for(lambda: self._writers == 0, timeout)
            return self._writers


class FileWriter:
    """Writes instances under `root`: atomically (temporary file, fsync unless not `durable`,
    rename), never leaving a partial file, refusing with ENOSPC a file that would leave less than
    `min_free_bytes` free. The path of each file stays in `pending` until its indexing releases it."""

    def __init__(self, root: Path, pending: PendingPaths, *, min_free_bytes: int, durable: bool) -> None:
        self.root, self.pending = root, pending
        self.min_free_bytes, self.durable = min_free_bytes, durable
        # how a folder is fsynced after a rename into it (the archive shares one among writers)
        self.sync_folder: Callable[[Path], None] = fsync_dir
        self.reserve = Reserve()
        # temporary files made ahead (core.archive.incoming), when the archive has them
        self.incoming: Incoming | None = None

    def temp_file(self, folder: Path) -> tuple[int, str]:
        """An open temporary file in `folder` (made when missing) to write an instance into."""
        ready = self.incoming.take(folder) if self.incoming is not None else None
        if ready is not None:
            return ready
        try:
            return tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=folder)
        except FileNotFoundError:  # a new series: its folder first
            folder.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=folder)

    def write_encoded(self, data: bytes, transfer_syntax: str, *, sop_class_uid: str = "",
                      sop_instance_uid: str = "", source_ae: str = "", received_at: float | None = None
                      ) -> StoredInstance:
        """An encoded data set without File Meta Information, stored as received. Raises
        MalformedDataset or OSError; nothing is left behind on failure."""
        info, chunks = self._prepare(data, transfer_syntax, sop_class_uid, sop_instance_uid, source_ae)
        stored, _ = self._write(info, chunks, transfer_syntax, source_ae, received_at)
        return stored

    def write_unfinished(self, data: bytes, transfer_syntax: str, *, sop_class_uid: str = "",
                         sop_instance_uid: str = "", source_ae: str = "", received_at: float | None = None
                         ) -> tuple[StoredInstance, Path]:
        """Like `write_encoded`, but the bytes stay in their temporary file, not yet fsynced nor
        renamed: (the instance as it will be stored, the temporary file). The caller
        (core.archive.committer) finishes it, or removes it and releases its path."""
        info, chunks = self._prepare(data, transfer_syntax, sop_class_uid, sop_instance_uid, source_ae)
        stored, unfinished = self._write(info, chunks, transfer_syntax, source_ae, received_at, finish=False)
        assert unfinished is not None
        return stored, unfinished

    @staticmethod
    def _prepare(data: bytes, transfer_syntax: str, sop_class_uid: str, sop_instance_uid: str,
                 source_ae: str) -> tuple[InstanceInfo, list[bytes]]:
        info, meta = _describe(parse_dataset(data, transfer_syntax), transfer_syntax, sop_class_uid,
                               sop_instance_uid, source_ae)
        return info, [meta, data]

    def write_part10(self, data: bytes, *, source_ae: str = "") -> StoredInstance:
        """A DICOM Part 10 file's data set (its bytes unchanged), behind our own File Meta."""
        transfer_syntax, offset, _ = split_part10(data)
        return self.write_encoded(data[offset:], transfer_syntax, source_ae=source_ae)

    def _write(self, info: InstanceInfo, chunks: list[bytes], transfer_syntax: str, source_ae: str,
               received_at: float | None, *, finish: bool = True
               ) -> tuple[StoredInstance, Path | None]:
        rel = relative_path(info.study_uid, info.series_uid, info.sop_instance_uid)
        final = self.root / rel
        size = sum(len(c) for c in chunks)
        folder = final.parent
        # Every part of the path is ours: a valid UID or a hash. Check anyway.
        if folder.parent.parent != self.root:
            raise MalformedDataset("the UIDs do not make a path inside the archive")  # pragma: no cover
        self.pending.add(rel)
        tmp: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.reserve.check(folder, size, self.min_free_bytes)
            fd, tmp = self.temp_file(folder)
            if not finish:  # the committer fsyncs and renames it
                try:
                    _write_chunks(fd, chunks)
                    stat = os.fstat(fd)
                finally:
                    os.close(fd)
                unfinished: Path | None = Path(tmp)
            else:
                try:
                    _write_chunks(fd, chunks)
                    if self.durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, final)
                tmp = None
                if self.durable:
                    self.sync_folder(folder)
                stat = final.stat()
                unfinished = None
        except BaseException:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            self.pending.release(rel)
            raise
        return StoredInstance(
            info=info,
            relative_path=rel,
            path=final,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            transfer_syntax_uid=str(transfer_syntax),
            received_at=time.time() if received_at is None else received_at,
            source_ae=source_ae,
        ), unfinished


class StreamingWrite:
    """One instance written as its bytes arrive (core.dicom.bulkreceive: the P-DATA fragments of a
    C-STORE go to the disk as they come, the data set is never whole in memory).

    Opened with the start of the data set, up to its pixel data at least (`head`): that is what
    the header is read from, exactly as `FileWriter.write_encoded` reads it (or `header`, its
    elements already found by the caller's walk, part10.RawHeader), and it decides the
    File Meta (the same bytes: our Implementation Class UID and version, the sender's AE) and the
    file's place. The temporary file is made in the destination folder, as `FileWriter` does;
    `write` appends the rest; `commit` checks the reserve (`min_free_bytes`, once the size is
    known), fsyncs (when durable), renames and
    fsyncs the folder; `abandon` removes the temporary file. The path stays in `pending` until
    its indexing releases it (or `abandon` does).

    The first write (File Meta and `head`) goes through `_write_chunks`, the write path's test
    hook, so that a disk made to fill "half way" there refuses a streamed instance as it refuses a
    whole one; the rest goes out with one `os.writev` per batch of fragments.
    """

    def __init__(self, writer: FileWriter, head: bytes | bytearray, header_end: int, transfer_syntax: str, *,
                 sop_class_uid: str = "", sop_instance_uid: str = "", source_ae: str = "",
                 received_at: float | None = None, header: RawHeader | None = None) -> None:
        parsed = header if header is not None else parse_dataset(bytes(head[:header_end]), transfer_syntax)
        info, meta = _describe(parsed, transfer_syntax, sop_class_uid, sop_instance_uid, source_ae)
        self.info, self.transfer_syntax = info, str(transfer_syntax)
        self.source_ae, self.received_at = source_ae, received_at
        self.durable = writer.durable
        self._writer = writer
        self.rel = relative_path(info.study_uid, info.series_uid, info.sop_instance_uid)
        self.final = writer.root / self.rel
        folder = self.final.parent
        if folder.parent.parent != writer.root:
            raise MalformedDataset("the UIDs do not make a path inside the archive")  # pragma: no cover
        self.size = 0
        self.rel_committed = ""
        self._fd: int | None = None
        self._tmp: str | None = None
        writer.pending.add(self.rel)
        try:
            self._fd, self._tmp = writer.temp_file(folder)
            _write_chunks(self._fd, [meta, bytes(head)])
            self.size = len(meta) + len(head)
        except BaseException:
            self.abandon()
            raise

    def write(self, chunks: list[memoryview]) -> None:
        """Append `chunks` (views into a receive buffer: written before this returns). Raises
        OSError (ENOSPC on a full disk); the caller then abandons the write."""
        fd = self._fd
        if fd is None:
            raise ValueError("the streamed write is finished")
        total = 0
        for chunk in chunks:
            total += len(chunk)
        written = os.writev(fd, chunks)
        if written < total:  # a short write: the rest, chunk by chunk
            skip = written
            for chunk in chunks:
                if skip >= len(chunk):
                    skip -= len(chunk)
                    continue
                _write_rest(fd, chunk[skip:])
                skip = 0
        self.size += total

    def commit(self) -> StoredInstance:
        """Check the reserve (the file is written: the space it takes is already gone), fsync when
        durable, rename into place, fsync the folder when durable. Raises OSError (nothing left)."""
        fd, tmp = self._fd, self._tmp
        if fd is None or tmp is None:
            raise ValueError("the streamed write is finished")
        try:
            self._writer.reserve.check(self._writer.root, 0, self._writer.min_free_bytes, written=self.size)
            if self.durable:
                os.fsync(fd)
            self._fd = None
            os.close(fd)
            os.replace(tmp, self.final)
            self._tmp = None
            if self.durable:
                self._writer.sync_folder(self.final.parent)
            stat = self.final.stat()
        except BaseException:
            self.abandon()
            raise
        return self._stored(stat.st_size, stat.st_mtime_ns)

    def unfinished(self) -> tuple[StoredInstance, Path, int]:
        """Like `commit`, but the bytes stay in their temporary file, neither fsynced nor renamed,
        and the file stays open: (the instance as it will be stored, the temporary file, its
        descriptor), for core.archive.committer, which finishes it in a group (fsync, the file's
        time, close, rename) or removes it and releases its path. No system call here but the
        reserve's occasional statvfs(): this runs between a C-STORE's last fragment and its reply.
        Raises OSError (nothing left)."""
        fd, tmp = self._fd, self._tmp
        if fd is None or tmp is None:
            raise ValueError("the streamed write is finished")
        try:
            self._writer.reserve.check(self._writer.root, 0, self._writer.min_free_bytes, written=self.size)
        except BaseException:
            self.abandon()
            raise
        self._fd = self._tmp = None
        return self._stored(self.size, 0), Path(tmp), fd

    def _stored(self, size: int, mtime_ns: int) -> StoredInstance:
        self.rel_committed, self.rel = self.rel, ""  # its indexing (or the committer) releases the path from here on
        return StoredInstance(
            info=self.info,
            relative_path=self.rel_committed,
            path=self.final,
            size=size,
            mtime_ns=mtime_ns,
            transfer_syntax_uid=self.transfer_syntax,
            received_at=time.time() if self.received_at is None else self.received_at,
            source_ae=self.source_ae,
        )

    def abandon(self) -> None:
        """Remove the temporary file and release the path. Idempotent; never raises OSError."""
        fd, tmp, self._fd, self._tmp = self._fd, self._tmp, None, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        rel, self.rel = self.rel, ""
        if rel:
            self._writer.pending.release(rel)
