"""Sending files to a PACS (C-STORE): the async face over core.dicomfiles (finding and checking
files), core.dicom.store (sending them) and the pool.

    storage = StoreService(profile, parallel=4)
    summary = await storage.store([folder, "extra.dcm"], on_progress=show)
    for result in summary.problems: ...

Files are read lazily: first their headers (to choose presentation contexts), then each one on the
worker thread that sends it, so a folder of 10,000 files never sits in memory. Files that are not
DICOM, are damaged or truncated are reported (SKIPPED) and the rest are sent. Sends spread over up
to `parallel` associations of a ConnectionPool; when an association breaks, only the files the PACS
has not confirmed are sent again (per the profile's retry policy).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from .dicom import store as dicom_store
from .dicom.contexts import ContextGroup, plan_store_contexts
from .dicom.syntaxes import class_name
from .dicomfiles import StoreItem, scan
from .errors import DICOMNetworkError, ServiceNotSupported
from .executor import LoopPoster, run_blocking, stream_blocking
from .logs import phi
from .pool import ConnectionPool
from .records import ServerProfile, StoreOutcome, StoreProgress, StoreResult

log = logging.getLogger(__name__)

Source = str | os.PathLike | Dataset
ProgressCallback = Callable[[StoreProgress], Any]
Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class StoreSummary:
    """Every result of a send, in the order they finished, and what it took."""

    results: tuple[StoreResult, ...]
    elapsed: float  # seconds
    associations: int  # associations opened for it
    error: DICOMNetworkError | None = None  # the network failure that kept files from the PACS, if any

    def _with(self, *outcomes: StoreOutcome) -> list[StoreResult]:
        return [r for r in self.results if r.outcome in outcomes]

    @property
    def stored(self) -> list[StoreResult]:
        """Stored, with or without a warning."""
        return self._with(StoreOutcome.SUCCESS, StoreOutcome.WARNING)

    @property
    def warnings(self) -> list[StoreResult]:
        return self._with(StoreOutcome.WARNING)

    @property
    def failed(self) -> list[StoreResult]:
        return self._with(StoreOutcome.FAILED)

    @property
    def skipped(self) -> list[StoreResult]:
        return self._with(StoreOutcome.SKIPPED)

    @property
    def problems(self) -> list[StoreResult]:
        """Everything not stored (failed or skipped), plus warnings: what to show a user."""
        return [r for r in self.results if r.outcome is not StoreOutcome.SUCCESS]

    @property
    def complete(self) -> bool:
        """Every file was stored (with or without warnings), none failed or was skipped."""
        return all(r.stored for r in self.results)

    @property
    def result(self) -> StoreResult:
        """The one result of a send of one file."""
        if len(self.results) != 1:
            raise ValueError(f"{len(self.results)} results, not one")
        return self.results[0]

    @property
    def bytes_stored(self) -> int:
        return sum(r.size for r in self.stored)


class StoreRun:
    """Counts, results and throttled progress reports of one store() call (loop thread only): the
    DIMSE store here and the STOW-RS one (core.web.stow) both keep theirs in one."""

    def __init__(self, on_progress: ProgressCallback | None, interval: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.on_progress = on_progress
        self.interval = interval
        self.started = time.perf_counter()
        self.results: list[StoreResult] = []
        self.pending: list[StoreResult] = []
        self.total: int | None = None
        self.bytes_total = 0
        self.bytes_done = 0
        self.counts = {outcome: 0 for outcome in StoreOutcome}
        self.last_report = 0.0
        self.flush_handle: asyncio.TimerHandle | None = None
        self.connected = False  # some association was established
        self.error: DICOMNetworkError | None = None  # the last network error seen
        self.failure: DICOMNetworkError | None = None  # the last one that kept a file from the PACS

    def add(self, result: StoreResult) -> None:
        self.results.append(result)
        self.pending.append(result)
        self.counts[result.outcome] += 1
        self.bytes_done += result.size
        if result.outcome is not StoreOutcome.SUCCESS:
            log.info("%s: %s %s", phi(result.name), result.outcome.value, result.reason)
        self.maybe_report()

    def maybe_report(self) -> None:
        if self.on_progress is None:
            self.pending.clear()
            return
        now = self.loop.time()
        if now - self.last_report >= self.interval:
            self.report()
        elif self.flush_handle is None:
            self.flush_handle = self.loop.call_later(self.interval - (now - self.last_report), self.report)

    def report(self, finished: bool = False) -> None:
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        self.last_report = self.loop.time()
        batch, self.pending = tuple(self.pending), []
        if self.on_progress is None:
            return
        counts = self.counts
        progress = StoreProgress(
            total=self.total,
            done=len(self.results),
            stored=counts[StoreOutcome.SUCCESS] + counts[StoreOutcome.WARNING],
            warnings=counts[StoreOutcome.WARNING],
            failed=counts[StoreOutcome.FAILED],
            skipped=counts[StoreOutcome.SKIPPED],
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            elapsed=time.perf_counter() - self.started,
            results=batch,
            finished=finished,
        )
        try:
            self.on_progress(progress)
        except Exception:  # noqa: BLE001 - a broken progress display must not stop the send
            log.exception("progress callback failed")

    def close(self) -> None:
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None


async def scan_for_sending(sources: list[Source], run: StoreRun) -> list[StoreItem]:
    """Read the headers (on a worker thread), report in `run` what cannot be sent, keep the rest:
    the first step of a send, over DIMSE (StoreService) or DICOMweb (core.web.stow). No network."""
    stop = threading.Event()

    def producer(emit: Callable[[Any], None]) -> None:
        for entry in scan(sources):
            if stop.is_set():
                return
            emit(entry)

    items: list[StoreItem] = []
    try:
        async for batch in stream_blocking(producer, name="store-scan", batch_seconds=0.02):
            for entry in batch:
                if isinstance(entry, StoreResult):
                    run.bytes_total += entry.size
                    run.add(entry)
                else:
                    items.append(entry)
    finally:
        stop.set()
    return items


class StoreService:
    """C-STORE of files, folders and datasets to the PACS of `profile`.

    `parallel`: associations used at once (each by one task at a time). Give a ConnectionPool to
    reuse associations across calls (the caller closes it then); otherwise each store() call opens
    its own and releases them at its end.
    """

    def __init__(
        self,
        profile: ServerProfile,
        *,
        parallel: int | None = None,
        pool: ConnectionPool | None = None,
        progress_interval: float = 0.1,
        sleep: Sleep | None = None,
    ) -> None:
        if parallel is not None and parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.profile = profile
        self.pool = pool
        self.parallel = parallel or (pool.max_connections if pool else 4)
        self.progress_interval = progress_interval
        self._sleep: Sleep = sleep or asyncio.sleep

    def __repr__(self) -> str:
        return f"<StoreService {self.profile.called_ae}@{self.profile.host}:{self.profile.port} x{self.parallel}>"

    async def store(self, sources: Source | Iterable[Source], *,
                    on_progress: ProgressCallback | None = None) -> StoreSummary:
        """Send a file, a folder (walked recursively), a dataset, or any mix of them.

        Returns every file's result. `on_progress(StoreProgress)` is called on the loop's thread
        with the results finished since the previous call, at most every `progress_interval`
        seconds, and once more at the end with `finished=True`. Raises the DICOMNetworkError when
        no association with the PACS could be established at all (nothing was sent)."""
        if isinstance(sources, (str, bytes, os.PathLike, Dataset)):
            sources = [sources]
        run = StoreRun(on_progress, self.progress_interval)
        pool = self.pool or ConnectionPool(self.profile, self.parallel)
        opened_before = pool.opened
        try:
            items = await scan_for_sending(list(sources), run)
            run.total = len(items) + len(run.results)
            run.bytes_total = run.bytes_done + sum(item.size for item in items)
            run.report()
            for group in plan_store_contexts(item.key for item in items):
                queue = deque(item for item in items if item.sop_class_uid in group)
                await self._send_group(run, pool, group, queue)
            run.report(finished=True)  # the results of every file, even when raising next
            if items and not run.connected and run.error is not None and not isinstance(run.error, ServiceNotSupported):
                raise run.error
            return StoreSummary(tuple(run.results), time.perf_counter() - run.started, pool.opened - opened_before,
                                error=run.failure)
        finally:
            run.close()
            if self.pool is None:
                await pool.close()

    async def _send_group(self, run: StoreRun, pool: ConnectionPool, group: ContextGroup,
                          queue: deque[StoreItem]) -> None:
        workers = min(self.parallel, len(queue))
        errors: list[DICOMNetworkError] = []
        async with asyncio.TaskGroup() as tasks:
            # Associations are opened one after the other: a PACS refuses a burst of them more
            # readily ("local limit exceeded"), and when the first cannot connect, no other tries.
            for number in range(workers):
                ready = asyncio.Event()  # set once this worker has an association, or gave up
                task = tasks.create_task(self._worker(run, pool, group, queue, errors, ready))
                if number + 1 < workers:
                    await _first_of(ready, task)
                    if not queue or task.done():  # done already: this PACS cannot be reached
                        break
        if queue:  # every worker gave up: the PACS cannot be reached any more
            error = errors[-1] if errors else run.error
            for item in queue:
                if isinstance(error, ServiceNotSupported):
                    reason = f"the PACS does not accept {class_name(item.sop_class_uid)} objects"
                else:
                    reason = f"not sent: {error}" if error else "not sent"
                    run.failure = error or run.failure
                run.add(item.result(StoreOutcome.FAILED, reason))
            queue.clear()

    async def _worker(self, run: StoreRun, pool: ConnectionPool, group: ContextGroup,
                      queue: deque[StoreItem], errors: list[DICOMNetworkError],
                      ready: asyncio.Event) -> None:
        """Take files from `queue` and send them over one pooled association at a time; `ready` is
        set once the first association is open (or this worker gave up).

        The sending runs as one blocking loop per association on a worker thread (a thread per
        file cost ~1 ms a file); results come back to the loop thread as they are confirmed."""
        policy = self.profile.retry
        poster = LoopPoster(asyncio.get_running_loop())
        breaks = 0  # associations that broke in a row, without a file confirmed in between

        def emit(result: StoreResult) -> None:
            poster.post(run.add, result)  # dropped when the loop is closed: nobody is listening any more

        def take() -> StoreItem | None:
            try:
                item = queue.popleft()  # deque operations are atomic: threads and loop share it
            except IndexError:
                return None
            item.attempts += 1
            return item

        try:
            while queue:
                connected = False
                stop = threading.Event()
                try:
                    async with pool.connection(group.contexts) as client:
                        connected = run.connected = True
                        ready.set()
                        assoc = client.association
                        try:
                            await run_blocking(dicom_store.send_items, assoc, take, emit, stop, name="store")
                        except asyncio.CancelledError:
                            stop.set()
                            dicom_store.interrupt(assoc)  # the worker thread returns at once
                            raise
                        breaks = 0
                except dicom_store.SendInterrupted as interrupted:
                    error = interrupted.error
                    errors.append(error)
                    run.error = error
                    self._unconfirmed(run, queue, interrupted.item, error)
                    breaks = 0 if interrupted.confirmed else breaks + 1
                    if breaks > policy.max_retries:
                        return
                    log.info("association broke while sending (%s); reconnecting", error)
                    if breaks and policy.max_retries:
                        await self._sleep(policy.delay(breaks))
                except DICOMNetworkError as error:
                    errors.append(error)
                    run.error = error
                    if not connected:
                        # establishment failed after the policy's retries (or the PACS supports
                        # none of these classes): other workers may still be sending; if none is,
                        # _send_group reports what is left
                        log.info("association for sending failed: %s", error)
                        return
                    breaks += 1
                    if breaks > policy.max_retries:
                        return
                finally:
                    stop.set()
        finally:
            ready.set()

    def _unconfirmed(self, run: StoreRun, queue: deque[StoreItem], item: StoreItem,
                     error: DICOMNetworkError) -> None:
        """The association broke before the PACS confirmed `item`: send it again, or give up."""
        if item.attempts > self.profile.retry.max_retries:
            run.failure = error
            run.add(item.result(StoreOutcome.FAILED, f"not confirmed by the PACS: {error}"))
        else:
            queue.appendleft(item)


async def _first_of(event: asyncio.Event, task: asyncio.Task) -> None:
    """Wait until `event` is set or `task` has ended."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


__all__ = ["StoreRun", "StoreService", "StoreSummary", "scan_for_sending"]
