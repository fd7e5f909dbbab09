"""The local archive: DICOM files on disk and an SQLite index of what a browser lists.

Layout under the archive root (platformdirs' user data dir by default)::

    <root>/index.sqlite              the index (WAL mode; -wal and -shm beside it)
    <root>/.lock                     held by the one process writing to this archive
    <root>/<study>/<series>/<instance>.dcm

Each of <study>, <series> and <instance> is the UID itself when it is a valid UID (digits and dots,
at most 64 characters) and ``x`` followed by a SHA-256 of the value otherwise: received data never
decides where a file goes, so a UID crafted like ``../../etc`` lands inside the root like any other.

Files are written atomically: a temporary ``.tmp-*`` file in the destination folder, fsync, rename.
The bytes of the data set are stored as received (no decode and re-encode), behind a File Meta
Information header that records the transfer syntax and the sending AE.

A writer that can lose the last files on a crash (a C-GET: the PACS still holds them) asks for
`store(..., batched=True)`: the reply goes once the bytes are written, and fsync, rename and indexing
follow in groups (core.archive.committer); otherwise each file is fsynced and renamed, and its folder
fsynced (shared between concurrent writers), before `store` returns.

Writing and indexing are apart: `store` (any thread, e.g. a Storage SCP handler) writes the file,
queues it for the archive's one indexer thread and returns at once; the indexer commits in batches
and then calls back. (`write_instance` + `submit`/`add` do the same in two steps; `import_file`
copies a Part 10 file in.) Reads use their own connection and see committed data. A second copy of
the same SOP Instance UID replaces the first (one row, one file). One process writes to an archive
(a lock file says which); others may open it read-only.

The index is a cache of the files: `rebuild()` makes it again from them. The index records
whether the archive was closed cleanly; opening it after a crash runs `repair()`: temporary files
of interrupted writes are deleted, files that were written but not yet indexed are indexed, rows
whose file is gone are dropped.

The package, one module a job: paths (where files go), part10 (the bytes of a file), index (the
SQLite index and its SQL), writer (the write path), indexer (the indexing thread), maintenance
(repair, rebuild, verify), lock (one writing process); the Archive composes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import validation
from ..errors import ArchiveError
from . import index
from .committer import Committer, FolderSyncs
from .incoming import Incoming
from .index import IndexReader, InstanceRow, PatientRow, RepairReport, SeriesRow, StudyRow, VerifyReport
from .indexer import IndexedCallback, Indexer
from .lock import DirLock
from .maintenance import Maintenance, has_data_folders, move_index_aside
from .part10 import HEADER_TAGS, InstanceInfo, MalformedDataset, RawHeader, StoredInstance, parse_dataset, split_part10
from .paths import (
    DEFAULT_MIN_FREE_BYTES,
    INDEX_NAME,
    LOCK_NAME,
    default_archive_dir,
    is_valid_uid,
    relative_path,
    safe_name,
)
from .removal import DeleteReport, delete_rows_and_files
from .writer import FileWriter, PendingPaths, StreamingWrite, WriteGate, start_writeback

log = logging.getLogger(__name__)


class Archive:
    """The local archive at `root` (default: `default_archive_dir()`).

    Open for writing (the default) takes an exclusive lock on the folder: one process writes, any
    number read (`readonly=True`, no lock, no repair). Thread-safe: `store` from any thread;
    indexing on the archive's own thread; queries from any thread.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        readonly: bool = False,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        durable: bool = True,
    ) -> None:
        if root is None:  # PACSBROWSER_ARCHIVE_DIR is user input: checked like a flag
            try:
                validation.environment_directory("PACSBROWSER_ARCHIVE_DIR")
            except validation.InvalidInput as exc:
                raise ArchiveError(str(exc)) from None
        self.root = Path(root) if root is not None else default_archive_dir()
        self.readonly = readonly
        self.index_path = self.root / INDEX_NAME
        self.last_repair: RepairReport | None = None
        self._pending = PendingPaths()
        self._gate = WriteGate(self.root, readonly)
        self._writer = FileWriter(self.root, self._pending, min_free_bytes=min_free_bytes, durable=durable)
        self._incoming = Incoming(self.root)
        if not readonly:
            self._writer.incoming = self._incoming  # temporary files made ahead (core.archive.incoming)
        self._indexer = Indexer(self.index_path, self.root, self._pending,
                                commit=lambda conn, batch: self._index_batch(conn, batch))
        self._folder_syncs = FolderSyncs()
        self._writer.sync_folder = self._folder_syncs.sync
        self._committer = Committer(self._pending, self._indexer.submit, durable=durable)
        self._maintenance = Maintenance(self.root, self._pending)
        self._lock: DirLock | None = None
        self._read_lock = threading.Lock()
        if readonly:
            if not self.index_path.exists():
                raise ArchiveError(f"{self.root} is not a pacsbrowser archive (no {INDEX_NAME})")
            try:
                self._reader = index.connect(self.index_path, readonly=True, check_same_thread=False)
                index.check_schema(self._reader, self.index_path)
            except sqlite3.Error as exc:
                raise ArchiveError(f"cannot read the archive index {self.index_path}: {exc}") from exc
        else:
            self._open_for_writing()
        self._index = IndexReader(self._reader, self._read_lock, self.root)

    # ---- opening and closing

    def _open_for_writing(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create the archive folder {self.root}: {exc.strerror or exc}") from exc
        lock = DirLock(self.root / LOCK_NAME)
        if not lock.acquire():
            raise ArchiveError(f"the archive {self.root} is in use by another pacsbrowser (process {lock.holder()})")
        self._lock = lock
        try:
            try:
                self._prepare_index()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise
                # Not a database any more (a disk error, a bad copy): keep it aside, index the files anew.
                aside = move_index_aside(self.index_path)
                log.error("the archive index %s is damaged (%s); it was moved to %s and is being made again "
                          "from the files", self.index_path, exc, aside)
                self._prepare_index()
            self._reader = index.connect(self.index_path, check_same_thread=False)
        except sqlite3.Error as exc:
            lock.release()
            raise ArchiveError(f"cannot open the archive index {self.index_path}: {exc}") from exc
        except BaseException:
            lock.release()
            raise
        self._indexer.start()

    def _prepare_index(self) -> None:
        """Create or check the index; repair it when the archive was not closed cleanly, or index
        the files when the index is new and the folder is not empty."""
        new = not self.index_path.exists()
        conn = index.connect(self.index_path)
        try:
            index.create_schema(conn, new)
            index.check_schema(conn, self.index_path)
            clean = index.get_meta(conn, "clean") == "1"
            if not clean or (new and has_data_folders(self.root)):
                if new:
                    log.warning("archive %s has no index: indexing its files", self.root)
                else:
                    log.warning("archive %s was not closed cleanly: repairing", self.root)
                self.last_repair = self._maintenance.reconcile(conn, trust_rows=True, remove_temp=True)
            index.set_meta(conn, "clean", "0")
        finally:
            conn.close()

    def close(self, timeout: float = 30.0) -> None:
        """Index what is queued, mark the archive clean and let go of it. Idempotent."""
        if self._gate.closed:
            return
        self._index.closed = True
        left = self._gate.close(timeout)  # no new writes from here on
        if left:
            log.error("%d writes to the archive did not finish within %.0f s", left, timeout)
        self._committer.stop(timeout)  # the files written in batches: renamed, handed to the indexer
        self._incoming.close()
        self._indexer.stop(clean=not left, timeout=timeout)
        self._index.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._gate.closed

    # ---- writing

    @property
    def min_free_bytes(self) -> int:
        """Writes that would leave less free space than this are refused (ENOSPC)."""
        return self._writer.min_free_bytes

    @min_free_bytes.setter
    def min_free_bytes(self, value: int) -> None:
        self._writer.min_free_bytes = value

    @property
    def durable(self) -> bool:
        """Whether each file is fsynced before it counts as stored."""
        return self._writer.durable

    def path_for(self, info: InstanceInfo) -> Path:
        return self.root / relative_path(info.study_uid, info.series_uid, info.sop_instance_uid)

    def store(
        self,
        data: bytes,
        transfer_syntax: str,
        *,
        sop_class_uid: str = "",
        sop_instance_uid: str = "",
        source_ae: str = "",
        received_at: float | None = None,
        on_indexed: IndexedCallback | None = None,
        batched: bool = False,
    ) -> StoredInstance:
        """Write an encoded data set (without File Meta Information) as received, and queue it for
        indexing: what a Storage SCP handler calls. Returns once the file is in place (renamed);
        `on_indexed(stored, replaced)` runs on the indexer thread after the commit.

        Raises MalformedDataset when the data set cannot be read or lacks its UIDs, OSError when it
        cannot be written (ENOSPC when the disk is full or would keep less than `min_free_bytes`),
        ArchiveError when the archive is closed. Nothing is left behind on failure.

        `batched`: return once the bytes are written to a temporary file; the fsync, the rename and
        the indexing follow in groups on a background thread (core.archive.committer): a crash may
        lose the files not yet renamed, never leaves a half file listed. For a sender that still
        holds the data (a C-GET's PACS); `flush` waits for them.
        """
        with self._gate.section():
            if batched:
                stored, tmp = self._writer.write_unfinished(
                    data, transfer_syntax, sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid,
                    source_ae=source_ae, received_at=received_at)
                return self._queue(stored, tmp, on_indexed)
            stored = self._writer.write_encoded(data, transfer_syntax, sop_class_uid=sop_class_uid,
                                                sop_instance_uid=sop_instance_uid, source_ae=source_ae,
                                                received_at=received_at)
            return self._queue(stored, None, on_indexed)

    def _queue(self, stored: StoredInstance, unfinished: Path | None,
               on_indexed: IndexedCallback | None, *, fd: int | None = None) -> StoredInstance:
        """A written instance on its way into the index: straight to the indexer when it is in place,
        through the committer (fsync and rename in groups) when still in its temporary file (open
        as `fd`, when the writer kept it open: see Committer.add)."""
        if unfinished is not None:
            self._committer.add(stored, unfinished, on_indexed, fd=fd)
        else:
            self._indexer.submit(stored, on_indexed)
        return stored

    def open_stream(
        self,
        head: bytes | bytearray,
        header_end: int,
        transfer_syntax: str,
        *,
        sop_class_uid: str = "",
        sop_instance_uid: str = "",
        source_ae: str = "",
        received_at: float | None = None,
        on_indexed: IndexedCallback | None = None,
        header: RawHeader | None = None,
    ) -> "ArchiveStream":
        """Start storing an encoded data set whose bytes are still arriving (core.dicom.bulkreceive):
        `head` is its start, holding at least everything before its pixel data (`head[:header_end]`,
        what the header is read from, unless `header` holds its elements already). Then `write` the
        rest and `commit`, or `abandon`. The file, its File Meta and its indexing are those `store`
        gives the same bytes.

        Raises what `store` raises (MalformedDataset, OSError, ArchiveError); nothing is left behind."""
        stream = ArchiveStream(self, on_indexed)
        try:
            stream.begin(head, header_end, transfer_syntax, sop_class_uid=sop_class_uid,
                         sop_instance_uid=sop_instance_uid, source_ae=source_ae, received_at=received_at,
                         header=header)
        except BaseException:
            stream.abandon()
            raise
        return stream

    def write_instance(self, data: bytes, transfer_syntax: str, **origin: Any) -> StoredInstance:
        """Like `store` (the same keywords but `on_indexed`), without indexing: the caller hands
        the result to `submit` or `add`."""
        with self._gate.section():
            return self._writer.write_encoded(data, transfer_syntax, **origin)

    def import_file(self, path: Path | str, *, source_ae: str = "", timeout: float | None = 60.0) -> StoredInstance:
        """Copy a DICOM Part 10 file into the archive (its data set bytes unchanged) and index it."""
        data = Path(path).read_bytes()
        with self._gate.section():
            stored = self._writer.write_part10(data, source_ae=source_ae)
        self.add(stored, timeout)
        return stored

    def submit(self, stored: StoredInstance, on_indexed: IndexedCallback | None = None) -> None:
        """Queue `stored` (from `write_instance`) for indexing; `on_indexed(stored, replaced)` runs
        on the indexer thread after the commit."""
        self._gate.require_writable()
        self._indexer.submit(stored, on_indexed)

    def add(self, stored: StoredInstance, timeout: float | None = 60.0) -> bool:
        """Index `stored` now (waits for the indexer); True when it replaced an earlier copy."""
        self._gate.require_writable()
        return self._indexer.add(stored, timeout)

    def flush(self, timeout: float | None = 60.0) -> None:
        """Wait until everything submitted before this call is in place and indexed."""
        if self.readonly or self.closed or not self._indexer.running:
            return
        self._committer.flush(timeout)
        self._call(lambda conn: None, timeout)

    def _index_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> list[Any]:
        """The indexer's commit of one batch, late-bound through here: tests stall it to show that
        a slow index never stalls a sender."""
        return self._indexer.index_batch(conn, batch)

    def _call(self, fn: Callable[[sqlite3.Connection], Any], timeout: float | None) -> Any:
        return self._indexer.call(fn, timeout)

    # ---- maintenance

    def read_stored(self, rel: str, stat: os.stat_result | None = None) -> StoredInstance:
        """Read an archived file's header back into a StoredInstance (for repair and rebuild)."""
        return self._maintenance.read_stored(rel, stat)

    def delete_study(self, study_uid: str, timeout: float | None = 600.0) -> DeleteReport:
        """Remove a study's files and rows (see core.archive.removal)."""
        return self._delete(timeout, study_uid=study_uid)

    def delete_series(self, series_uid: str, timeout: float | None = 600.0) -> DeleteReport:
        """Remove a series' files and rows."""
        return self._delete(timeout, series_uid=series_uid)

    def _delete(self, timeout: float | None, **which: str) -> DeleteReport:
        self._gate.require_writable()
        return self._call(lambda conn: delete_rows_and_files(conn, self.root, busy=self._pending.busy,
                                                             prune=index.prune_all, **which), timeout)

    def repair(self, timeout: float | None = 600.0) -> RepairReport:
        """Make the index agree with the files (rows re-read only where the file changed)."""
        self._gate.require_writable()
        return self._call(lambda conn: self._maintenance.reconcile(conn, trust_rows=True, remove_temp=False), timeout)

    def rebuild(self, timeout: float | None = 3600.0) -> RepairReport:
        """Make the index again by reading every file."""
        self._gate.require_writable()
        return self._call(lambda conn: self._maintenance.reconcile(conn, trust_rows=False, remove_temp=False),
                          timeout)

    def verify(self, *, deep: bool = False) -> VerifyReport:
        """Check that index and files agree: every row's file exists with its size, every file is
        indexed, no temporary file is left, SQLite's own check passes. With `deep`, every file is
        read and its UIDs compared with its row."""
        self.flush()
        return self._maintenance.verify(self._index, deep=deep, readonly=self.readonly)

    # ---- reading (core.archive.index.IndexReader)

    @property
    def index_reader(self) -> IndexReader:
        """The read side of the index (core.archive.query builds its SQL on it)."""
        return self._index

    def counts(self) -> dict[str, int]:
        return self._index.counts()

    def has_instance(self, sop_instance_uid: str) -> bool:
        return self._index.has_instance(sop_instance_uid)

    def patients(self) -> list[PatientRow]:
        return self._index.patients()

    def studies(self, patient_key: str | None = None) -> list[StudyRow]:
        return self._index.studies(patient_key)

    def holds_any(self, study_uid: str, series_uid: str = "") -> bool:
        """Whether the archive lists any instance of the study (of the series, with `series_uid`)."""
        return self._index.holds_any(study_uid, series_uid)

    def series(self, study_uid: str) -> list[SeriesRow]:
        return self._index.series(study_uid)

    def instances(self, series_uid: str | None = None, *, study_uid: str | None = None) -> list[InstanceRow]:
        return self._index.instances(series_uid, study_uid=study_uid)

    def instance(self, sop_instance_uid: str) -> InstanceRow | None:
        return self._index.instance(sop_instance_uid)

    def path_of(self, sop_instance_uid: str) -> Path | None:
        row = self.instance(sop_instance_uid)
        return row.path if row else None


class ArchiveStream:
    """One instance being stored as it arrives (`Archive.open_stream`): a write section of the
    archive (closing waits for it) around a `StreamingWrite`, then the indexing `store` queues."""

    def __init__(self, archive: Archive, on_indexed: IndexedCallback | None) -> None:
        self._archive, self._on_indexed = archive, on_indexed
        self._section = contextlib.ExitStack()
        self._write: StreamingWrite | None = None

    def begin(self, head: bytes | bytearray, header_end: int, transfer_syntax: str, **origin: Any) -> None:
        self._section.enter_context(self._archive._gate.section())
        self._write = StreamingWrite(self._archive._writer, head, header_end, transfer_syntax, **origin)

    @property
    def size(self) -> int:
        """Bytes written so far, File Meta included."""
        return self._write.size if self._write is not None else 0

    def write(self, chunks: list[memoryview]) -> None:
        """Append `chunks` (written before this returns). Raises OSError."""
        if self._write is None:
            raise ValueError("the stream is closed")
        self._write.write(chunks)

    def commit(self) -> StoredInstance:
        """Put the file in place, durably (fsync, rename, folder fsync), and queue its indexing;
        raises OSError (nothing left behind). For a sender that still holds the data (a C-GET's
        PACS), `commit_later`: the fsync, the rename and the indexing follow in groups."""
        write, self._write = self._write, None
        if write is None:
            raise ValueError("the stream is closed")
        try:
            return self._archive._queue(write.commit(), None, self._on_indexed)
        finally:
            self._section.close()

    def commit_later(self) -> tuple[StoredInstance, Callable[[], None]]:
        """Batched durability (`Archive.store(..., batched=True)`) in two steps: the checks now (the
        reserve; raises OSError, nothing left behind), the hand-over to the committer (fsync,
        rename, indexing in groups) when the function returned is called, which the caller must
        do (in a `finally`): a C-STORE's reply can go out between the two, before the committer's
        thread is woken."""
        write, self._write = self._write, None
        if write is None:
            raise ValueError("the stream is closed")
        try:
            stored, tmp, fd = write.unfinished()
        except BaseException:
            self._section.close()
            raise

        def hand_over() -> None:
            try:
                if self._archive.durable:
                    start_writeback(fd)  # the committer's fsync then finds the data on its way
                self._archive._queue(stored, tmp, self._on_indexed, fd=fd)
            finally:
                self._section.close()

        return stored, hand_over

    def abandon(self) -> None:
        """Drop what was written. Idempotent."""
        write, self._write = self._write, None
        try:
            if write is not None:
                write.abandon()
        finally:
            self._section.close()


__all__ = [
    "DEFAULT_MIN_FREE_BYTES",
    "HEADER_TAGS",
    "Archive",
    "ArchiveStream",
    "DeleteReport",
    "InstanceInfo",
    "InstanceRow",
    "MalformedDataset",
    "PatientRow",
    "RawHeader",
    "RepairReport",
    "SeriesRow",
    "StoredInstance",
    "StudyRow",
    "VerifyReport",
    "default_archive_dir",
    "is_valid_uid",
    "parse_dataset",
    "relative_path",
    "safe_name",
    "split_part10",
]
