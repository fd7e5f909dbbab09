"""Durability in groups: the fsyncs and renames of written files, off the path of the reply.

Two guarantees, chosen by the caller of `Archive.store` (see the README, "What a reply promises"):

- Batched (`Committer`; C-STORE sub-operations of a C-GET, whose PACS still holds every instance):
  the reply goes once the bytes are in a temporary file. A background thread then takes the files
  in groups: fsync of each file, rename into place, one fsync per folder of the group, and hands the
  group to the indexer (one transaction). A crash loses at most the files not yet renamed: they are
  temporary files, which the next start deletes (`archive verify` reports them until then), so no
  half file is ever listed, and the next retrieve of the study fetches them again.
- Durable before the reply (`FolderSyncs`; our Storage SCP receiving from a modality, which may
  delete an image once we said Success): the file is fsynced and renamed and its folder fsynced
  before the reply, but a folder fsync covers every rename into that folder that came before it
  started (group commit): concurrent associations writing into one series share them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from .indexer import IndexedCallback
from .part10 import StoredInstance
from .writer import PendingPaths, fsync_dir

log = logging.getLogger(__name__)

# (stored, on_indexed) to the indexer, in order
Submit = Callable[[StoredInstance, "IndexedCallback | None"], None]


class _Unfinished:
    __slots__ = ("stored", "tmp", "on_indexed", "fd")

    def __init__(self, stored: StoredInstance, tmp: Path, on_indexed: IndexedCallback | None,
                 fd: int | None) -> None:
        self.stored, self.tmp, self.on_indexed, self.fd = stored, tmp, on_indexed, fd


class Committer:
    """Finishes written temporary files in groups on its own thread: fsync (when `durable`),
    close, rename, one fsync per folder, then `submit` to the indexer. A group is what is queued,
    up to `batch` files, gathered for at most `linger` seconds after the first. At most `depth`
    files wait: a writer beyond that waits, which slows the sender down rather than letting
    unfinished files pile up."""

    def __init__(self, pending: PendingPaths, submit: Submit, *, durable: bool = True, batch: int = 128,
                 linger: float = 0.05, depth: int = 256) -> None:
        self.pending, self.submit, self.durable = pending, submit, durable
        self.batch, self.linger = batch, linger
        self.failures = 0
        self.committed = 0
        self.groups = 0
        self._queue: "queue.Queue[_Unfinished | threading.Event | None]" = queue.Queue(depth)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._urgent = threading.Event()  # a flush or stop: end the linger now

    @property
    def running(self) -> bool:
        return self._thread is not None

    def add(self, stored: StoredInstance, tmp: Path, on_indexed: IndexedCallback | None = None, *,
            fd: int | None = None) -> None:
        """Queue a written temporary file, to become `stored.path`: closed, or still open as `fd`
        (the committer then takes the file's time from it and closes it: `stored.mtime_ns` is 0)."""
        self._ensure_started()
        self._queue.put(_Unfinished(stored, tmp, on_indexed, fd))

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until everything queued before this call is renamed and handed to the indexer."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done, timeout=timeout)
        self._urgent.set()
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        self._urgent.set()
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover - a stuck disk
            log.error("the archive committer did not finish within %.0f s", timeout)

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pacsbrowser-archive-committer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            group: list[_Unfinished] = []
            marks: list[threading.Event] = []
            item: _Unfinished | threading.Event | None = first
            if isinstance(item, _Unfinished) and self._queue.qsize() < self.batch - 1:
                # Linger without waking for every file a writer adds meanwhile (each wake-up takes the
                # GIL from the thread receiving the next image); a flush or stop ends it early.
                self._urgent.wait(self.linger)
            self._urgent.clear()
            while True:
                if item is None:
                    stopping = True
                    break
                if isinstance(item, threading.Event):
                    marks.append(item)  # a flush: finish the group now
                    break
                group.append(item)
                if len(group) >= self.batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if group:
                try:
                    self._finish(group)
                except Exception:  # noqa: BLE001 - the thread must outlive one bad group; repair finds its files
                    log.exception("error finishing %d received files", len(group))
            for mark in marks:
                mark.set()

    def _finish(self, group: list[_Unfinished]) -> None:
        folders: dict[Path, None] = {}
        done: list[_Unfinished] = []
        for item in group:
            try:
                if item.fd is not None:  # still open: its data, its time, then closed
                    fd, item.fd = item.fd, None
                    try:
                        if self.durable:
                            os.fsync(fd)
                        stat = os.fstat(fd)
                    finally:
                        os.close(fd)
                    item.stored = dataclasses.replace(item.stored, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
                elif self.durable:  # the data: fsync through a descriptor of our own
                    fd = os.open(item.tmp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                os.replace(item.tmp, item.stored.path)
            except OSError as exc:
                self._lost(item, exc)
                continue
            folders[item.stored.path.parent] = None
            done.append(item)
        if self.durable:
            for folder in folders:
                try:
                    fsync_dir(folder)
                except OSError as exc:  # the files are in place; only their names may not survive a crash
                    log.error("cannot fsync the archive folder %s: %s", folder, exc)
        for item in done:
            self.submit(item.stored, item.on_indexed)
        self.committed += len(done)
        self.groups += 1

    def _lost(self, item: _Unfinished, exc: OSError) -> None:
        """A file that could not be finished: removed; the next retrieve fetches it again."""
        self.failures += 1
        if item.fd is not None:
            try:
                os.close(item.fd)
            except OSError:
                pass
            item.fd = None
        log.error("a received instance could not be written to the archive (%s); it is not stored, the next "
                  "retrieve of its study fetches it again", exc.strerror or exc)
        try:
            os.unlink(item.tmp)
        except OSError:
            pass
        self.pending.release(item.stored.relative_path)


class _Folder:
    __slots__ = ("started", "done", "running", "users")

    def __init__(self) -> None:
        self.started = self.done = self.users = 0  # generations of fsync started and finished
        self.running = False


class FolderSyncs:
    """fsync of archive folders after renames, shared (group commit): `sync(folder)` returns once
    an fsync of `folder` that started after the call has finished; callers that arrive while one
    runs share the next one. Raises the OSError of a failed fsync (to its caller only: the others
    then try their own)."""

    def __init__(self, fsync: Callable[[Path], None] = fsync_dir) -> None:
        self._fsync = fsync
        self._cond = threading.Condition()
        self._folders: dict[Path, _Folder] = {}
        self.fsyncs = 0  # how many were run (shared ones count once)

    def sync(self, folder: Path) -> None:
        with self._cond:
            state = self._folders.setdefault(folder, _Folder())
            state.users += 1
            try:
                need = state.started + 1  # the first fsync to start from now on covers our rename
                while state.done < need:
                    if state.running:
                        self._cond.wait(5.0)
                        continue
                    state.running = True
                    state.started += 1
                    generation = state.started
                    self._cond.release()
                    ok = False
                    try:
                        self._fsync(folder)
                        ok = True
                    finally:
                        self._cond.acquire()
                        state.running = False
                        self.fsyncs += 1
                        if ok:
                            state.done = generation
                        self._cond.notify_all()
            finally:
                state.users -= 1
                if not state.users:
                    del self._folders[folder]  # idle folders are forgotten (a listener runs for days)


__all__ = ["Committer", "FolderSyncs"]
