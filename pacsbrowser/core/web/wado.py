"""WADO-RS retrieve into the local archive: the RetrieveService / RetrieveJob interface over
DICOMweb.

    service = WebRetrieveService(profile, archive)
    job = service.get_study(study_uid)
    async for progress in job:             # RetrieveProgress: instances and bytes as they arrive
        ...
    summary = await job                     # RetrieveSummary (method WADO-RS)
    job.cancel()                            # any time; what arrived whole stays

1. Plan (resume): QIDO-RS lists the target's series and instances; the archive says what it has.
   Only what it lacks is asked for: the whole study (series, instance) in one request when nothing
   is there, else each missing series whole and each missing instance of a partly present series.
   A complete target asks for nothing. A server whose QIDO fails gets one request for the target.
2. Transfer: each request is one streamed WADO-RS GET (multipart/related, each part a DICOM file,
   in the syntax the server holds: `transfer-syntax=*`), read chunk by chunk on a worker thread by
   multipart.py; each finished part goes into the archive (Archive.store: temporary file, rename,
   indexed by the archive's indexer). Progress by instance and by byte.
3. Cancel: the worker stops reading at the next chunk and closes the connection; the part under
   way is dropped, every instance written before stays. A connection that breaks mid-way raises
   RetrieveInterrupted (what arrived stays; a new retrieve fetches only the rest).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..archive import Archive
from ..errors import ArchiveError, DICOMNetworkError, RetrieveInterrupted, ServiceNotSupported
from ..executor import LoopPoster, run_blocking
from ..jobs import ProgressHandle
from ..records import (
    QueryKeys,
    QueryLevel,
    RetrieveMethod,
    RetrievePhase,
    RetrieveProgress,
    RetrieveSummary,
    ServerProfile,
)
from ..retrieve.planning import Target
from .fetch import Stopped, fetch
from .multipart import MultipartError
from .qido import WebQueryService
from .session import WebSession

log = logging.getLogger(__name__)

NO_C_MOVE = "C-MOVE: DICOMweb has no C-MOVE; the images come back on the same connection (WADO-RS)"


@dataclass(frozen=True)
class WebRequest:
    """One WADO-RS GET: its path under the WADO root and how many instances it should bring."""

    path: tuple[str, ...]
    expected: int | None
    skip: frozenset[str] = frozenset()  # instances of a series asked for whole that the archive holds


class WebRetrieveService:
    """WADO-RS into `archive` from the DICOMweb server of `profile`. Same methods as
    core.retrieve.RetrieveService; the C-MOVE ones raise ServiceNotSupported (DICOMweb has none).
    DIMSE-only options (`scp`, `listener_host`) are accepted and ignored."""

    def __init__(self, profile: ServerProfile, archive: Archive, *, session: WebSession | None = None,
                 cancel_timeout: float = 10.0, **_dimse_only: Any) -> None:
        if profile.web is None:
            raise ValueError(f"profile {profile.name!r} is not a DICOMweb profile")
        self.profile = profile
        self.archive = archive
        self.session = session
        self.cancel_timeout = cancel_timeout
        self.scp = None

    def __repr__(self) -> str:
        return f"<WebRetrieveService {self.profile.web.base_url if self.profile.web else '?'} WADO-RS>"

    @property
    def own_ae(self) -> str:
        return self.profile.calling_ae

    def get_study(self, study_uid: str, *, resume: bool = True) -> "WebRetrieveJob":
        return self._job(Target(QueryLevel.STUDY, study_uid), resume)

    def get_series(self, study_uid: str, series_uid: str, *, resume: bool = True) -> "WebRetrieveJob":
        return self._job(Target(QueryLevel.SERIES, study_uid, series_uid), resume)

    def get_instance(self, study_uid: str, series_uid: str, sop_instance_uid: str, *,
                     resume: bool = True) -> "WebRetrieveJob":
        return self._job(Target(QueryLevel.INSTANCE, study_uid, series_uid, sop_instance_uid), resume)

    def retrieve(self, study_uid: str, series_uid: str = "", sop_instance_uid: str = "", *,
                 method: RetrieveMethod | None = None, destination_ae: str | None = None,
                 resume: bool = True) -> "WebRetrieveJob":
        if method is RetrieveMethod.MOVE or destination_ae:
            raise self._no_move()
        if sop_instance_uid and not series_uid:
            raise ValueError("an instance retrieve needs the Series Instance UID")
        level = QueryLevel.INSTANCE if sop_instance_uid else QueryLevel.SERIES if series_uid else QueryLevel.STUDY
        return self._job(Target(level, study_uid, series_uid, sop_instance_uid), resume)

    def move_study(self, *args: Any, **kwargs: Any) -> "WebRetrieveJob":
        raise self._no_move()

    move_series = move_instance = move_study

    def _no_move(self) -> ServiceNotSupported:
        return ServiceNotSupported(self.profile.host, self.profile.port, NO_C_MOVE)

    def _job(self, target: Target, resume: bool) -> "WebRetrieveJob":
        if not target.study_uid:
            raise ValueError("a retrieve needs the Study Instance UID")
        return WebRetrieveJob(self, target, resume)


class WebRetrieveJob(ProgressHandle[RetrieveProgress, RetrieveSummary]):
    """One WADO-RS retrieve: iterate it for RetrieveProgress, await it for the RetrieveSummary,
    cancel it any time (the interface of core.retrieve.RetrieveJob)."""

    def __init__(self, service: WebRetrieveService, target: Target, resume: bool) -> None:
        self.service, self.profile, self.archive = service, service.profile, service.archive
        self.method = RetrieveMethod.WADO
        self.target, self.resume, self.destination_ae = target, resume, ""
        self.progress = RetrieveProgress(self.method, RetrievePhase.PLANNING)
        self._summary: RetrieveSummary | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        # counts (loop thread only)
        self._phase = RetrievePhase.PLANNING
        self._listed: dict[str, str] = {}  # SOP Instance UID -> series, what the server listed
        self._planned = False
        self._total: int | None = None
        self._present = 0
        self._received = 0
        self._bytes = 0
        self._failed = 0
        self._skipped = 0
        self._request = 0
        self._requests = 0
        self._notes: list[str] = []
        self._started = time.monotonic()
        self._first_request: float | None = None
        self._last_publish = 0.0

    def __repr__(self) -> str:
        t = self.target
        state = "done" if self._done else ("running" if self._task else "not started")
        return f"<WebRetrieveJob WADO-RS {t.sop_uid or t.series_uid or t.study_uid} {state}>"

    @property
    def summary(self) -> RetrieveSummary | None:
        """How it ended (None until then)."""
        return self._summary

    # -- control (the rest of the handle: core.jobs.ProgressHandle) ----------------------------

    def _task_name(self) -> str:
        return f"wado-{self.target.study_uid[-12:]}"

    def _stop_bound(self) -> float:
        return self.profile.timeouts.dimse + 5

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    def cancel(self) -> None:
        if self._stop.is_set() or self._done:
            return
        self._stop.set()
        self._publish(force=True)

    # -- progress ------------------------------------------------------------------------------

    def _snapshot(self) -> RetrieveProgress:
        now = time.monotonic()
        transfer = now - self._first_request if self._first_request is not None else 0.0
        return RetrieveProgress(
            method=self.method, phase=self._phase, total=self._total, received=self._received,
            bytes_received=self._bytes, remaining=None if self._total is None else max(0, self._total - self._received),
            completed=self._received, failed=self._failed, already_present=self._present,
            elapsed=now - self._started, rate=self._received / transfer if transfer > 0 else 0.0,
            byte_rate=self._bytes / transfer if transfer > 0 else 0.0, request=self._request,
            requests=self._requests, cancelling=self._stop.is_set() and not self._done)

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_publish < 0.05:
            return
        self._last_publish = now
        self.progress = self._snapshot()
        self._wake()

    def _on_bytes(self, count: int) -> None:
        self._bytes += count
        self._publish()

    def _on_instance(self, stored: bool) -> None:
        if stored:
            self._received += 1
        else:
            self._skipped += 1
        self._publish()

    def _on_failed(self, note: str) -> None:
        self._failed += 1
        if len(self._notes) < 20:
            self._notes.append(note)
        self._publish()

    # -- the work --------------------------------------------------------------------------------

    async def _main(self) -> None:
        own_session = self.service.session is None
        session = self.service.session or WebSession(self.profile)
        try:
            requests = await self._plan(session)
            self._requests = len(requests)
            self._phase = RetrievePhase.RETRIEVING
            self._publish(force=True)
            for number, request in enumerate(requests, start=1):
                if self._stop.is_set():
                    break
                self._request = number
                if self._first_request is None:
                    self._first_request = time.monotonic()
                await self._transfer(session, request)
            self._phase = RetrievePhase.FINISHING
            self._publish(force=True)
            await run_blocking(self.archive.flush, name="wado-flush")
        except asyncio.CancelledError:
            self._stop.set()
            self.error = asyncio.CancelledError()
            self._finish()
            raise
        except (DICOMNetworkError, ArchiveError, ValueError, OSError) as exc:
            self.error = exc
        except BaseException as exc:  # noqa: BLE001 - kept for the awaiting consumers
            log.exception("WADO-RS retrieve failed")
            self.error = exc
        finally:
            if own_session:
                session.close()
        self._finish()
        if isinstance(self.error, RetrieveInterrupted):
            self.error.summary = self.summary

    def _finish(self) -> None:
        if self._summary is None:
            self._summary = self._summarise()
        self._done = True
        self._phase = RetrievePhase.DONE
        self._publish(force=True)

    async def _plan(self, session: WebSession) -> list[WebRequest]:
        """What to ask for: the target's instances the archive lacks (everything when not resuming
        or when the server cannot list them)."""
        t = self.target
        whole = WebRequest(self._path(t.study_uid, t.series_uid, t.sop_uid), None)
        if t.level is QueryLevel.INSTANCE:
            self._listed = {t.sop_uid: t.series_uid}
            self._planned = True
        else:
            try:
                self._listed = await self._list(session)
                self._planned = True
            except DICOMNetworkError as exc:
                if not self.resume:
                    raise
                self._notes.append(f"the server did not list the instances ({exc}): asked for everything")
                return [whole]
        if not self.resume:
            self._total = len(self._listed)
            return [whole]
        present = await run_blocking(self._present_uids, name="wado-plan")
        missing = {uid: series for uid, series in self._listed.items() if uid not in present}
        self._present = len(self._listed) - len(missing)
        self._total = len(missing)
        if not missing:
            return []
        if not self._present:
            return [WebRequest(whole.path, len(missing))]
        by_series: dict[str, list[str]] = {}
        for uid, series in missing.items():
            by_series.setdefault(series, []).append(uid)
        requests = []
        for series, uids in sorted(by_series.items()):
            in_series = {uid for uid, s in self._listed.items() if s == series}
            if len(uids) == len(in_series):
                requests.append(WebRequest(self._path(t.study_uid, series), len(uids)))
            elif len(uids) * 2 >= len(in_series) and t.level is not QueryLevel.INSTANCE:
                # most of the series is missing: one request for it, what the archive holds skipped
                # as it comes (cheaper than a request per instance)
                requests.append(WebRequest(self._path(t.study_uid, series), len(uids),
                                           frozenset(in_series - set(uids))))
            else:
                requests += [WebRequest(self._path(t.study_uid, series, uid), 1) for uid in sorted(uids)]
        return requests

    def _present_uids(self) -> set[str]:
        t = self.target
        if t.level is QueryLevel.INSTANCE:
            return {t.sop_uid} if self.archive.has_instance(t.sop_uid) else set()
        if t.level is QueryLevel.SERIES:
            rows = self.archive.instances(t.series_uid)
        else:
            rows = self.archive.instances(study_uid=t.study_uid)
        return {row.sop_instance_uid for row in rows}

    async def _list(self, session: WebSession) -> dict[str, str]:
        """SOP Instance UID -> Series Instance UID of what the server holds of the target (QIDO)."""
        t = self.target
        query = WebQueryService(self.profile, session=session)
        if t.level is QueryLevel.SERIES:
            series_uids = [t.series_uid]
        else:
            series_uids = [s.series_instance_uid for s in await query.find(QueryKeys.series(t.study_uid)).collect()]
        listed: dict[str, str] = {}
        for series in series_uids:
            for instance in await query.find(QueryKeys.instances(t.study_uid, series)).collect():
                listed[instance.sop_instance_uid] = series
        return listed

    @staticmethod
    def _path(study: str, series: str = "", sop: str = "") -> tuple[str, ...]:
        path: tuple[str, ...] = ("studies", study)
        if series:
            path += ("series", series)
        if sop:
            path += ("instances", sop)
        return path

    async def _transfer(self, session: WebSession, request: WebRequest) -> None:
        post = LoopPoster(asyncio.get_running_loop()).post  # dropped when the loop is closed: nobody listens

        url = session.url("wado", *request.path)
        received_before = self._received
        log.info("WADO-RS %s (%s instances)", "/".join(request.path[::2]), request.expected or "?")
        try:
            await run_blocking(fetch, session, url, self.archive, self._stop, post, self._on_bytes,
                               self._on_instance, self._on_failed, set(request.skip) or None,
                               self.profile.called_ae, name="wado")
        except Stopped:
            return
        except MultipartError as exc:
            raise RetrieveInterrupted("WADO-RS retrieve broke off", self._received, self._total,
                                      detail=str(exc)) from exc
        except DICOMNetworkError as exc:
            if self._received > received_before or self._received:
                raise RetrieveInterrupted(f"WADO-RS retrieve broke off ({exc})", self._received, self._total,
                                          detail=exc.detail) from exc
            raise

    def _summarise(self) -> RetrieveSummary:
        t = self.target
        missing: tuple[str, ...] = ()
        if self._planned and self._listed:
            try:
                present = self._present_uids()
                missing = tuple(sorted(uid for uid in self._listed if uid not in present))
            except Exception:  # noqa: BLE001 - a closed archive: nothing to say about what is missing
                missing = ()
        cancelled = self._stop.is_set()
        reasons: list[str] = []
        if cancelled:
            reasons.append("cancelled")
        if missing and not cancelled:
            reasons.append(f"{len(missing)} listed instances did not arrive")
        if self._failed:
            reasons.append(f"{self._failed} parts could not be stored")
        transfer = time.monotonic() - self._first_request if self._first_request is not None else 0.0
        notes = list(self._notes)
        if self._skipped:
            notes.append(f"{self._skipped} instances the archive held came with their series and were skipped")
        return RetrieveSummary(
            method=self.method, level=t.level, study_instance_uid=t.study_uid, series_instance_uid=t.series_uid,
            sop_instance_uid=t.sop_uid, expected=len(self._listed) if self._planned else None,
            already_present=self._present, requested=self._total, received=self._received,
            bytes_received=self._bytes, completed=self._received, failed=self._failed, missing=missing,
            cancelled=cancelled, aborted=False, associations=0, requests=self._requests,
            elapsed=time.monotonic() - self._started, transfer_seconds=transfer, planned=self._planned,
            reasons=tuple(reasons), notes=tuple(notes))


__all__ = ["NO_C_MOVE", "WebRetrieveJob", "WebRetrieveService"]
