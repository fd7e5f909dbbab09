"""RetrieveJob: the handle of one running retrieve. Iterate it for RetrieveProgress, await it for
the RetrieveSummary, cancel it any time; the work itself is a RetrieveRun (running.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError, DICOMNetworkError, RetrieveInterrupted
from ..records import QueryLevel, RetrieveMethod, RetrievePhase, RetrieveProgress, RetrieveSummary
from .counting import RetrieveCounts
from .planning import Target
from .running import RetrieveRun

if TYPE_CHECKING:
    from .service import RetrieveService

log = logging.getLogger(__name__)


class RetrieveJob:
    """One retrieve: iterate it for progress, await it for the summary, cancel it any time.

    Starts when first iterated or awaited (or `start()`), on the running loop. `progress` is the
    latest RetrieveProgress, `summary` the RetrieveSummary once done. The iteration and `await`
    raise what made the retrieve fail (DICOMNetworkError: RetrieveInterrupted, MoveDestinationUnknown,
    ServiceNotSupported...). Several consumers may iterate; each sees the latest state.
    """

    def __init__(self, service: RetrieveService, method: RetrieveMethod, target: Target, destination: str,
                 resume: bool) -> None:
        self.service, self.profile, self.archive = service, service.profile, service.archive
        self.method, self.target, self.destination_ae, self.resume = method, target, destination, resume
        self.progress = RetrieveProgress(method, RetrievePhase.PLANNING)
        self.error: BaseException | None = None
        to_us = method is RetrieveMethod.MOVE and destination == service.own_ae
        self._counts = RetrieveCounts(method, target, destination, to_us=to_us)
        self._run = RetrieveRun(service, self._counts, resume, self._publish)
        self._task: asyncio.Task | None = None
        self._next: asyncio.Future | None = None
        self._done = False

    def __repr__(self) -> str:
        t = self.target
        what = {QueryLevel.STUDY: "study", QueryLevel.SERIES: "series", QueryLevel.INSTANCE: "instance"}[t.level]
        state = "done" if self._done else ("running" if self._task else "not started")
        return f"<RetrieveJob {self.method.value} {what} {t.sop_uid or t.series_uid or t.study_uid} {state}>"

    @property
    def summary(self) -> RetrieveSummary | None:
        """How it ended (None until then)."""
        return self._counts.summary

    # -- control ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done

    @property
    def running(self) -> bool:
        return self._task is not None and not self._done

    def start(self) -> asyncio.Task:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            self._task = loop.create_task(self._main(), name=f"retrieve-{self.target.study_uid[-12:]}")
        return self._task

    def cancel(self) -> None:
        """Stop: C-CANCEL now, abort if the PACS does not stop within the bound. Returns at once;
        the job then ends (its summary says cancelled). Call on the loop."""
        if self._run.cancel_requested or self._done:
            return
        self._run.cancel()
        self._publish()

    @property
    def cancel_requested(self) -> bool:
        return self._run.cancel_requested

    async def wait(self) -> RetrieveSummary:
        """Run to the end; the summary (or the error). Cancelling the awaiting task cancels the job
        (C-CANCEL, bounded) before the CancelledError goes on."""
        task = self.start()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                self.cancel()
                await asyncio.wait({task}, timeout=3 * self.service.cancel_timeout + 5)
            raise
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary

    def __await__(self) -> Generator[Any, None, RetrieveSummary]:
        return self.wait().__await__()

    def __aiter__(self) -> AsyncIterator[RetrieveProgress]:
        return self.updates()

    async def updates(self) -> AsyncIterator[RetrieveProgress]:
        """Progress records as they change; the last one has phase DONE. Raises the job's error."""
        self.start()
        last = None
        while True:
            waiter = self._next
            current = self.progress
            if current is not last:
                last = current
                yield current
            if self._done:
                break
            assert waiter is not None
            await asyncio.wait({waiter})
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        """Cancel when still running and wait (bounded) until it has ended. Never raises its error."""
        if self._task is None:
            self._done = True
            return
        if not self._task.done():
            self.cancel()
            await asyncio.wait({self._task}, timeout=3 * self.service.cancel_timeout + 5)

    async def __aenter__(self) -> RetrieveJob:
        self.start()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await self.aclose()

    # -- progress --------------------------------------------------------------------------

    def _publish(self) -> None:
        self.progress = self._counts.snapshot(cancelling=self._run.cancel_requested)
        waiter = self._next
        if waiter is None:
            return
        self._next = asyncio.get_running_loop().create_future()
        if not waiter.done():
            waiter.set_result(None)

    def _end(self) -> None:
        self._done = True
        self._counts.phase = RetrievePhase.DONE
        self._publish()

    async def _main(self) -> None:
        self._counts.started = time.monotonic()
        try:
            await self._run.run()
        except BaseException as exc:  # noqa: BLE001 - kept for the awaiting consumers
            if isinstance(exc, (DICOMNetworkError, ArchiveError, ValueError, OSError)):
                self.error = exc
            elif isinstance(exc, asyncio.CancelledError):
                self.error = exc
                self._run.finish()
                self._end()
                raise
            else:
                log.exception("retrieve failed")
                self.error = exc
        finally:
            await self._run.settle()
        if self.summary is None:
            self._run.finish()
        if isinstance(self.error, RetrieveInterrupted):
            self.error.summary = self.summary
        self._end()


__all__ = ["RetrieveJob"]
