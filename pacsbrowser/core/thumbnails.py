"""Thumbnails for many files, off the GUI thread, a bounded number at a time.

    async with ThumbnailService(cache=ThumbnailCache(root / "thumbnails")) as service:
        async for path, thumbnail in service.thumbnails(paths, size=128):
            ...  # in completion order; thumbnail.is_placeholder for SR, PDF, damaged files

Decoding and scaling run on worker processes (a ProcessPoolExecutor this service owns, started
on first use with the "spawn" method: safe next to Qt's threads, the same on every platform) or on
core's worker threads (`processes=False`). Processes are the default because the slow part of a
render holds the GIL: pydicom's RLE decoder is pure Python and pylibjpeg's JPEG / JPEG 2000
decoders do not release it, so on two cores two threads are no faster than one while two
processes nearly halve the time (the measurement is in tests/imaging/test_thumbnails.py and in the
issue's report). A decoder that crashes takes one worker down, not the application: the pool is
replaced and the file tried once more, then shown as a placeholder.

Memory stays bounded whatever the number of files: at most `max_in_flight` files are submitted
and not yet handed to the consumer, each worker holds one decoded frame at a time, and what comes
back is the small thumbnail. The consumer sets the pace: while it does not ask for the next
thumbnail, nothing new is started.

Closing the service (`aclose()`, `close()`, `async with`) shuts its worker processes down, and
the multiprocessing resource tracker too when the service started it, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import multiprocessing
import os
import threading
import warnings
from collections.abc import AsyncIterator, Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import executor
from .archive.part10 import MalformedDataset
from .dicomfiles import read_file_meta
from .imaging import DEFAULT_SIZE, MAX_SIZE, Kind, Thumbnail, placeholder, render
from .thumbcache import ThumbnailCache, fingerprint

log = logging.getLogger(__name__)

__all__ = ["ThumbnailRequest", "ThumbnailService", "ServiceStats", "make_thumbnail", "default_workers"]


@dataclass(frozen=True)
class ThumbnailRequest:
    """A file to make a thumbnail of; the SOP Instance UID (from the archive's index) saves a
    header read on a cache lookup."""

    path: Path
    sop_instance_uid: str | None = None


@dataclass
class ServiceStats:
    """What a ThumbnailService has done so far (for the window's status line, tests and benchmarks)."""

    submitted: int = 0
    rendered: int = 0
    cache_hits: int = 0
    placeholders: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    worker_restarts: int = 0


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


# --------------------------------------------------------------------------------------------
# The job: runs on a worker thread or process


def _worker_init() -> None:
    """In each worker process: pydicom's warnings about damaged files are not for the console
    (the thumbnail's placeholder says what is wrong)."""
    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")
    logging.getLogger("pydicom").setLevel(logging.ERROR)


def _read_sop_instance_uid(path: str) -> str | None:
    """The SOP Instance UID in the file's File Meta Information (the cache's key), if it has one."""
    try:
        meta = read_file_meta(path)
    except (OSError, MalformedDataset):  # the render will say what is wrong with the file
        return None
    return (meta.sop_instance_uid or None) if meta is not None else None


def make_thumbnail(path: str, size: int, cache_dir: str | None = None,
                   sop_instance_uid: str | None = None) -> tuple[Thumbnail, bool]:
    """One thumbnail, from the cache when it holds this version of the file: (thumbnail, hit).

    Never raises for a file's content or absence.
    """
    cache = ThumbnailCache(cache_dir) if cache_dir else None
    fp: str | None = None
    uid: str | None = None
    if cache is not None:
        try:
            fp = fingerprint(path)
        except FileNotFoundError:
            return _missing(path, size), False
        except OSError as exc:
            return placeholder("Unreadable file", size, kind=Kind.DAMAGED, detail=str(exc)), False
        uid = sop_instance_uid or _read_sop_instance_uid(path)
        if uid:
            hit = cache.get(uid, size, path, source_fingerprint=fp)
            if hit is not None:
                return hit, True
    try:
        thumbnail = render(path, size)
    except FileNotFoundError:
        return _missing(path, size), False
    except OSError as exc:
        return placeholder("Unreadable file", size, kind=Kind.DAMAGED, detail=str(exc)), False
    if cache is not None and fp is not None:
        uid = uid or thumbnail.sop_instance_uid  # the key it was looked up by, when it had one
        if uid:
            cache.put(uid, size, path, thumbnail, source_fingerprint=fp)
    return thumbnail, False


def _missing(path: str, size: int) -> Thumbnail:
    return placeholder("Missing file", size, kind=Kind.MISSING, detail=f"the file is gone: {path}")


# --------------------------------------------------------------------------------------------
# Worker pools, and the resource tracker that comes with them

# On POSIX the first process pool starts the stdlib's resource tracker, a helper process that
# otherwise lives until the interpreter exits. When our last pool is shut down we stop it too,
# if it was not running before our first pool (someone else's then).
_pools_lock = threading.Lock()
_live_pools = 0
_tracker_is_ours = False


def _resource_tracker():
    try:
        from multiprocessing import resource_tracker

        return resource_tracker._resource_tracker  # noqa: SLF001 - no public way to stop it
    except (ImportError, AttributeError):  # pragma: no cover - Windows has none
        return None


def _new_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    global _live_pools, _tracker_is_ours
    with _pools_lock:
        tracker = _resource_tracker()
        if _live_pools == 0:
            _tracker_is_ours = tracker is not None and getattr(tracker, "_fd", None) is None
        _live_pools += 1
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)


def _shutdown_pools(pools: list[concurrent.futures.ProcessPoolExecutor]) -> None:
    """Shut `pools` down, waiting for their workers to exit; then the resource tracker when it
    is ours and no pool of ours is left. Blocking: run it off the loop."""
    global _live_pools
    count = len(pools)
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)
    pools.clear()
    gc.collect()  # the pools' queues unregister their semaphores now, while the tracker runs
    with _pools_lock:
        _live_pools = max(0, _live_pools - count)
        stop = _live_pools == 0 and _tracker_is_ours
    if stop:
        tracker = _resource_tracker()
        stopper = getattr(tracker, "_stop", None)
        if stopper is not None:
            try:
                stopper()
            except Exception:  # noqa: BLE001 - at worst the helper lives until exit
                log.debug("could not stop the multiprocessing resource tracker", exc_info=True)


_END: Any = object()  # the end of an items iterator (Any: next(source, _END) keeps the items type)


def _as_request(item: ThumbnailRequest | str | os.PathLike[str]) -> ThumbnailRequest:
    if isinstance(item, ThumbnailRequest):
        return item
    return ThumbnailRequest(Path(item))


# --------------------------------------------------------------------------------------------
# The service


class ThumbnailService:
    """Makes thumbnails of many files in parallel with a bounded number in flight.

    `workers`: parallel renders (default: the usable cores, at most 8). `processes`: worker
    processes (default) or core's worker threads. `max_in_flight`: files submitted and not yet
    handed over (default 4 per worker). `cache`: a ThumbnailCache, or None.
    Use it from one event loop. Close it (`await aclose()`, `close()`, or `async with`): the worker
    processes end there.
    """

    def __init__(self, cache: ThumbnailCache | None = None, *, workers: int | None = None,
                 processes: bool = True, max_in_flight: int | None = None) -> None:
        self.cache = cache
        self.workers = max(1, int(workers or default_workers()))
        self.processes = bool(processes)
        self.max_in_flight = max(1, int(max_in_flight or 4 * self.workers))
        self.stats = ServiceStats()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._retired: list[concurrent.futures.ProcessPoolExecutor] = []
        self._slots: asyncio.Semaphore | None = None
        self._closed = False
        self._thread_jobs: set[asyncio.Future] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> "ThumbnailService":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> "ThumbnailService":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take_pools(self) -> list[concurrent.futures.ProcessPoolExecutor]:
        self._closed = True
        pools = [p for p in (self._pool, *self._retired) if p is not None]
        self._pool, self._retired = None, []
        return pools

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop: jobs not started are dropped, running ones finish (each is one file), worker
        processes exit. Waits at most `timeout` seconds for running thread jobs."""
        pools = self._take_pools()
        if pools:
            await executor.run_blocking(_shutdown_pools, pools, name="thumbnail-pool-shutdown")
        jobs = [job for job in self._thread_jobs if not job.done()]
        if jobs:
            await asyncio.wait(jobs, timeout=timeout)

    def close(self) -> None:
        """Synchronous stop, for code without a running loop (waits for the running renders)."""
        pools = self._take_pools()
        if pools:
            _shutdown_pools(pools)

    # -- work -----------------------------------------------------------------------------

    def _cache_dir(self) -> str | None:
        return os.fspath(self.cache.directory) if self.cache is not None else None

    def _ensure_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = _new_pool(self.workers)
        return self._pool

    def _retire(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        """A broken pool (a worker died): a new one takes over; this one is shut down at close."""
        if self._pool is pool:
            self._pool = None
            self._retired.append(pool)
            self.stats.worker_restarts += 1

    async def _run_in_process(self, request: ThumbnailRequest, size: int) -> tuple[Thumbnail, bool]:
        args = (os.fspath(request.path), size, self._cache_dir(), request.sop_instance_uid)
        for _attempt in (1, 2):
            if self._closed:
                break
            pool = self._ensure_pool()
            try:
                return await asyncio.wrap_future(pool.submit(make_thumbnail, *args))
            except BrokenProcessPool:
                # a worker died (a decoder crashed, or was killed): a new pool, one more try
                self._retire(pool)
        return placeholder("Cannot decode", size, kind=Kind.UNSUPPORTED,
                           detail="the decoder stopped the worker process on this file"), False

    async def _run_in_thread(self, request: ThumbnailRequest, size: int) -> tuple[Thumbnail, bool]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:
            job = asyncio.ensure_future(executor.run_blocking(
                make_thumbnail, os.fspath(request.path), size, self._cache_dir(), request.sop_instance_uid,
                name="thumbnail"))
            self._thread_jobs.add(job)
            job.add_done_callback(self._thread_jobs.discard)
            # shield: a consumer that leaves does not lose track of a thread still running
            return await asyncio.shield(job)

    async def _one(self, request: ThumbnailRequest, size: int) -> tuple[Path, Thumbnail]:
        if self.processes:
            thumbnail, hit = await self._run_in_process(request, size)
        else:
            thumbnail, hit = await self._run_in_thread(request, size)
        thumbnail.pixels.flags.writeable = False  # unpickled from a worker: writeable again
        if hit:
            self.stats.cache_hits += 1
        else:
            self.stats.rendered += 1
        if thumbnail.is_placeholder:
            self.stats.placeholders += 1
        return request.path, thumbnail

    async def thumbnail(self, path: str | os.PathLike[str] | ThumbnailRequest,
                        size: int = DEFAULT_SIZE) -> Thumbnail:
        """The thumbnail of one file."""
        async for _, thumbnail in self.thumbnails([path], size):
            return thumbnail
        raise RuntimeError("no thumbnail was made")  # pragma: no cover - one input, one output

    async def thumbnails(self, items: Iterable[str | os.PathLike[str] | ThumbnailRequest],
                         size: int = DEFAULT_SIZE) -> AsyncIterator[tuple[Path, Thumbnail]]:
        """(path, thumbnail) for each item, in completion order, at most `max_in_flight` at once.

        `items` is read lazily, as slots free up. Leaving the loop early cancels what has not
        started; wrap in `contextlib.aclosing` to have that happen at once.
        """
        if not 1 <= int(size) <= MAX_SIZE:
            raise ValueError(f"size must be from 1 to {MAX_SIZE}, not {size}")
        if self._closed:
            raise RuntimeError("the thumbnail service is closed")
        size = int(size)
        source = iter(items)
        pending: set[asyncio.Future] = set()
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    item = next(source, _END)
                    if item is _END:
                        exhausted = True
                        break
                    pending.add(asyncio.ensure_future(self._one(_as_request(item), size)))
                    self.stats.submitted += 1
                    self.stats.in_flight = len(pending)
                    self.stats.peak_in_flight = max(self.stats.peak_in_flight, len(pending))
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # a finished result still counts as in flight until it is handed over
                ready = list(done)
                while ready:
                    task = ready.pop(0)
                    self.stats.in_flight = len(pending) + len(ready) + 1
                    yield task.result()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self.stats.in_flight = 0
