"""Retrieving studies, series and instances into the local archive: C-GET or C-MOVE, with progress,
cancel and resume.

    service = RetrieveService(profile, archive)            # scp=ArchiveServer for C-MOVE, optional
    job = service.get_study(study_uid)                       # or move_study(uid, "PACSBROWSER")
    async for progress in job:                               # RetrieveProgress, as it changes
        bar.set(progress.fraction); label.set(f"{progress.received} ({progress.rate:.0f}/s)")
    summary = await job                                      # RetrieveSummary
    job.cancel()                                             # from a Cancel button, any time

What a job does:

1. Plan (resume). It asks the PACS what the study (series, instance) holds: a series query, then an
   instance query per series (SOP Instance and SOP Class UIDs), on one association; and the
   archive what it has. Only what the archive lacks is fetched: the whole study in one request
   when nothing is there; otherwise whole series (SERIES level, a UID list) and the missing
   instances of partly present series (IMAGE level, UID lists). A complete study fetches nothing.
   A PACS that does not answer the queries gets one request for what was asked, and C-GET then
   proposes a default set of storage classes.
2. C-GET: the storage contexts are those of the SOP classes the PACS listed (uncompressed in one
   context, each compressed syntax in its own, the SCP role for each class), split over several
   associations when more than 128 contexts are needed (each association then asks only for the
   instances of its classes). Sub-operations arrive on the same association and go straight into
   the archive (Archive.store, the Storage SCP's write path), undecoded. When the PACS could not
   send some instances on the contexts it accepted (DCMTK's dcmqrscp sends each SOP class on the
   first accepted context and cannot convert), what is missing is asked for again on a new
   association with an accepted compressed syntax first, once per syntax the PACS accepted.
3. C-MOVE: when the destination is our own AE title, our Storage SCP must be listening: the
   service's (`scp`) or one it starts for the job on the profile's `listener_port`. The job ends
   when the PACS's final response has come and what arrived is indexed (a PACS that answers before
   its last sub-operations is waited for while instances keep coming). Instead of a DIMSE timeout
   per response (a PACS need not send pending responses), the job gives up after the profile's
   DIMSE timeout of silence: no response and nothing at the listener. 0xA801 (and a general
   failure before any sub-operation, as Orthanc answers an unknown destination) raise
   MoveDestinationUnknown naming the AE title, host and port to register.
4. Cancel: C-CANCEL, keep reading (sub-operations still arriving are kept, each written whole),
   abort when the PACS has not ended the operation within `cancel_timeout`. Nothing half-written
   stays: the archive writes a temporary file and renames it.
5. A broken association raises RetrieveInterrupted saying how many instances arrived; they stay,
   and the next retrieve fetches only the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import build_context, evt

from .archive import Archive
from .client import DICOMClient
from .dicom import retrieve as dicom_retrieve
from .dicom.operation import DEFAULT_CANCEL_TIMEOUT
from .dicom.retrieve import UNCOMPRESSED, ContextGroup, RetrieveResponses, RetrieveControl
from .dicom.syntaxes import syntax_name
from .errors import (
    ArchiveError,
    DICOMNetworkError,
    DIMSEError,
    MoveDestinationUnknown,
    RetrieveInterrupted,
    ServiceNotSupported,
    status_words,
)
from .executor import run_blocking, stream_blocking
from .server import ArchiveServer
from .query import QueryService, find_contexts
from .records import (
    QueryKeys,
    QueryLevel,
    Received,
    RetrieveMethod,
    RetrievePhase,
    RetrieveProgress,
    RetrieveSummary,
    ServerProfile,
)

log = logging.getLogger(__name__)

_USE_MOVE = ("retrieve with C-MOVE instead (set the profile's retrieve method to C-MOVE; the PACS must know our "
             "AE title, host and port)")
_USE_GET = "retrieve with C-GET instead (set the profile's retrieve method to C-GET)"
_UNCOMPRESSED = {str(u) for u in UNCOMPRESSED}


# --------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True)
class Target:
    """What was asked for."""

    level: QueryLevel
    study_uid: str
    series_uid: str = ""
    sop_uid: str = ""


@dataclass(frozen=True)
class Wanted:
    """An instance the PACS listed."""

    uid: str
    series_uid: str
    sop_class: str = ""  # '' when the PACS did not say


@dataclass
class Plan:
    """What the PACS holds of the target (`wanted`, None when it did not say) and what the archive
    holds of it already (`present`)."""

    wanted: list[Wanted] | None
    present: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[Wanted] | None:
        if self.wanted is None:
            return None
        return [w for w in self.wanted if w.uid not in self.present]

    @property
    def classes_known(self) -> bool:
        return self.wanted is not None and all(w.sop_class for w in self.wanted)


@dataclass(frozen=True)
class Request:
    """One C-GET/C-MOVE identifier to send. `count`: instances it should bring (None: unknown)."""

    level: QueryLevel
    series_uids: tuple[str, ...] = ()
    sop_uids: tuple[str, ...] = ()
    count: int | None = None

    def identifier(self, study_uid: str) -> Any:
        return dicom_retrieve.retrieve_identifier(self.level, study_uid, self.series_uids, self.sop_uids)


def plan_requests(target: Target, plan: Plan, todo: list[Wanted] | None) -> list[Request]:
    """The requests that fetch `todo` (a subset of plan.wanted; None: unknown, fetch the target)."""
    if todo is None or plan.wanted is None:
        series = (target.series_uid,) if target.series_uid else ()
        sops = (target.sop_uid,) if target.sop_uid else ()
        return [Request(target.level, series, sops, None)]
    if not todo:
        return []
    if {w.uid for w in todo} == {w.uid for w in plan.wanted}:  # all of it: one request for the target
        series = (target.series_uid,) if target.series_uid else ()
        sops = (target.sop_uid,) if target.sop_uid else ()
        return [Request(target.level, series, sops, len(todo))]
    by_series: dict[str, list[Wanted]] = {}
    for w in todo:
        by_series.setdefault(w.series_uid, []).append(w)
    all_by_series: dict[str, set[str]] = {}
    for w in plan.wanted:
        all_by_series.setdefault(w.series_uid, set()).add(w.uid)
    whole: list[str] = []
    requests: list[Request] = []
    for series_uid, items in by_series.items():
        if {w.uid for w in items} == all_by_series.get(series_uid, set()) and target.level is QueryLevel.STUDY:
            whole.append(series_uid)
            continue
        for chunk in dicom_retrieve.chunks([w.uid for w in items]):
            requests.append(Request(QueryLevel.INSTANCE, (series_uid,), tuple(chunk), len(chunk)))
    for chunk in dicom_retrieve.chunks(whole):
        count = sum(len(by_series[s]) for s in chunk)
        requests.insert(0, Request(QueryLevel.SERIES, tuple(chunk), (), count))
    return requests


# --------------------------------------------------------------------------------------------
# The service


class RetrieveService:
    """C-GET and C-MOVE into `archive` from the PACS of `profile`.

    `scp`: a running (or startable) ArchiveServer over the same archive, for C-MOVE to our own AE
    title; without one, a job that needs it starts one on `profile.listener_port` (bound to
    `listener_host`, "" = every interface) and stops it when done. `cancel_timeout`: seconds the PACS
    has to end an operation after C-CANCEL before the association is aborted.
    """

    def __init__(self, profile: ServerProfile, archive: Archive, *, scp: ArchiveServer | None = None,
                 listener_host: str = "", cancel_timeout: float = DEFAULT_CANCEL_TIMEOUT) -> None:
        if scp is not None and scp.archive is not archive:
            raise ValueError("the Storage SCP must write into the same archive as the retrieve")
        self.profile = profile
        self.archive = archive
        self.scp = scp
        self.listener_host = listener_host
        self.cancel_timeout = cancel_timeout
        self._move_jobs: set[RetrieveJob] = set()
        self._tapped: ArchiveServer | None = None
        self._tapped_callback: Any = None
        self._listener_users = 0
        self._own_scp: ArchiveServer | None = None
        self._started_given = False
        self._listener_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        p = self.profile
        return f"<RetrieveService {p.called_ae}@{p.host}:{p.port} {p.retrieve_method.value}>"

    @property
    def own_ae(self) -> str:
        """The AE title our Storage SCP answers to (a C-MOVE to it lands in the archive)."""
        return self.scp.ae_title if self.scp is not None else self.profile.calling_ae

    # -- C-GET -----------------------------------------------------------------------------

    def get_study(self, study_uid: str, *, resume: bool = True) -> "RetrieveJob":
        return self._job(RetrieveMethod.GET, Target(QueryLevel.STUDY, study_uid), None, resume)

    def get_series(self, study_uid: str, series_uid: str, *, resume: bool = True) -> "RetrieveJob":
        return self._job(RetrieveMethod.GET, Target(QueryLevel.SERIES, study_uid, series_uid), None, resume)

    def get_instance(self, study_uid: str, series_uid: str, sop_instance_uid: str, *,
                     resume: bool = True) -> "RetrieveJob":
        target = Target(QueryLevel.INSTANCE, study_uid, series_uid, sop_instance_uid)
        return self._job(RetrieveMethod.GET, target, None, resume)

    # -- C-MOVE ----------------------------------------------------------------------------

    def move_study(self, study_uid: str, destination_ae: str | None = None, *, resume: bool = True) -> "RetrieveJob":
        return self._job(RetrieveMethod.MOVE, Target(QueryLevel.STUDY, study_uid), destination_ae, resume)

    def move_series(self, study_uid: str, series_uid: str, destination_ae: str | None = None, *,
                    resume: bool = True) -> "RetrieveJob":
        target = Target(QueryLevel.SERIES, study_uid, series_uid)
        return self._job(RetrieveMethod.MOVE, target, destination_ae, resume)

    def move_instance(self, study_uid: str, series_uid: str, sop_instance_uid: str,
                      destination_ae: str | None = None, *, resume: bool = True) -> "RetrieveJob":
        target = Target(QueryLevel.INSTANCE, study_uid, series_uid, sop_instance_uid)
        return self._job(RetrieveMethod.MOVE, target, destination_ae, resume)

    # -- by the profile --------------------------------------------------------------------

    def retrieve(self, study_uid: str, series_uid: str = "", sop_instance_uid: str = "", *,
                 method: RetrieveMethod | None = None, destination_ae: str | None = None,
                 resume: bool = True) -> "RetrieveJob":
        """The profile's method (C-GET, or C-MOVE to its `move_destination`, else to us)."""
        if sop_instance_uid and not series_uid:
            raise ValueError("an instance retrieve needs the Series Instance UID")
        level = QueryLevel.INSTANCE if sop_instance_uid else QueryLevel.SERIES if series_uid else QueryLevel.STUDY
        method = method or self.profile.retrieve_method
        target = Target(level, study_uid, series_uid, sop_instance_uid)
        return self._job(method, target, destination_ae, resume)

    def _job(self, method: RetrieveMethod, target: Target, destination_ae: str | None, resume: bool) -> "RetrieveJob":
        if not target.study_uid:
            raise ValueError("a retrieve needs the Study Instance UID")
        destination = ""
        if method is RetrieveMethod.MOVE:
            destination = (destination_ae or self.profile.move_destination or self.own_ae).strip()
            if not destination:
                raise ValueError("a C-MOVE needs a destination AE title")
        return RetrieveJob(self, method, target, destination, resume)

    # -- our listener (C-MOVE to ourselves) ------------------------------------------------

    async def _acquire_listener(self, job: "RetrieveJob") -> ArchiveServer:
        if self._listener_lock is None:
            self._listener_lock = asyncio.Lock()
        async with self._listener_lock:
            scp = self.scp
            if scp is None:
                if self._own_scp is None:
                    # grace: a PACS has answered its last sub-operation by the time the job ends;
                    # an association it still holds open then is not worth waiting for long.
                    self._own_scp = ArchiveServer(self.profile.listener_port, self.profile.calling_ae, self.archive,
                                               host=self.listener_host, timeouts=self.profile.timeouts,
                                               max_pdu=self.profile.max_pdu, grace=2.0)
                scp = self._own_scp
            if not scp.is_running:
                await scp.start()
                if scp is self.scp:
                    self._started_given = True
                    log.info("started the Storage SCP %r for a C-MOVE", scp)
            self._listener_users += 1
            self._tap(scp)
            self._move_jobs.add(job)
            return scp

    async def _release_listener(self, job: "RetrieveJob") -> None:
        assert self._listener_lock is not None
        async with self._listener_lock:
            self._move_jobs.discard(job)
            self._listener_users -= 1
            if self._listener_users == 0:
                self._untap()
                if self._own_scp is not None:
                    scp, self._own_scp = self._own_scp, None
                    await scp.stop()
                elif self._started_given and self.scp is not None:
                    self._started_given = False  # we started it, we stop it
                    await self.scp.stop()

    def _tap(self, scp: ArchiveServer) -> None:
        """See what the listener receives, keeping its own callback."""
        if self._tapped is scp:
            return
        self._untap()
        self._tapped, self._tapped_callback = scp, scp.on_image_received
        original = scp.on_image_received

        def tap(record: Received) -> Any:
            for job in list(self._move_jobs):
                job._on_received(record)
            return original(record) if original is not None else None

        scp.on_image_received = tap

    def _untap(self) -> None:
        if self._tapped is not None:
            self._tapped.on_image_received = self._tapped_callback
            self._tapped = self._tapped_callback = None


# --------------------------------------------------------------------------------------------
# A job


class RetrieveJob:
    """One retrieve: iterate it for progress, await it for the summary, cancel it any time.

    Starts when first iterated or awaited (or `start()`), on the running loop. `progress` is the
    latest RetrieveProgress, `summary` the RetrieveSummary once done. The iteration and `await`
    raise what made the retrieve fail (DICOMNetworkError: RetrieveInterrupted, MoveDestinationUnknown,
    ServiceNotSupported...). Several consumers may iterate; each sees the latest state.
    """

    def __init__(self, service: RetrieveService, method: RetrieveMethod, target: Target, destination: str,
                 resume: bool) -> None:
        self.service = service
        self.profile = service.profile
        self.archive = service.archive
        self.method = method
        self.target = target
        self.destination_ae = destination
        self.resume = resume
        self.progress = RetrieveProgress(method, RetrievePhase.PLANNING)
        self.summary: RetrieveSummary | None = None
        self.error: BaseException | None = None
        self._task: asyncio.Task | None = None
        self._next: asyncio.Future | None = None
        self._done = False
        self._cancel_requested = False
        self._cancelled_at: float | None = None
        self._control: RetrieveControl | None = None
        self._cancel_tasks: set[asyncio.Task] = set()
        # counters
        self._started = 0.0
        self._transfer_started: float | None = None
        self._transfer_ended: float | None = None
        self._received_uids: set[str] = set()
        self._received = 0
        self._bytes = 0
        self._refused: list[str] = []
        self._fin = [0, 0, 0]  # completed, failed, warning of finished requests
        self._cur: tuple[int | None, int, int, int] = (None, 0, 0, 0)
        self._queued: int | None = 0  # instances of requests not yet sent
        self._total: int | None = None
        self._present = 0
        self._request_no = 0
        self._requests = 0
        self._associations = 0
        self._failed_uids: list[str] = []
        self._statuses: list[int] = []
        self._aborted = False
        self._reasons: list[str] = []
        self._notes: list[str] = []
        self._retried_ok = 0
        self._plan: Plan | None = None
        self._phase = RetrievePhase.PLANNING
        self._move_filter: set[str] | None = None
        self._listener_address: tuple[str, int] | None = None
        self._last_activity = 0.0
        self._arrived = 0  # records of the target from our listener (C-MOVE), whatever the plan said
        self._arrival: asyncio.Event | None = None

    def __repr__(self) -> str:
        t = self.target
        what = {QueryLevel.STUDY: "study", QueryLevel.SERIES: "series", QueryLevel.INSTANCE: "instance"}[t.level]
        state = "done" if self._done else ("running" if self._task else "not started")
        return f"<RetrieveJob {self.method.value} {what} {t.sop_uid or t.series_uid or t.study_uid} {state}>"

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
        if self._cancel_requested or self._done:
            return
        self._cancel_requested = True
        self._cancelled_at = time.monotonic()
        control = self._control
        if control is not None and not control.requested:
            task = asyncio.get_running_loop().create_task(run_blocking(control.cancel, name="retrieve-cancel"))
            self._cancel_tasks.add(task)
            task.add_done_callback(self._cancel_tasks.discard)
        self._publish()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

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

    async def __aenter__(self) -> "RetrieveJob":
        self.start()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await self.aclose()

    # -- progress --------------------------------------------------------------------------

    def _snapshot(self) -> RetrieveProgress:
        now = time.monotonic()
        remaining, completed, failed, warning = self._cur
        if remaining is not None and self._queued is not None:
            remaining += self._queued
        elif remaining is None and self._queued:
            remaining = self._queued
        transfer = 0.0
        if self._transfer_started is not None:
            transfer = (self._transfer_ended or now) - self._transfer_started
        return RetrieveProgress(
            method=self.method, phase=self._phase, total=self._total, received=self._received,
            bytes_received=self._bytes, remaining=remaining, completed=self._fin[0] + completed,
            failed=self._fin[1] + failed, warning=self._fin[2] + warning, already_present=self._present,
            elapsed=now - self._started if self._started else 0.0,
            rate=self._received / transfer if transfer > 0 else 0.0,
            byte_rate=self._bytes / transfer if transfer > 0 else 0.0,
            request=self._request_no, requests=self._requests, cancelling=self._cancel_requested,
        )

    def _publish(self) -> None:
        self.progress = self._snapshot()
        waiter = self._next
        if waiter is None:
            return
        self._next = asyncio.get_running_loop().create_future()
        if not waiter.done():
            waiter.set_result(None)

    def _set_phase(self, phase: RetrievePhase) -> None:
        self._phase = phase
        self._publish()

    def _on_received(self, record: Received) -> None:
        """A record from our Storage SCP (C-MOVE), on the loop."""
        t = self.target
        if record.study_instance_uid != t.study_uid:
            return
        if t.series_uid and record.series_instance_uid != t.series_uid:
            return
        if t.sop_uid and record.sop_instance_uid != t.sop_uid:
            return
        self._last_activity = time.monotonic()
        self._arrived += 1
        if self._arrival is not None:
            self._arrival.set()
        if self._move_filter is not None and record.sop_instance_uid not in self._move_filter:
            return
        if record.sop_instance_uid in self._received_uids:
            return
        self._received_uids.add(record.sop_instance_uid)
        self._received += 1
        self._bytes += record.size
        self._publish()

    # -- the work --------------------------------------------------------------------------

    async def _main(self) -> None:
        self._started = time.monotonic()
        try:
            await self._run()
        except BaseException as exc:  # noqa: BLE001 - kept for the awaiting consumers
            if isinstance(exc, (DICOMNetworkError, ArchiveError, ValueError, OSError)):
                self.error = exc
            elif isinstance(exc, asyncio.CancelledError):
                self.error = exc
                self._finish_summary()
                self._done = True
                self._phase = RetrievePhase.DONE
                self._publish()
                raise
            else:
                log.exception("retrieve failed")
                self.error = exc
        finally:
            if self._cancel_tasks:
                await asyncio.gather(*list(self._cancel_tasks), return_exceptions=True)
        if self.summary is None:
            self._finish_summary()
        if isinstance(self.error, RetrieveInterrupted):
            self.error.summary = self.summary
        self._done = True
        self._phase = RetrievePhase.DONE
        self._publish()

    async def _run(self) -> None:
        plan = await self._make_plan()
        self._plan = plan
        missing = plan.missing
        self._present = len(plan.present & {w.uid for w in plan.wanted}) if plan.wanted is not None else 0
        self._total = len(missing) if missing is not None else None
        self._queued = self._total
        if missing is not None and not missing:
            self._notes.append("everything was already in the archive" if plan.wanted else
                               "the PACS listed nothing to retrieve")
            if not plan.wanted:
                # The PACS said it holds nothing: ask anyway (it may not list what it can send).
                plan.wanted = None
                self._total = self._queued = None
            else:
                self._finish_summary()
                return
        if self._cancel_requested:
            self._finish_summary()
            return
        self._set_phase(RetrievePhase.RETRIEVING)
        if self.method is RetrieveMethod.GET:
            await self._get(plan)
        else:
            await self._move(plan)
        self._transfer_ended = self._transfer_ended or time.monotonic()
        self._finish_summary()
        self._check_failure()

    # -- planning

    async def _make_plan(self) -> Plan:
        t = self.target
        if self.method is RetrieveMethod.MOVE and self.destination_ae != self.service.own_ae:
            return Plan(None)  # another AE's storage: our archive says nothing about it
        if self.method is RetrieveMethod.MOVE and not self.resume:
            return Plan(None, notes=["not checked against the archive (no resume)"])
        wanted, notes = await self._ask_pacs()
        plan = Plan(wanted, notes=notes)
        self._notes.extend(notes)
        if wanted is not None and self.resume:
            plan.present = await run_blocking(self._archive_holds, t.study_uid, name="retrieve-plan")
        return plan

    def _archive_holds(self, study_uid: str) -> set[str]:
        self.archive.flush()
        return {row.sop_instance_uid for row in self.archive.instances(study_uid=study_uid)}

    async def _ask_pacs(self) -> tuple[list[Wanted] | None, list[str]]:
        """The instances of the target, from C-FIND at series and image level (None if unanswered)."""
        t = self.target
        client = DICOMClient.from_profile(self.profile)
        try:
            await client.associate(contexts=find_contexts())
        except ServiceNotSupported as exc:
            return None, [f"the PACS does not answer queries ({exc.services}): retrieved without checking the archive"]
        self._associations += 1
        service = QueryService(client, self.profile, cancel_timeout=self.service.cancel_timeout)
        wanted: list[Wanted] = []
        try:
            if t.level is QueryLevel.STUDY:
                series = [s.series_instance_uid for s in await service.find_series(t.study_uid).collect()
                          if s.series_instance_uid]
            else:
                series = [t.series_uid]
            for series_uid in series:
                if self._cancel_requested:
                    return None, []
                keys = QueryKeys.instances(t.study_uid, series_uid, sop_instance_uid=t.sop_uid)
                found = service.find_instances(keys)
                for result in await found.collect():
                    if result.sop_instance_uid:
                        wanted.append(Wanted(result.sop_instance_uid, result.series_instance_uid or series_uid,
                                             result.sop_class_uid))
                outcome = found.outcome
                if outcome is not None and outcome.incomplete:
                    return None, ["the PACS's instance list was incomplete: retrieved without checking the archive"]
        except (DIMSEError, ServiceNotSupported, ValueError) as exc:
            return None, [f"the PACS did not list the instances ({exc}): retrieved without checking the archive"]
        finally:
            if client.is_associated:
                await client.release()
            else:
                client.abort()
        unique = list({w.uid: w for w in wanted}.values())
        notes = []
        if self.method is RetrieveMethod.GET and unique and not all(w.sop_class for w in unique):
            notes.append("the PACS did not say the SOP classes: a default set of storage contexts was proposed")
        return unique, notes

    # -- C-GET

    async def _get(self, plan: Plan) -> None:
        todo = plan.missing
        classes_known = plan.classes_known
        first: dict[str, str] = {}
        tried: dict[str, set[str]] = {}
        accepted: dict[str, list[str]] = {}
        round_no = 0
        while True:
            round_no += 1
            if classes_known:
                assert todo is not None
                groups = dicom_retrieve.plan_get_contexts(sorted({w.sop_class for w in todo}), first=first)
            else:
                groups = dicom_retrieve.default_groups(first)
            work: list[tuple[ContextGroup, list[Request]]] = []
            for group in groups:
                subset = [w for w in todo if w.sop_class in group] if (classes_known and todo is not None) else todo
                requests = plan_requests(self.target, plan, subset)
                if requests:
                    work.append((group, requests))
            self._requests += sum(len(r) for _, r in work)
            failed_before = self._fin[1]
            received_before = set(self._received_uids)
            for group, requests in work:
                if self._cancel_requested:
                    break
                await self._get_on_association(group, requests, accepted, tried)
            if round_no > 1:
                self._retried_ok += len(self._received_uids - received_before)
            if self._cancel_requested or todo is None:
                return
            still = [w for w in todo if w.uid not in self._received_uids]
            if not still or self._fin[1] == failed_before:
                return
            # Try what failed again with another accepted syntax first (a PACS that sends each class
            # on its first accepted context and cannot convert, like dcmqrscp).
            classes = {w.sop_class for w in still} if classes_known else set(accepted)
            next_first: dict[str, str] = {}
            for sop_class in classes:
                options = [s for s in accepted.get(sop_class, [])
                           if s not in _UNCOMPRESSED and s not in tried.get(sop_class, set())]
                if options:
                    next_first[sop_class] = options[0]
            if not next_first:
                return
            names = sorted({syntax_name(s) for s in next_first.values()})
            self._notes.append(f"{len(still)} instance{'s' if len(still) != 1 else ''} the PACS could not send "
                               f"{'were' if len(still) != 1 else 'was'} asked for again on a new association with "
                               f"{', '.join(names)} first")
            first = next_first
            todo = [w for w in still if not classes_known or w.sop_class in next_first]
            self._queued = len(todo)

    async def _get_on_association(self, group: ContextGroup, requests: list[Request],
                                  accepted: dict[str, list[str]], tried: dict[str, set[str]]) -> None:
        client = DICOMClient.from_profile(self.profile)
        handler = dicom_retrieve.GetStoreHandler(self.archive)
        watch = dicom_retrieve.AbortWatch()
        try:
            await client.associate(contexts=list(group.contexts), ext_neg=list(group.roles),
                                   evt_handlers=[(evt.EVT_C_STORE, handler), (evt.EVT_PDU_RECV, watch)])
        except ServiceNotSupported as exc:  # nothing at all accepted
            raise ServiceNotSupported(client.host, client.port, "C-GET (Study Root)", detail=exc.detail,
                                      hint=_USE_MOVE) from exc
        self._associations += 1
        healthy = False
        try:
            assoc = client.association
            if not dicom_retrieve.accepts_model(assoc, dicom_retrieve.GET_MODEL):
                raise ServiceNotSupported(
                    client.host, client.port, "C-GET (Study Root)",
                    detail=f"accepted: {sorted({str(cx.abstract_syntax) for cx in assoc.accepted_contexts})}",
                    hint=_USE_MOVE)
            syntaxes = dicom_retrieve.accepted_storage_syntaxes(assoc)
            if not syntaxes:
                raise ServiceNotSupported(
                    client.host, client.port, "sending images back on a C-GET association "
                    "(it accepted none of our storage contexts with us as SCP)",
                    hint=_USE_MOVE)
            for sop_class, found in syntaxes.items():
                known = accepted.setdefault(sop_class, [])
                known.extend(s for s in found if s not in known)
                tried.setdefault(sop_class, set()).add(found[0])
            for request in requests:
                if self._cancel_requested:
                    break
                result = await self._send(assoc, request, handler=handler, watch=watch)
                if result.aborted:
                    self._interrupted(result, client)
            healthy = True
        finally:
            if healthy and client.is_associated:
                await client.release()
            else:
                client.abort()

    # -- C-MOVE

    async def _move(self, plan: Plan) -> None:
        own = self.destination_ae == self.service.own_ae
        missing = plan.missing
        self._move_filter = {w.uid for w in missing} if missing is not None else None
        scp = None
        if own:
            scp = await self.service._acquire_listener(self)
            self._listener_address = scp.address
        try:
            requests = plan_requests(self.target, plan, missing)
            self._requests += len(requests)
            client = DICOMClient.from_profile(self.profile)
            watch = dicom_retrieve.AbortWatch()
            try:
                await client.associate(contexts=[build_context(dicom_retrieve.MOVE_MODEL)],
                                       evt_handlers=[(evt.EVT_PDU_RECV, watch)])
            except ServiceNotSupported as exc:
                raise ServiceNotSupported(client.host, client.port, "C-MOVE (Study Root)", detail=exc.detail,
                                          hint=_USE_GET) from exc
            self._associations += 1
            healthy = False
            try:
                assoc = client.association
                if not dicom_retrieve.accepts_model(assoc, dicom_retrieve.MOVE_MODEL):
                    raise ServiceNotSupported(client.host, client.port, "C-MOVE (Study Root)", hint=_USE_GET)
                local_host = str(assoc.requestor.address or "")
                for number, request in enumerate(requests):
                    if self._cancel_requested:
                        break
                    result = await self._send(assoc, request, watch=watch, destination=self.destination_ae,
                                              idle=self.profile.timeouts.dimse if own else None)
                    if result.aborted:
                        if own:  # count what has landed before saying how many arrived
                            await run_blocking(self.archive.flush, name="archive-flush")
                        self._interrupted(result, client)
                    self._check_destination(result, number, local_host, scp)
                healthy = True
            finally:
                if healthy and client.is_associated:
                    await client.release()
                else:
                    client.abort()
            if own:
                # The PACS sends its final response once our SCP has answered every sub-operation,
                # so the files are in place; wait until they are indexed (their records reach the
                # loop before this await returns).
                self._set_phase(RetrievePhase.FINISHING)
                await run_blocking(self.archive.flush, name="archive-flush")
                if not self._cancel_requested:
                    await self._await_stragglers(self.profile.timeouts.dimse)
            else:
                self._received = self._fin[0] + self._fin[2]
        finally:
            if own:
                await self.service._release_listener(self)

    async def _await_stragglers(self, idle: float) -> None:
        """A PACS may send its final C-MOVE response before its last sub-operations (an asynchronous
        C-MOVE SCP): until what it counts as sent has arrived, wait, as long as something keeps
        arriving within `idle` seconds."""
        expected = self._fin[0] + self._fin[2]
        if self._arrived >= expected:
            return
        log.info("the PACS says it sent %d instances, %d have arrived: waiting for the rest", expected, self._arrived)
        self._arrival = asyncio.Event()
        try:
            while self._arrived < expected and not self._cancel_requested:
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), idle)
                except asyncio.TimeoutError:
                    self._reasons.append(f"the PACS said it sent {expected} instances; {self._arrived} arrived at "
                                         f"our listener")
                    break
        finally:
            self._arrival = None
        await run_blocking(self.archive.flush, name="archive-flush")

    def _check_destination(self, result: RetrieveResponses, number: int, local_host: str,
                           scp: ArchiveServer | None) -> None:
        status = result.status
        if status is None:
            return
        nothing = result.pending == 0 and not (result.completed or result.failed or result.warning)
        certain = status == 0xA801
        likely = number == 0 and nothing and 0xC000 <= status <= 0xCFFF
        if not (certain or likely):
            return
        if scp is not None:
            bound_host, port = scp.address
            host: str | None = bound_host if bound_host not in ("", "0.0.0.0", "::") else local_host
        else:
            host, port = None, None
        raise MoveDestinationUnknown(status, self.destination_ae, host, port, certain=certain, comment=result.comment)

    # -- one request

    async def _send(self, assoc: Any, request: Request, *, handler: Any = None, watch: Any = None,
                    destination: str | None = None, idle: float | None = None) -> RetrieveResponses:
        """One request on a worker thread, its events applied here. `idle`: instead of pynetdicom's
        DIMSE timeout, abort when neither a response nor an instance at our listener came for that
        many seconds (a C-MOVE PACS need not send pending responses while it sends)."""
        control = RetrieveControl(self.service.cancel_timeout)
        if self._cancel_requested:
            control.cancel(wait=False)
        self._control = control
        self._request_no += 1
        if self._queued is not None and request.count is not None:
            self._queued = max(0, self._queued - request.count)
        elif request.count is None:
            self._queued = None
        self._cur = (request.count, 0, 0, 0)
        identifier = request.identifier(self.target.study_uid)
        holder: dict[str, RetrieveResponses] = {}

        def produce(emit: Callable[[tuple], None]) -> None:
            if handler is not None:
                handler.sink = emit
            try:
                holder["result"] = dicom_retrieve.send_retrieve(
                    assoc, identifier, move_destination=destination, control=control, handler=handler, watch=watch,
                    on_pending=lambda r: emit(("pending", r.remaining, r.completed, r.failed, r.warning)),
                    no_dimse_timeout=idle is not None)
            finally:
                if handler is not None:
                    handler.sink = None

        if self._transfer_started is None:
            self._transfer_started = time.monotonic()
        log.info("%s %s level, %s instances", "C-MOVE" if destination else "C-GET", request.level.name.lower(),
                 request.count if request.count is not None else "?")
        self._publish()
        self._last_activity = time.monotonic()
        stop_watching = self._watch_idle(control, idle) if idle else None
        stream = stream_blocking(produce, name="retrieve")
        try:
            async for batch in stream:
                for event in batch:
                    self._apply(event)
                self._publish()
        except asyncio.CancelledError:
            control.abort("the retrieve was stopped")
            raise
        finally:
            self._control = None
            if stop_watching is not None:
                stop_watching()
        self._transfer_ended = time.monotonic()
        result = holder["result"]
        self._fin[0] += result.completed
        self._fin[1] += result.failed
        self._fin[2] += result.warning
        self._cur = (None, 0, 0, 0)
        if result.status is not None:
            self._statuses.append(result.status)
        self._failed_uids.extend(u for u in result.failed_uids if u not in self._failed_uids)
        if result.status is not None and result.status not in (0x0000, 0xFE00) and result.comment:
            self._notes.append(f"the PACS said: {result.comment}")
        self._publish()
        return result

    def _watch_idle(self, control: RetrieveControl, idle: float) -> Callable[[], None]:
        """Check every second whether the PACS has gone silent; the function returned stops it."""
        loop = asyncio.get_running_loop()
        handle: dict[str, asyncio.TimerHandle] = {}

        def check() -> None:
            if control.finished:
                return
            quiet = time.monotonic() - self._last_activity
            if quiet >= idle:
                why = f"neither a response nor an instance came for {idle:g} s"
                task = loop.create_task(run_blocking(lambda: control.abort(why, timed_out=True), name="retrieve-abort"))
                self._cancel_tasks.add(task)
                task.add_done_callback(self._cancel_tasks.discard)
                return
            handle["timer"] = loop.call_later(min(1.0, idle - quiet) + 0.01, check)

        handle["timer"] = loop.call_later(min(1.0, idle), check)
        return lambda: handle["timer"].cancel()

    def _apply(self, event: tuple) -> None:
        self._last_activity = time.monotonic()
        kind = event[0]
        if kind == "stored":
            _, uid, size = event
            if uid not in self._received_uids:
                self._received_uids.add(uid)
                self._received += 1
            self._bytes += size
        elif kind == "pending":
            _, remaining, completed, failed, warning = event
            self._cur = (remaining, completed, failed, warning)
        elif kind == "refused":
            self._refused.append(str(event[2]))

    def _interrupted(self, result: RetrieveResponses, client: DICOMClient) -> None:
        """The association broke during a request: raise (or, after our own cancel, just stop)."""
        self._aborted = True
        if result.aborted_by == "us" and self._cancel_requested:
            self._reasons.append(f"the PACS did not stop after C-CANCEL: the association was aborted "
                                 f"({result.abort_reason})")
            return
        self._transfer_ended = time.monotonic()
        self._finish_summary()
        what = "C-MOVE" if self.method is RetrieveMethod.MOVE else "C-GET"
        if result.aborted_by == "peer":
            lead = f"The PACS aborted the association during the {what}"
        elif result.aborted_by == "timeout":
            lead = f"The PACS stopped answering during the {what} ({result.abort_reason})"
        else:
            lead = f"The connection to the PACS closed during the {what}"
        summary = self.summary
        assert summary is not None
        expected = None if summary.requested is None else summary.requested
        raise RetrieveInterrupted(lead, self._received, expected, summary=summary,
                                  detail=f"{result.aborted_by}: {result.abort_reason}",
                                  timed_out=result.aborted_by == "timeout")

    # -- the end

    def _missing_now(self) -> list[str]:
        plan = self._plan
        if plan is None or plan.missing is None:
            return []
        return [w.uid for w in plan.missing if w.uid not in self._received_uids]

    def _finish_summary(self) -> None:
        plan = self._plan
        t = self.target
        missing = self._missing_now()
        reasons = list(self._reasons)
        failed = max(0, self._fin[1] - self._retried_ok)
        if plan is not None and plan.missing is not None:  # planned: did everything come anyway?
            finished = not missing and not failed
        else:
            finished = bool(self._statuses) and self._statuses[-1] == 0x0000 and not self._aborted
        cancelled = self._cancel_requested and not finished
        if cancelled:
            reasons.insert(0, "cancelled")
        if missing and not cancelled:
            reasons.append(f"{len(missing)} of the instances the PACS listed did not arrive")
        if failed:
            last = next((s for s in reversed(self._statuses) if s not in (0x0000, 0xFE00)), None)
            words = f" ({status_words(last, self._service_name())[1]}, 0x{last:04X})" if last is not None else ""
            reasons.append(f"the PACS reported {failed} failed sub-operation{'s' if failed != 1 else ''}{words}")
            if self.method is RetrieveMethod.MOVE and self.destination_ae == self.service.own_ae:
                reasons.append("the PACS could not send them to our listener (a transfer syntax it cannot convert "
                               "and our listener did not accept, or the listener refused them)")
        if self._refused:
            reasons.append(f"{len(self._refused)} instances could not be written to the archive: {self._refused[0]}")
        transfer = 0.0
        if self._transfer_started is not None:
            transfer = (self._transfer_ended or time.monotonic()) - self._transfer_started
        expected = len(plan.wanted) if plan is not None and plan.wanted is not None else None
        requested = len(plan.missing) if plan is not None and plan.missing is not None else None
        self.summary = RetrieveSummary(
            method=self.method, level=t.level, study_instance_uid=t.study_uid, series_instance_uid=t.series_uid,
            sop_instance_uid=t.sop_uid, destination_ae=self.destination_ae, expected=expected,
            already_present=self._present, requested=requested, received=self._received,
            bytes_received=self._bytes, completed=self._fin[0], failed=failed, warning=self._fin[2],
            missing=tuple(missing), failed_uids=tuple(u for u in self._failed_uids if u not in self._received_uids),
            status=self._statuses[-1] if self._statuses else None, cancelled=cancelled, aborted=self._aborted,
            associations=self._associations, requests=self._request_no,
            elapsed=time.monotonic() - self._started if self._started else 0.0, transfer_seconds=transfer,
            planned=plan is not None and plan.wanted is not None, reasons=tuple(dict.fromkeys(reasons)),
            notes=tuple(dict.fromkeys(self._notes)),
        )

    def _service_name(self) -> str:
        return "C-MOVE" if self.method is RetrieveMethod.MOVE else "C-GET"

    def _check_failure(self) -> None:
        """Nothing arrived and the PACS said why: that is an error, not a summary."""
        summary = self.summary
        assert summary is not None
        if summary.cancelled or summary.received or summary.completed or summary.warning or not self._statuses:
            return
        last = self._statuses[-1]
        if status_words(last, self._service_name())[0] != "Failure":
            return
        comment = next((n[len("the PACS said: "):] for n in self._notes if n.startswith("the PACS said: ")), "")
        hint = ""
        if self.method is RetrieveMethod.GET and summary.failed:
            hint = (f"the PACS could not send {summary.failed} instance{'s' if summary.failed != 1 else ''} on the "
                    "presentation contexts it accepted (it cannot convert their transfer syntax)")
        elif self.method is RetrieveMethod.MOVE and summary.failed:
            hint = f"the PACS could not deliver {summary.failed} instances to {self.destination_ae}"
        error = DIMSEError(last, self._service_name(), comment=comment, hint=hint)
        error.summary = summary  # type: ignore[attr-defined]
        raise error


__all__ = ["Plan", "Request", "RetrieveJob", "RetrieveService", "Target", "Wanted", "plan_requests"]
