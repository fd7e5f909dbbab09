"""Temporary files made ahead of need (issue 16).

Creating a file is the dearest step of storing a received image: on the ext4 of the lab machine
it takes 0.03 to 0.7 ms in the kernel, by folder (a directory entry, an inode, a journal handle),
and it sat between the first fragment of a C-STORE and its reply. Renaming a file is ten times
cheaper. So `Incoming` keeps up to `ahead` empty files open and ready in the archive's
`.incoming` folder, made by a thread of its own, and a write `take`s one: it is renamed into the
destination's series folder as that folder's usual temporary file (`paths.TEMP_PREFIX`...`.part`),
and from there on everything is as before: written, renamed into place, or removed; a crash
leaves it where a crash always left temporary files, for the repair at the next opening.

The ready files are empty and named `.ahead-*` (not `.part`: they hold nothing yet); closing
the archive deletes them, and so does the repair after a crash (`clear_leftovers`). When none is
ready (the first write, a burst, a disk that refuses), the writer makes its own, as before.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import secrets
import tempfile
import threading
from pathlib import Path

from .paths import TEMP_PREFIX

log = logging.getLogger(__name__)

INCOMING = ".incoming"
AHEAD_PREFIX = ".ahead-"
SUFFIX = ".part"
IDLE = 0.25  # seconds the thread waits for more work before it ends


class Incoming:
    """Ready temporary files in `root/.incoming` (see the module doc). Thread-safe. The thread is
    woken when `ahead` or fewer are ready and makes them up to twice that, in a row."""

    def __init__(self, root: Path, ahead: int = 16) -> None:
        self.folder = root / INCOMING
        self.ahead = ahead
        self.made_ahead = 0  # files the thread made (tests read it)
        self.taken_ready = 0  # writes that got one
        self._tag = f"{TEMP_PREFIX}{secrets.token_hex(6)}-"  # this archive's names; one writer per archive
        self._names = itertools.count()
        self._ready: collections.deque[tuple[int, str]] = collections.deque()
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def take(self, folder: Path) -> tuple[int, str] | None:
        """An open, empty temporary file in `folder` (descriptor, path), made ahead and renamed
        there (its folder made when missing); None when none is ready: the caller makes its own."""
        with self._lock:
            ready = self._ready.popleft() if self._ready else None
            low = not self._closed and len(self._ready) <= self.ahead
        if low:
            self._want_more()
        if ready is None:
            return None
        fd, path = ready
        target = os.path.join(folder, f"{self._tag}{next(self._names)}{SUFFIX}")
        try:
            try:
                os.rename(path, target)
            except FileNotFoundError:
                if not os.path.exists(path):
                    raise
                folder.mkdir(parents=True, exist_ok=True)
                os.rename(path, target)
        except OSError:
            _discard(fd, path)
            return None
        self.taken_ready += 1
        return fd, target

    def close(self, timeout: float = 10.0) -> None:
        """Stop making files and delete the ready ones. Idempotent."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._wanted.set()
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            ready, self._ready = list(self._ready), collections.deque()
        for fd, path in ready:
            _discard(fd, path)

    # ---- the maker

    def _make(self) -> tuple[int, str]:
        try:
            return tempfile.mkstemp(prefix=AHEAD_PREFIX, dir=self.folder)
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(prefix=AHEAD_PREFIX, dir=self.folder)

    def _want_more(self) -> None:
        with self._lock:
            self._wanted.set()
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="pacsbrowser-archive-incoming", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            if not self._wanted.wait(IDLE):
                with self._lock:  # nothing asked for a while: end (the next take starts another)
                    if not self._wanted.is_set():
                        if self._thread is threading.current_thread():
                            self._thread = None
                        return
            self._wanted.clear()
            while True:
                with self._lock:
                    if self._closed:
                        return
                    if len(self._ready) >= 2 * self.ahead:
                        break
                try:
                    made = self._make()
                except OSError as exc:  # a full or read-only disk: writers make their own and say why
                    log.debug("cannot make a temporary file ahead in %s: %s", self.folder, exc)
                    break
                with self._lock:
                    if self._closed:
                        _discard(*made)
                        return
                    self._ready.append(made)
                    self.made_ahead += 1


def clear_leftovers(root: Path) -> int:
    """Delete what a process that did not close the archive left in its `.incoming` folder (ready
    files are empty; a file taken from there has left it): how many."""
    removed = 0
    try:
        with os.scandir(root / INCOMING) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except OSError as exc:
                        log.warning("cannot remove %s: %s", entry.path, exc)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return removed


def _discard(fd: int, path: str) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
    try:
        os.unlink(path)
    except OSError:
        pass


__all__ = ["AHEAD_PREFIX", "INCOMING", "Incoming", "clear_leftovers"]
