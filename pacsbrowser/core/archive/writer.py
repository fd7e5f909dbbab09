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

from ..errors import ArchiveError
from .part10 import (
    InstanceInfo,
    MalformedDataset,
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


def fsync_dir(path: Path) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        header = parse_dataset(data, transfer_syntax)
        info = InstanceInfo.from_dataset(header, sop_class_uid, sop_instance_uid)
        if not info.sop_class_uid:
            raise MalformedDataset("the data set has no SOP Class UID")
        meta = _file_meta_bytes(info.sop_class_uid, info.sop_instance_uid, transfer_syntax, source_ae)
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
            if self.min_free_bytes:
                free = shutil.disk_usage(folder).free
                if free - size < self.min_free_bytes:
                    raise OSError(errno.ENOSPC, f"{free // (1024 * 1024)} MB free, less than the archive's reserve "
                                                f"of {self.min_free_bytes // (1024 * 1024)} MB after this file")
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=folder)
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
