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
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path, PurePosixPath
from typing import Any


from ..errors import ArchiveError
from .index import _SCHEMA, InstanceRow, PatientRow, RepairReport, SeriesRow, StudyRow, VerifyReport, _connect
from .removal import DeleteReport, delete_rows_and_files
from .part10 import InstanceInfo, MalformedDataset, StoredInstance, _file_meta_bytes, parse_dataset, split_part10
from .paths import (
    DEFAULT_MIN_FREE_BYTES,
    INDEX_NAME,
    LOCK_NAME,
    SCHEMA_VERSION,
    SUFFIX,
    TEMP_PREFIX,
    default_archive_dir,
    is_valid_uid,
    relative_path,
    safe_name,
)

log = logging.getLogger(__name__)


def _write_chunks(fd: int, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


class _DirLock:
    """An exclusive lock on the archive (one writing process), released on close or death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.name == "nt":  # pragma: no cover - Windows
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


class _Job:
    __slots__ = ("kind", "payload", "callback", "future")

    def __init__(self, kind: str, payload: Any, callback: Any = None, future: Future | None = None) -> None:
        self.kind, self.payload, self.callback, self.future = kind, payload, callback, future


IndexedCallback = Callable[[StoredInstance, bool], None]


class Archive:
    """The local archive at `root` (default: `default_archive_dir()`).

    Open for writing (the default) takes an exclusive lock on the folder: one process writes, any
    number read (`readonly=True`, no lock, no repair). Thread-safe: `write_instance` from any
    thread; indexing on the archive's own thread; queries from any thread.
    """

    BATCH = 256

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        readonly: bool = False,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        durable: bool = True,
    ) -> None:
        self.root = Path(root) if root is not None else default_archive_dir()
        self.readonly = readonly
        self.min_free_bytes = min_free_bytes
        self.durable = durable
        self.index_path = self.root / INDEX_NAME
        self.last_repair: RepairReport | None = None
        self._closed = False
        self._clean_close = True
        self._writers = 0  # write-and-submit sections under way (close waits for them)
        self._writers_cond = threading.Condition()
        self._lock: _DirLock | None = None
        self._read_lock = threading.Lock()
        self._paths_lock = threading.Lock()
        self._pending_paths: Counter[str] = Counter()
        self._queue: "queue.Queue[_Job | None]" = queue.Queue()
        self._thread: threading.Thread | None = None
        self._index_failures = 0
        if readonly:
            if not self.index_path.exists():
                raise ArchiveError(f"{self.root} is not a pacsbrowser archive (no {INDEX_NAME})")
            try:
                self._reader = _connect(self.index_path, readonly=True, check_same_thread=False)
                self._check_schema(self._reader)
            except sqlite3.Error as exc:
                raise ArchiveError(f"cannot read the archive index {self.index_path}: {exc}") from exc
            return
        self._open_for_writing()

    # ---- opening and closing

    def _open_for_writing(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create the archive folder {self.root}: {exc.strerror or exc}") from exc
        lock = _DirLock(self.root / LOCK_NAME)
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
                aside = self._move_index_aside()
                log.error("the archive index %s is damaged (%s); it was moved to %s and is being made again "
                          "from the files", self.index_path, exc, aside)
                self._prepare_index()
            self._reader = _connect(self.index_path, check_same_thread=False)
        except sqlite3.Error as exc:
            lock.release()
            raise ArchiveError(f"cannot open the archive index {self.index_path}: {exc}") from exc
        except BaseException:
            lock.release()
            raise
        self._thread = threading.Thread(target=self._run_indexer, name="pacsbrowser-archive-indexer", daemon=True)
        self._thread.start()

    def _prepare_index(self) -> None:
        """Create or check the index; repair it when the archive was not closed cleanly, or index
        the files when the index is new and the folder is not empty."""
        new = not self.index_path.exists()
        conn = _connect(self.index_path)
        try:
            conn.executescript(_SCHEMA)
            if new:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '1')")
            self._check_schema(conn)
            clean = self._meta(conn, "clean") == "1"
            if not clean or (new and self._has_data_folders()):
                if new:
                    log.warning("archive %s has no index: indexing its files", self.root)
                else:
                    log.warning("archive %s was not closed cleanly: repairing", self.root)
                self.last_repair = self._reconcile(conn, trust_rows=True, remove_temp=True)
            self._set_meta(conn, "clean", "0")
        finally:
            conn.close()

    def _move_index_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.index_path.with_name(f"{INDEX_NAME}.damaged-{stamp}")
        os.replace(self.index_path, aside)
        for suffix in ("-wal", "-shm"):
            extra = self.index_path.with_name(INDEX_NAME + suffix)
            if extra.exists():
                os.replace(extra, aside.with_name(aside.name + suffix))
        return aside

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        version = self._meta(conn, "schema_version")
        if version is None or not version.isdigit() or int(version) > SCHEMA_VERSION:
            raise ArchiveError(f"the archive index {self.index_path} has schema version {version!r}; "
                               f"this pacsbrowser reads up to {SCHEMA_VERSION}")

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> str | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _has_data_folders(self) -> bool:
        return any(entry.is_dir() and not entry.name.startswith(".") for entry in os.scandir(self.root))

    def close(self, timeout: float = 30.0) -> None:
        """Index what is queued, mark the archive clean and let go of it. Idempotent."""
        if self._closed:
            return
        with self._writers_cond:
            self._closed = True  # no new writes from here on
            if not self._writers_cond.wait_for(lambda: self._writers == 0, timeout):
                log.error("%d writes to the archive did not finish within %.0f s", self._writers, timeout)
                self._clean_close = False
        if self._thread is not None:
            self._queue.put(_Job("close", None))
            self._queue.put(None)
            self._thread.join(timeout)
            if self._thread.is_alive():  # pragma: no cover - a stuck disk
                log.error("the archive indexer did not stop within %.0f s", timeout)
            self._thread = None
        with self._read_lock:
            self._reader.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- writing

    def _require_writable(self) -> None:
        if self.readonly:
            raise ArchiveError(f"the archive {self.root} is open read-only")
        if self._closed:
            raise ArchiveError(f"the archive {self.root} is closed")

    def _enter_write(self) -> None:
        with self._writers_cond:
            self._require_writable()
            self._writers += 1

    def _leave_write(self) -> None:
        with self._writers_cond:
            self._writers -= 1
            self._writers_cond.notify_all()

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
    ) -> StoredInstance:
        """Write an encoded data set (without File Meta Information) as received, and queue it for
        indexing: what a Storage SCP handler calls. Returns once the file is in place (renamed);
        `on_indexed(stored, replaced)` runs on the indexer thread after the commit.

        Raises MalformedDataset when the data set cannot be read or lacks its UIDs, OSError when it
        cannot be written (ENOSPC when the disk is full or would keep less than `min_free_bytes`),
        ArchiveError when the archive is closed. Nothing is left behind on failure.
        """
        self._enter_write()
        try:
            stored = self._write_encoded(data, transfer_syntax, sop_class_uid, sop_instance_uid, source_ae,
                                         received_at)
            self._queue.put(_Job("index", stored, on_indexed))
            return stored
        finally:
            self._leave_write()

    def write_instance(
        self,
        data: bytes,
        transfer_syntax: str,
        *,
        sop_class_uid: str = "",
        sop_instance_uid: str = "",
        source_ae: str = "",
        received_at: float | None = None,
    ) -> StoredInstance:
        """Like `store`, without indexing: the caller hands the result to `submit` or `add`."""
        self._enter_write()
        try:
            return self._write_encoded(data, transfer_syntax, sop_class_uid, sop_instance_uid, source_ae,
                                       received_at)
        finally:
            self._leave_write()

    def _write_encoded(self, data: bytes, transfer_syntax: str, sop_class_uid: str, sop_instance_uid: str,
                       source_ae: str, received_at: float | None) -> StoredInstance:
        header = parse_dataset(data, transfer_syntax)
        info = InstanceInfo.from_dataset(header, sop_class_uid, sop_instance_uid)
        if not info.sop_class_uid:
            raise MalformedDataset("the data set has no SOP Class UID")
        meta = _file_meta_bytes(info.sop_class_uid, info.sop_instance_uid, transfer_syntax, source_ae)
        return self._write(info, [meta, data], transfer_syntax, source_ae, received_at)

    def import_file(self, path: Path | str, *, source_ae: str = "", timeout: float | None = 60.0) -> StoredInstance:
        """Copy a DICOM Part 10 file into the archive (its data set bytes unchanged) and index it."""
        data = Path(path).read_bytes()
        transfer_syntax, offset, _ = split_part10(data)
        stored = self.write_instance(data[offset:], transfer_syntax, source_ae=source_ae)
        self.add(stored, timeout)
        return stored

    def _write(self, info: InstanceInfo, chunks: list[bytes], transfer_syntax: str, source_ae: str,
               received_at: float | None) -> StoredInstance:
        rel = relative_path(info.study_uid, info.series_uid, info.sop_instance_uid)
        final = self.root / rel
        size = sum(len(c) for c in chunks)
        folder = final.parent
        # Every part of the path is ours: a valid UID or a hash. Check anyway.
        if folder.parent.parent != self.root:
            raise MalformedDataset("the UIDs do not make a path inside the archive")  # pragma: no cover
        with self._paths_lock:
            self._pending_paths[rel] += 1
        tmp: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if self.min_free_bytes:
                free = shutil.disk_usage(folder).free
                if free - size < self.min_free_bytes:
                    raise OSError(errno.ENOSPC, f"{free // (1024 * 1024)} MB free, less than the archive's reserve "
                                                f"of {self.min_free_bytes // (1024 * 1024)} MB after this file")
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=folder)
            try:
                _write_chunks(fd, chunks)
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            tmp = None
            if self.durable:
                _fsync_dir(folder)
            stat = final.stat()
        except BaseException:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            with self._paths_lock:
                self._release_path(rel)
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
        )

    def _release_path(self, rel: str) -> None:
        self._pending_paths[rel] -= 1
        if self._pending_paths[rel] <= 0:
            del self._pending_paths[rel]

    def submit(self, stored: StoredInstance, on_indexed: IndexedCallback | None = None) -> None:
        """Queue `stored` (from `write_instance`) for indexing; `on_indexed(stored, replaced)` runs
        on the indexer thread after the commit."""
        self._require_writable()
        self._queue.put(_Job("index", stored, on_indexed))

    def add(self, stored: StoredInstance, timeout: float | None = 60.0) -> bool:
        """Index `stored` now (waits for the indexer); True when it replaced an earlier copy."""
        self._require_writable()
        future: Future = Future()
        self._queue.put(_Job("index", stored, lambda s, replaced: None, future))
        return bool(future.result(timeout))

    def flush(self, timeout: float | None = 60.0) -> None:
        """Wait until everything submitted before this call is indexed."""
        if self.readonly or self._closed or self._thread is None:
            return
        self._call(lambda conn: None, timeout)

    def _call(self, fn: Callable[[sqlite3.Connection], Any], timeout: float | None) -> Any:
        future: Future = Future()
        self._queue.put(_Job("call", fn, None, future))
        return future.result(timeout)

    # ---- the indexer thread

    def _run_indexer(self) -> None:
        conn = _connect(self.index_path)
        retry: list[_Job] = []
        try:
            while True:
                try:
                    job = self._queue.get(timeout=1.0 if retry else None)
                except queue.Empty:
                    job = _Job("retry", None)
                if job is None:
                    break
                batch = list(retry)
                retry = []
                calls: list[_Job] = []
                if job.kind == "index":
                    batch.append(job)
                elif job.kind in ("call", "close"):
                    calls.append(job)
                while len(batch) < self.BATCH and not calls:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    if nxt.kind == "index":
                        batch.append(nxt)
                    else:
                        calls.append(nxt)
                if batch:
                    retry = self._index_batch(conn, batch)
                for call in calls:
                    if call.kind == "close":
                        if not retry and not self._index_failures and self._clean_close:
                            try:
                                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                                self._set_meta(conn, "clean", "1")
                            except sqlite3.Error as exc:
                                log.error("cannot mark the archive clean: %s", exc)
                        elif retry:
                            log.error("%d received instances could not be indexed; the next start repairs "
                                      "the index from the files", len(retry))
                            retry = []
                        continue
                    try:
                        result = call.payload(conn)
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        if call.future is not None:
                            call.future.set_exception(exc)
                    else:
                        if call.future is not None:
                            call.future.set_result(result)
        finally:
            conn.close()

    def _index_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Job]:
        """Commit `batch` in one transaction; on failure return it to be retried."""
        results: list[bool] = []
        obsolete: list[str] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            moved: list[tuple[str, str]] = []
            for job in batch:
                replaced, old_path, left = self._upsert(conn, job.payload)
                results.append(replaced)
                if old_path is not None and old_path != job.payload.relative_path:
                    obsolete.append(old_path)
                moved.extend(left)
            if moved:
                self._prune(conn, moved)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._index_failures += 1
            log.error("cannot index %d received instances (%s); will retry", len(batch), exc)
            return batch
        # Files of replaced copies that moved elsewhere (another study or series): remove them
        # unless a write to that same path is under way.
        with self._paths_lock:
            for job in batch:
                self._release_path(job.payload.relative_path)
            for rel in obsolete:
                if self._pending_paths.get(rel):
                    continue
                if not self._path_in_index(conn, rel):
                    try:
                        (self.root / rel).unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        log.warning("cannot remove the replaced copy %s: %s", rel, exc)
        for job, replaced in zip(batch, results):
            try:
                if job.callback is not None:
                    job.callback(job.payload, replaced)
            except Exception:  # noqa: BLE001 - a listener's callback must not stop the indexer
                log.exception("error in an archive indexing callback")
            if job.future is not None:
                job.future.set_result(replaced)
        return []

    @staticmethod
    def _path_in_index(conn: sqlite3.Connection, rel: str) -> bool:
        return conn.execute("SELECT 1 FROM instances WHERE path = ?", (rel,)).fetchone() is not None

    @staticmethod
    def _upsert(conn: sqlite3.Connection, stored: StoredInstance) -> tuple[bool, str | None, list[tuple[str, str]]]:
        """Insert or update one instance and its parents. Returns (replaced, old path, the
        ("series" | "study" | "patient", key) parents it moved away from)."""
        i = stored.info
        old = conn.execute(
            "SELECT i.path, i.series_uid, s.study_uid, st.patient_key FROM instances i "
            "LEFT JOIN series s ON s.series_uid = i.series_uid LEFT JOIN studies st ON st.study_uid = s.study_uid "
            "WHERE i.sop_instance_uid = ?", (i.sop_instance_uid,)).fetchone()
        old_study = conn.execute("SELECT patient_key FROM studies WHERE study_uid = ?", (i.study_uid,)).fetchone()
        old_series = conn.execute("SELECT study_uid FROM series WHERE series_uid = ?", (i.series_uid,)).fetchone()
        conn.execute(
            "INSERT INTO patients (patient_key, patient_id, issuer, patient_name, birth_date, sex) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(patient_key) DO UPDATE SET "
            "patient_name = COALESCE(NULLIF(excluded.patient_name, ''), patient_name), "
            "birth_date = COALESCE(NULLIF(excluded.birth_date, ''), birth_date), "
            "sex = COALESCE(NULLIF(excluded.sex, ''), sex)",
            (i.patient_key, i.patient_id, i.issuer, i.patient_name, i.birth_date, i.sex))
        conn.execute(
            "INSERT INTO studies (study_uid, patient_key, study_date, study_time, accession_number, study_id, "
            "description, referring_physician, charset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(study_uid) DO UPDATE SET patient_key = excluded.patient_key, "
            "study_date = COALESCE(NULLIF(excluded.study_date, ''), study_date), "
            "study_time = COALESCE(NULLIF(excluded.study_time, ''), study_time), "
            "accession_number = COALESCE(NULLIF(excluded.accession_number, ''), accession_number), "
            "study_id = COALESCE(NULLIF(excluded.study_id, ''), study_id), "
            "description = COALESCE(NULLIF(excluded.description, ''), description), "
            "referring_physician = COALESCE(NULLIF(excluded.referring_physician, ''), referring_physician), "
            "charset = COALESCE(NULLIF(excluded.charset, ''), charset)",
            (i.study_uid, i.patient_key, i.study_date, i.study_time, i.accession_number, i.study_id,
             i.study_description, i.referring_physician, i.charset))
        conn.execute(
            "INSERT INTO series (series_uid, study_uid, modality, series_number, description, series_date, body_part) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(series_uid) DO UPDATE SET study_uid = excluded.study_uid, "
            "modality = COALESCE(NULLIF(excluded.modality, ''), modality), "
            "series_number = COALESCE(excluded.series_number, series_number), "
            "description = COALESCE(NULLIF(excluded.description, ''), description), "
            "series_date = COALESCE(NULLIF(excluded.series_date, ''), series_date), "
            "body_part = COALESCE(NULLIF(excluded.body_part, ''), body_part)",
            (i.series_uid, i.study_uid, i.modality, i.series_number, i.series_description, i.series_date,
             i.body_part))
        conn.execute(
            "INSERT INTO instances (sop_instance_uid, series_uid, sop_class_uid, transfer_syntax_uid, "
            "instance_number, rows, columns, frames, path, size, mtime_ns, received_at, source_ae) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sop_instance_uid) DO UPDATE SET "
            "series_uid = excluded.series_uid, sop_class_uid = excluded.sop_class_uid, "
            "transfer_syntax_uid = excluded.transfer_syntax_uid, instance_number = excluded.instance_number, "
            "rows = excluded.rows, columns = excluded.columns, frames = excluded.frames, path = excluded.path, "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, received_at = excluded.received_at, "
            "source_ae = excluded.source_ae",
            (i.sop_instance_uid, i.series_uid, i.sop_class_uid, stored.transfer_syntax_uid, i.instance_number,
             i.rows, i.columns, i.frames, stored.relative_path, stored.size, stored.mtime_ns, stored.received_at,
             stored.source_ae))
        moved: list[tuple[str, str]] = []
        if old is not None and old[1] != i.series_uid:
            moved.append(("series", old[1]))
        if old_series is not None and old_series[0] != i.study_uid:
            moved.append(("study", old_series[0]))
        if old_study is not None and old_study[0] != i.patient_key:
            moved.append(("patient", old_study[0]))
        return old is not None, (old[0] if old is not None else None), moved

    @staticmethod
    def _prune(conn: sqlite3.Connection, moved: Iterable[tuple[str, str]]) -> None:
        """Drop series, studies and patients that lost their last child."""
        series = {key for kind, key in moved if kind == "series"}
        studies = {key for kind, key in moved if kind == "study"}
        patients = {key for kind, key in moved if kind == "patient"}
        for uid in series:
            row = conn.execute("SELECT study_uid FROM series WHERE series_uid = ?", (uid,)).fetchone()
            if row and not conn.execute("SELECT 1 FROM instances WHERE series_uid = ? LIMIT 1", (uid,)).fetchone():
                conn.execute("DELETE FROM series WHERE series_uid = ?", (uid,))
                studies.add(row[0])
        for uid in studies:
            row = conn.execute("SELECT patient_key FROM studies WHERE study_uid = ?", (uid,)).fetchone()
            if row and not conn.execute("SELECT 1 FROM series WHERE study_uid = ? LIMIT 1", (uid,)).fetchone():
                conn.execute("DELETE FROM studies WHERE study_uid = ?", (uid,))
                patients.add(row[0])
        for key in patients:
            if not conn.execute("SELECT 1 FROM studies WHERE patient_key = ? LIMIT 1", (key,)).fetchone():
                conn.execute("DELETE FROM patients WHERE patient_key = ?", (key,))

    @staticmethod
    def _prune_all(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.series_uid = series.series_uid)")
        conn.execute("DELETE FROM studies WHERE NOT EXISTS (SELECT 1 FROM series s WHERE s.study_uid = studies.study_uid)")
        conn.execute("DELETE FROM patients WHERE NOT EXISTS "
                     "(SELECT 1 FROM studies st WHERE st.patient_key = patients.patient_key)")

    # ---- maintenance

    def _scan(self) -> tuple[dict[str, os.stat_result], list[Path]]:
        """Our files under the root (study/series/instance.dcm) and leftover temporary files."""
        files: dict[str, os.stat_result] = {}
        temps: list[Path] = []
        for study in _dirs(self.root):
            for series in _dirs(Path(study.path)):
                with os.scandir(series.path) as entries:
                    for entry in entries:
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        if entry.name.startswith(TEMP_PREFIX):
                            temps.append(Path(entry.path))
                        elif entry.name.endswith(SUFFIX):
                            files[f"{study.name}/{series.name}/{entry.name}"] = entry.stat(follow_symlinks=False)
        return files, temps

    def read_stored(self, rel: str, stat: os.stat_result | None = None) -> StoredInstance:
        """Read an archived file's header back into a StoredInstance (for repair and rebuild)."""
        path = self.root / rel
        with open(path, "rb") as handle:
            prefix = handle.read(1 << 16)
            transfer_syntax, offset, meta = split_part10(prefix)
            handle.seek(offset)
            header = parse_dataset(handle, transfer_syntax)
        info = InstanceInfo.from_dataset(header, meta.get(0x0002, ""), meta.get(0x0003, ""))
        stat = stat or path.stat()
        return StoredInstance(info=info, relative_path=rel, path=path, size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                              transfer_syntax_uid=transfer_syntax, received_at=stat.st_mtime,
                              source_ae=meta.get(0x0016, ""))

    def _reconcile(self, conn: sqlite3.Connection, *, trust_rows: bool, remove_temp: bool) -> RepairReport:
        """Make the index agree with the files. With `trust_rows`, rows whose file still has the
        recorded size and time are kept without reading the file; otherwise every file is read."""
        report = RepairReport()
        files, temps = self._scan()
        if remove_temp:
            for tmp in temps:
                try:
                    tmp.unlink()
                    report.temp_files_removed += 1
                except OSError as exc:
                    log.warning("cannot remove the temporary file %s: %s", tmp, exc)
        rows = {path: (uid, size, mtime) for uid, path, size, mtime in
                conn.execute("SELECT sop_instance_uid, path, size, mtime_ns FROM instances")}
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not trust_rows:
                conn.execute("DELETE FROM instances")
                report.rows_removed = 0
                rows_kept: dict[str, tuple[str, int, int]] = {}
            else:
                rows_kept = {}
                for path, (uid, size, mtime) in rows.items():
                    stat = files.get(path)
                    if stat is None:
                        conn.execute("DELETE FROM instances WHERE path = ?", (path,))
                        report.rows_removed += 1
                    elif stat.st_size == size and stat.st_mtime_ns == mtime:
                        rows_kept[path] = (uid, size, mtime)
            # Read the files the index does not vouch for.
            candidates: dict[str, list[StoredInstance]] = {}
            for rel, stat in files.items():
                if rel in rows_kept:
                    continue
                with self._paths_lock:
                    if self._pending_paths.get(rel):
                        continue  # being written right now: its own index job follows
                try:
                    stored = self.read_stored(rel, stat)
                except (OSError, MalformedDataset) as exc:
                    report.unreadable.append(f"{rel}: {exc}")
                    continue
                candidates.setdefault(stored.info.sop_instance_uid, []).append(stored)
            kept_by_uid = {uid: path for path, (uid, _, _) in rows_kept.items()}
            for uid, copies in candidates.items():
                copies.sort(key=lambda s: s.mtime_ns)
                newest = copies[-1]
                losers = [c.relative_path for c in copies[:-1]]
                old = kept_by_uid.get(uid)
                if old is not None and old != newest.relative_path:
                    old_stat = files[old]
                    if old_stat.st_mtime_ns > newest.mtime_ns:  # the indexed copy is the newer one
                        losers = [c.relative_path for c in copies]
                        newest = None  # type: ignore[assignment]
                    else:
                        losers.append(old)
                if newest is not None:
                    self._upsert(conn, newest)
                    report.indexed += 1
                for rel in losers:
                    conn.execute("DELETE FROM instances WHERE path = ?", (rel,))
                    try:
                        (self.root / rel).unlink()
                        report.duplicates_removed += 1
                    except OSError:
                        pass
            self._prune_all(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for problem in report.unreadable:
            log.warning("archive file not indexed: %s", problem)
        if report.changed and remove_temp:
            log.warning("archive %s repaired: %d temporary files removed, %d files indexed, %d rows without "
                        "a file dropped, %d superseded copies removed", self.root, report.temp_files_removed,
                        report.indexed, report.rows_removed, report.duplicates_removed)
        return report

    def delete_study(self, study_uid: str, timeout: float | None = 600.0) -> DeleteReport:
        """Remove a study's files and rows (see core.archive.removal)."""
        return self._delete(timeout, study_uid=study_uid)

    def delete_series(self, series_uid: str, timeout: float | None = 600.0) -> DeleteReport:
        """Remove a series' files and rows."""
        return self._delete(timeout, series_uid=series_uid)

    def _delete(self, timeout: float | None, **which: str) -> DeleteReport:
        self._require_writable()

        def busy(rel: str) -> bool:
            with self._paths_lock:
                return bool(self._pending_paths.get(rel))

        return self._call(lambda conn: delete_rows_and_files(conn, self.root, busy=busy, prune=self._prune_all,
                                                             **which), timeout)

    def repair(self, timeout: float | None = 600.0) -> RepairReport:
        """Make the index agree with the files (rows re-read only where the file changed)."""
        self._require_writable()
        return self._call(lambda conn: self._reconcile(conn, trust_rows=True, remove_temp=False), timeout)

    def rebuild(self, timeout: float | None = 3600.0) -> RepairReport:
        """Make the index again by reading every file."""
        self._require_writable()
        return self._call(lambda conn: self._reconcile(conn, trust_rows=False, remove_temp=False), timeout)

    def verify(self, *, deep: bool = False) -> VerifyReport:
        """Check that index and files agree: every row's file exists with its size, every file is
        indexed, no temporary file is left, SQLite's own check passes. With `deep`, every file is
        read and its UIDs compared with its row."""
        self.flush()
        report = VerifyReport()
        files, temps = self._scan()
        report.files = len(files)
        with self._read_lock:
            integrity = self._reader.execute("PRAGMA integrity_check").fetchone()[0]
            rows = self._reader.execute(
                "SELECT i.sop_instance_uid, i.path, i.size, i.series_uid, s.study_uid FROM instances i "
                "LEFT JOIN series s ON s.series_uid = i.series_uid").fetchall()
            orphans = self._reader.execute(
                "SELECT (SELECT COUNT(*) FROM series WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE "
                "i.series_uid = series.series_uid)) + (SELECT COUNT(*) FROM studies WHERE NOT EXISTS (SELECT 1 FROM "
                "series s WHERE s.study_uid = studies.study_uid))").fetchone()[0]
        report.rows = len(rows)
        if integrity != "ok":
            report.problems.append(f"SQLite integrity check: {integrity}")
        if orphans:
            report.problems.append(f"{orphans} series or studies without instances")
        indexed = set()
        for uid, rel, size, series_uid, study_uid in rows:
            indexed.add(rel)
            stat = files.get(rel)
            if study_uid is None:
                report.problems.append(f"{rel}: its series is not in the index")
            if stat is None:
                report.problems.append(f"{rel}: indexed but the file is missing")
                continue
            if stat.st_size != size:
                report.problems.append(f"{rel}: size {stat.st_size} on disk, {size} in the index")
            if deep:
                try:
                    stored = self.read_stored(rel, stat)
                except (OSError, MalformedDataset) as exc:
                    report.problems.append(f"{rel}: unreadable ({exc})")
                    continue
                i = stored.info
                if (i.sop_instance_uid, i.series_uid, i.study_uid) != (uid, series_uid, study_uid):
                    report.problems.append(f"{rel}: the file's UIDs differ from its row")
        for rel in sorted(set(files) - indexed):
            with self._paths_lock:
                if self._pending_paths.get(rel):
                    continue
            report.problems.append(f"{rel}: a file the index does not list")
        if not self.readonly:
            for tmp in temps:
                report.problems.append(f"{tmp.relative_to(self.root)}: a temporary file left by an interrupted write")
        return report

    # ---- reading

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self._closed:
            raise ArchiveError(f"the archive {self.root} is closed")
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    def counts(self) -> dict[str, int]:
        row = self._query("SELECT (SELECT COUNT(*) FROM patients), (SELECT COUNT(*) FROM studies), "
                          "(SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances), "
                          "(SELECT COALESCE(SUM(size), 0) FROM instances)")[0]
        return dict(zip(("patients", "studies", "series", "instances", "bytes"), row))

    def has_instance(self, sop_instance_uid: str) -> bool:
        return bool(self._query("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)))

    def patients(self) -> list[PatientRow]:
        rows = self._query(
            "SELECT p.patient_key, p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex, "
            "(SELECT COUNT(*) FROM studies st WHERE st.patient_key = p.patient_key) FROM patients p "
            "ORDER BY p.patient_name, p.patient_id")
        return [PatientRow(*row) for row in rows]

    def studies(self, patient_key: str | None = None) -> list[StudyRow]:
        where, params = ("WHERE st.patient_key = ?", (patient_key,)) if patient_key is not None else ("", ())
        rows = self._query(
            "SELECT st.study_uid, st.patient_key, p.patient_id, p.patient_name, p.birth_date, p.sex, st.study_date, "
            "st.study_time, st.accession_number, st.study_id, st.description, st.referring_physician, "
            "(SELECT GROUP_CONCAT(DISTINCT s.modality) FROM series s WHERE s.study_uid = st.study_uid), "
            "(SELECT COUNT(*) FROM series s WHERE s.study_uid = st.study_uid), "
            "(SELECT COUNT(*) FROM instances i JOIN series s ON s.series_uid = i.series_uid "
            " WHERE s.study_uid = st.study_uid), "
            "(SELECT COALESCE(SUM(i.size), 0) FROM instances i JOIN series s ON s.series_uid = i.series_uid "
            " WHERE s.study_uid = st.study_uid) "
            f"FROM studies st LEFT JOIN patients p ON p.patient_key = st.patient_key {where} "
            "ORDER BY st.study_date DESC, st.study_time DESC", params)
        out = []
        for row in rows:
            values = list(row)
            values[2:6] = [v or "" for v in values[2:6]]
            values[12] = tuple(sorted(m for m in (values[12] or "").split(",") if m))
            out.append(StudyRow(*values))
        return out

    def series(self, study_uid: str) -> list[SeriesRow]:
        rows = self._query(
            "SELECT s.series_uid, s.study_uid, s.modality, s.series_number, s.description, s.body_part, "
            "(SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid), "
            "(SELECT COALESCE(SUM(i.size), 0) FROM instances i WHERE i.series_uid = s.series_uid) "
            "FROM series s WHERE s.study_uid = ? ORDER BY s.series_number, s.series_uid", (study_uid,))
        return [SeriesRow(*row) for row in rows]

    _INSTANCE_COLUMNS = (
        "SELECT i.sop_instance_uid, i.series_uid, s.study_uid, i.sop_class_uid, i.transfer_syntax_uid, "
        "i.instance_number, i.rows, i.columns, i.frames, i.path, i.size, i.received_at, i.source_ae "
        "FROM instances i JOIN series s ON s.series_uid = i.series_uid ")

    def _instance_row(self, row: tuple) -> InstanceRow:
        values = list(row)
        values[9] = self.root / PurePosixPath(values[9])
        return InstanceRow(*values)

    def instances(self, series_uid: str | None = None, *, study_uid: str | None = None) -> list[InstanceRow]:
        if series_uid is not None:
            where, params = "WHERE i.series_uid = ?", (series_uid,)
        elif study_uid is not None:
            where, params = "WHERE s.study_uid = ?", (study_uid,)
        else:
            where, params = "", ()
        rows = self._query(self._INSTANCE_COLUMNS + where + " ORDER BY s.study_uid, i.series_uid, "
                           "i.instance_number, i.sop_instance_uid", params)
        return [self._instance_row(row) for row in rows]

    def instance(self, sop_instance_uid: str) -> InstanceRow | None:
        rows = self._query(self._INSTANCE_COLUMNS + "WHERE i.sop_instance_uid = ?", (sop_instance_uid,))
        return self._instance_row(rows[0]) if rows else None

    def path_of(self, sop_instance_uid: str) -> Path | None:
        row = self.instance(sop_instance_uid)
        return row.path if row else None


def _dirs(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except FileNotFoundError:
        return []


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "DEFAULT_MIN_FREE_BYTES",
    "Archive",
    "DeleteReport",
    "InstanceInfo",
    "InstanceRow",
    "MalformedDataset",
    "PatientRow",
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
