"""The archive's one indexing thread: written files are queued here and committed to the index in
batches (then their callbacks run); other work on the index (maintenance, a flush) is queued as a
call and runs on the same thread, in order."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .index import Moved, connect, path_in_index, prune, set_meta, upsert
from .part10 import StoredInstance
from .writer import PendingPaths

log = logging.getLogger(__name__)

# (stored, replaced) after the commit, on the indexer thread
IndexedCallback = Callable[[StoredInstance, bool], None]


class _Job:
    __slots__ = ("kind", "payload", "callback", "future")

    def __init__(self, kind: str, payload: Any, callback: Any = None, future: Future | None = None) -> None:
        self.kind, self.payload, self.callback, self.future = kind, payload, callback, future


class Indexer:
    """Commits written files to the index at `index_path` on its own thread, at most BATCH per
    transaction; a failed batch is retried. Releases each file's path from `pending` once indexed,
    and removes the file of a replaced copy that moved elsewhere."""

    BATCH = 256

    def __init__(self, index_path: Path, root: Path, pending: PendingPaths,
                 commit: Callable[[sqlite3.Connection, list[_Job]], list[_Job]] | None = None) -> None:
        self.index_path, self.root, self.pending = index_path, root, pending
        self._commit = commit or self.index_batch  # `commit` wraps index_batch (tests stall it)
        self.failures = 0
        self._queue: "queue.Queue[_Job | None]" = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pacsbrowser-archive-indexer", daemon=True)
        self._thread.start()

    def submit(self, stored: StoredInstance, on_indexed: IndexedCallback | None = None) -> None:
        self._queue.put(_Job("index", stored, on_indexed))

    def add(self, stored: StoredInstance, timeout: float | None) -> bool:
        """Index `stored` and wait; True when it replaced an earlier copy."""
        future: Future = Future()
        self._queue.put(_Job("index", stored, None, future))
        return bool(future.result(timeout))

    def call(self, fn: Callable[[sqlite3.Connection], Any], timeout: float | None) -> Any:
        """`fn(connection)` on the indexer thread, after everything queued before it."""
        future: Future = Future()
        self._queue.put(_Job("call", fn, None, future))
        return future.result(timeout)

    def stop(self, *, clean: bool, timeout: float) -> None:
        """Index what is queued; mark the index clean when `clean` and everything was indexed; stop."""
        if self._thread is None:
            return
        self._queue.put(_Job("close", clean))
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a stuck disk
            log.error("the archive indexer did not stop within %.0f s", timeout)
        self._thread = None

    def _run(self) -> None:
        conn = connect(self.index_path)
        retry: list[_Job] = []
        try:
            while True:
                try:
                    job = self._queue.get(timeout=1.0 if retry else None)
                except queue.Empty:
                    job = _Job("retry", None)
                if job is None:
                    break
                batch, calls = self._take(job, retry)
                retry = self._commit(conn, batch) if batch else []
                for call in calls:
                    if call.kind == "close":
                        self._close(conn, call.payload, retry)
                        retry = []
                    else:
                        self._run_call(conn, call)
        finally:
            conn.close()

    def _take(self, job: _Job, retry: list[_Job]) -> tuple[list[_Job], list[_Job]]:
        """The batch to index (what failed before, `job`, and what else is queued, up to BATCH) and
        the calls that follow it."""
        batch = list(retry)
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
        return batch, calls

    def _close(self, conn: sqlite3.Connection, clean: bool, retry: list[_Job]) -> None:
        if not retry and not self.failures and clean:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                set_meta(conn, "clean", "1")
            except sqlite3.Error as exc:
                log.error("cannot mark the archive clean: %s", exc)
        elif retry:
            log.error("%d received instances could not be indexed; the next start repairs "
                      "the index from the files", len(retry))

    @staticmethod
    def _run_call(conn: sqlite3.Connection, call: _Job) -> None:
        try:
            result = call.payload(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            if call.future is not None:
                call.future.set_exception(exc)
        else:
            if call.future is not None:
                call.future.set_result(result)

    def index_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Job]:
        """Commit `batch` in one transaction; on failure return it to be retried."""
        results: list[bool] = []
        obsolete: list[str] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            moved: list[Moved] = []
            for job in batch:
                replaced, old_path, left = upsert(conn, job.payload)
                results.append(replaced)
                if old_path is not None and old_path != job.payload.relative_path:
                    obsolete.append(old_path)
                moved.extend(left)
            if moved:
                prune(conn, moved)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.failures += 1
            log.error("cannot index %d received instances (%s); will retry", len(batch), exc)
            return batch
        # Files of replaced copies that moved elsewhere (another study or series): remove them
        # unless a write to that same path is under way.
        with self.pending.lock:
            for job in batch:
                self.pending.release_locked(job.payload.relative_path)
            for rel in obsolete:
                if self.pending.busy_locked(rel) or path_in_index(conn, rel):
                    continue
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
