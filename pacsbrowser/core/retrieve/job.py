"""RetrieveJob: the handle of one running retrieve. Iterate it for RetrieveProgress, await it for
the RetrieveSummary, cancel it any time; the work itself is a RetrieveRun (running.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..errors import ArchiveError, DICOMNetworkError, RetrieveInterrupted
from ..jobs import ProgressHandle
from ..records import QueryLevel, RetrieveMethod, RetrievePhase, RetrieveProgress, RetrieveSummary
from .counting import RetrieveCounts
from .planning import Target
from .running import RetrieveRun

if TYPE_CHECKING:
    from .service import RetrieveService

log = logging.getLogger(__name__)


class RetrieveJob(ProgressHandle[RetrieveProgress, RetrieveSummary]):
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

    def __repr__(self) -> str:
        t = self.target
        what = {QueryLevel.STUDY: "study", QueryLevel.SERIES: "series", QueryLevel.INSTANCE: "instance"}[t.level]
        state = "done" if self._done else ("running" if self._task else "not started")
        return f"<RetrieveJob {self.method.value} {what} {t.sop_uid or t.series_uid or t.study_uid} {state}>"

    @property
    def summary(self) -> RetrieveSummary | None:
        """How it ended (None until then)."""
        return self._counts.summary

    # -- control (the rest of the handle: core.jobs.ProgressHandle) ----------------------------

    def _task_name(self) -> str:
        return f"retrieve-{self.target.study_uid[-12:]}"

    def _stop_bound(self) -> float:
        return 3 * self.service.cancel_timeout + 5

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

    # -- progress --------------------------------------------------------------------------

    def _publish(self) -> None:
        self.progress = self._counts.snapshot(cancelling=self._run.cancel_requested)
        self._wake()

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
