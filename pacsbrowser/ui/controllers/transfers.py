"""Runs the window's transfers: retrieves (C-GET, C-MOVE or WADO-RS into the local archive) and sends
(C-STORE or STOW-RS of files and folders), at most `PER_PROFILE` at once per server, the rest queued.
core.services picks the DIMSE or the DICOMweb service from the profile; the jobs look the same.

Each transfer is a `Transfer` row of `model`; it can be cancelled and retried. Everything runs as
asyncio tasks on the GUI loop over the core's services; the core does the blocking work on its
worker threads. What arrives is announced with `archive_changed(study_uid)` once it is indexed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ...core import services
from ...core.archive import Archive
from ...core.errors import ArchiveError, DICOMNetworkError, MoveDestinationUnknown
from ...core.executor import run_blocking
from ...core.records import (
    InstanceResult,
    RetrieveMethod,
    RetrievePhase,
    RetrieveProgress,
    RetrieveSummary,
    SeriesResult,
    ServerProfile,
    StoreOutcome,
    StoreProgress,
    StudyResult,
)
from ...core.server import ArchiveServer
from ...core.store import StoreSummary
from ..models.holdings import Held
from ..models.transfers import Direction, State, Transfer, TransfersModel, size_text
from .holdings import HoldingsController

log = logging.getLogger(__name__)

_PHASES = {RetrievePhase.PLANNING: "Checking what is here…", RetrievePhase.RETRIEVING: "Retrieving",
           RetrievePhase.FINISHING: "Finishing…"}


class TransfersController(QObject):
    PER_PROFILE = 2  # transfers running at once with one server; the others wait
    NOTIFY_SECONDS = 0.5  # archive_changed at most this often per study while files arrive
    SHUTDOWN_SECONDS = 10.0  # bound on waiting for cancelled transfers at shutdown

    archive_changed = Signal(str)  # a study whose local holdings changed (new instances indexed)
    open_local_requested = Signal(str, str)  # (study UID, series UID or ""): held completely, show it
    transfer_added = Signal(object)  # Transfer
    transfer_finished = Signal(object)  # Transfer, in a final state

    def __init__(self, archive: Archive, parent: QObject | None = None, *,
                 holdings: HoldingsController | None = None, listener_host: str | None = None,
                 cancel_timeout: float | None = None) -> None:
        super().__init__(parent)
        self.archive = archive
        self.holdings = holdings
        # where an on-demand C-MOVE listener binds (None: the address the PACS reaches us on; "" = every interface)
        self.listener_host = listener_host
        self.listener_allowed: tuple[str, ...] = ()  # AE titles besides the PACS's the on-demand listener accepts
        self.cancel_timeout = cancel_timeout
        self.model = TransfersModel(self)
        self._server: ArchiveServer | None = None
        # RetrieveService or WebRetrieveService, by profile and the password or token it was given
        # (a DICOMweb profile's secret takes no part in its equality: a new one needs a new service)
        self._services: dict[tuple[ServerProfile, str | None], Any] = {}
        self._tasks: dict[int, asyncio.Task] = {}
        self._jobs: dict[int, object] = {}  # transfer id -> RetrieveJob
        self._cancelled: set[int] = set()  # transfer ids the user stopped
        self._notify: dict[str, asyncio.Task] = {}
        self.started_count = 0  # transfers started (tests check that a local open starts none)

    # -- what the window asks for ---------------------------------------------------------------
    def set_server(self, server: ArchiveServer | None) -> None:
        """The app's running listener (or None): C-MOVEs to our own AE title go to it from now on."""
        self._server = server
        self._services.clear()  # new services use it; running jobs keep theirs

    def set_listener_allowed(self, allowed: tuple[str, ...]) -> None:
        """The listener settings' allowed calling AE titles: an on-demand C-MOVE listener accepts
        them besides the PACS's own AE title."""
        if tuple(allowed) != self.listener_allowed:
            self.listener_allowed = tuple(allowed)
            self._services.clear()

    def retrieve(self, profile: ServerProfile, study_uid: str, series_uid: str = "", sop_instance_uid: str = "", *,
                 label: str = "", patient: str = "") -> Transfer:
        """Queue a retrieve with the profile's method. `label` says what it is (no patient data);
        `patient` is shown only while patient data may be shown. The same retrieve already
        queued or running is not started twice."""
        transfer = Transfer(Direction.RETRIEVE, profile, study_uid, series_uid, sop_instance_uid,
                            label=label, patient=patient)
        return self._add(transfer)

    def send(self, profile: ServerProfile, paths: list[Path], *, label: str = "") -> Transfer:
        """Queue a send of files and folders (folders are walked) to the profile's PACS."""
        paths = [Path(p) for p in paths]
        if not label:
            first = paths[0].name if paths else ""
            label = first if len(paths) == 1 else f"{first} and {len(paths) - 1} more"
        return self._add(Transfer(Direction.SEND, profile, paths=tuple(paths), label=label))

    def activate(self, profile: ServerProfile, result: object, study: object = None,
                 series: object = None) -> Transfer | None:
        """The user double-clicked (or pressed Enter on) a study, series or instance row: open it
        when this computer holds it completely (no network), otherwise retrieve it. `study` and
        `series` are the row's parents (they name the transfer and fill UIDs a PACS left out)."""
        study_uid, series_uid, sop_uid = uids_of(result, study, series)
        if not study_uid:
            return None
        uid = sop_uid or series_uid or study_uid
        held = self.holdings.holding(uid) if self.holdings is not None else None
        if held is not None and held.state is Held.FULL:
            self.open_local_requested.emit(study_uid, series_uid)
            return None
        return self.retrieve_result(profile, result, study, series)

    def retrieve_result(self, profile: ServerProfile, result: object, study: object = None,
                        series: object = None) -> Transfer | None:
        """Retrieve a study, series or instance row (named after its study, without patient data)."""
        study_uid, series_uid, sop_uid = uids_of(result, study, series)
        if not study_uid:
            return None
        label, patient = describe(result, study)
        return self.retrieve(profile, study_uid, series_uid, sop_uid, label=label, patient=patient)

    def cancel(self, transfer: Transfer) -> None:
        if transfer.state is State.QUEUED:
            self._cancelled.add(transfer.id)
            self._end(transfer, State.CANCELLED, "Cancelled before it started.")
            return
        if transfer.state is not State.RUNNING:
            return
        self._cancelled.add(transfer.id)
        transfer.state = State.STOPPING
        self.model.changed(transfer)
        job = self._jobs.get(transfer.id)
        if job is not None:
            job.cancel()  # C-CANCEL (or the WADO-RS stream closed), then abort if the PACS does not stop in time
        else:
            task = self._tasks.get(transfer.id)
            if task is not None:
                task.cancel()

    def retry(self, transfer: Transfer, method: RetrieveMethod | None = None) -> None:
        """Run a finished transfer again: a retrieve fetches only what is still missing (with
        `method` instead of the profile's when given); a send sends again what failed (everything,
        when it was stopped or could not connect)."""
        if transfer.state.active:
            return
        if method is not None:
            transfer.method = method
        if transfer.direction is Direction.SEND and transfer.state is State.INCOMPLETE:
            failed = [r.path for r in transfer.problems if r.outcome is StoreOutcome.FAILED and r.path]
            if failed:
                transfer.paths = tuple(failed)
        self._cancelled.discard(transfer.id)
        transfer.attempt += 1
        _reset(transfer)
        self.model.changed(transfer)
        self._pump()

    def clear_finished(self) -> None:
        self.model.remove([t for t in self.model.transfers if not t.state.active])

    def active(self) -> list[Transfer]:
        return [t for t in self.model.transfers if t.state.active]

    async def shutdown(self) -> None:
        """Cancel every transfer and wait (bounded) until each has ended cleanly."""
        for transfer in self.active():
            self.cancel(transfer)
        tasks = [t for t in self._tasks.values() if not t.done()] + [t for t in self._notify.values() if not t.done()]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=self.SHUTDOWN_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)

    # -- queue ------------------------------------------------------------------------------------
    def _add(self, transfer: Transfer) -> Transfer:
        for other in self.model.transfers:
            if other.key == transfer.key and other.state.active:
                return other
        self.model.add(transfer)
        self.transfer_added.emit(transfer)
        self._pump()
        return transfer

    def _pump(self) -> None:
        running: dict[str, int] = {}
        for t in self.model.transfers:
            if t.state in (State.RUNNING, State.STOPPING):
                running[t.profile.name] = running.get(t.profile.name, 0) + 1
        for t in self.model.transfers:
            if t.state is State.QUEUED and running.get(t.profile.name, 0) < self.PER_PROFILE:
                running[t.profile.name] = running.get(t.profile.name, 0) + 1
                self._start(t)

    def _start(self, transfer: Transfer) -> None:
        transfer.state = State.RUNNING
        transfer.started = time.monotonic()
        self.started_count += 1
        self.model.changed(transfer)
        run = self._run_retrieve if transfer.direction is Direction.RETRIEVE else self._run_send
        task = asyncio.ensure_future(run(transfer))
        self._tasks[transfer.id] = task
        task.add_done_callback(lambda _task: self._task_done(transfer))

    def _task_done(self, transfer: Transfer) -> None:
        self._tasks.pop(transfer.id, None)
        if transfer.state.active:  # stopped before it could say how (cancelled before its first step)
            self._end(transfer, State.CANCELLED, "Stopped before anything was transferred.")

    def _end(self, transfer: Transfer, state: State, message: str, detail: str = "") -> None:
        transfer.state, transfer.message, transfer.detail = state, message, detail
        transfer.ended = time.monotonic()
        transfer.phase = ""
        self.model.changed(transfer)
        self.transfer_finished.emit(transfer)
        self._pump()

    # -- retrieve ---------------------------------------------------------------------------------
    def _service(self, profile: ServerProfile) -> Any:
        key = (profile, profile.web.secret if profile.web is not None else None)
        service = self._services.get(key)
        if service is None:
            scp = self._server if self._server is not None and self._server.archive is self.archive else None
            options = {} if self.cancel_timeout is None else {"cancel_timeout": self.cancel_timeout}
            service = services.retrieve_service(profile, self.archive, scp=scp, listener_host=self.listener_host,
                                                 listener_allowed=self.listener_allowed,
                                                **options)
            self._services[key] = service
        return service

    async def _run_retrieve(self, transfer: Transfer) -> None:
        try:
            job = self._service(transfer.profile).retrieve(transfer.study_uid, transfer.series_uid, transfer.sop_uid,
                                                           method=transfer.method)
        except ValueError as exc:
            self._end(transfer, State.FAILED, str(exc))
            return
        self._jobs[transfer.id] = job
        received = 0
        error: BaseException | None = None
        try:
            async for progress in job:
                self._apply(transfer, progress)
                if progress.received > received:
                    received = progress.received
                    self._arrived(transfer.study_uid)
        except (DICOMNetworkError, ArchiveError, ValueError, OSError) as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - a bug: the row says so instead of staying "running"
            log.exception("retrieve failed")
            error = exc
        except asyncio.CancelledError:
            await job.aclose()  # the window is closing: stop the PACS cleanly (bounded)
            raise
        finally:
            self._jobs.pop(transfer.id, None)
        await self._landed(transfer.study_uid, received > 0)
        summary = job.summary
        if summary is not None:
            self._apply_summary(transfer, summary)
        if error is not None:
            transfer.offer_get = isinstance(error, MoveDestinationUnknown)
            detail = getattr(error, "detail", "") or repr(error)
            if summary is not None:
                detail = "\n".join(x for x in (detail, _summary_detail(summary)) if x)
            self._end(transfer, State.FAILED, str(error), detail)
            return
        assert summary is not None
        self._finish_retrieve(transfer, summary)

    def _apply(self, t: Transfer, p: RetrieveProgress) -> None:
        t.phase = _PHASES.get(p.phase, "")
        if p.cancelling and t.state is State.RUNNING:
            t.state = State.STOPPING
        if p.total is not None:
            t.total = p.total
        elif p.remaining is not None:
            t.total = p.completed + p.failed + p.warning + p.remaining
        t.done, t.bytes_done, t.already_present = p.received, p.bytes_received, p.already_present
        t.rate, t.byte_rate = p.rate, p.byte_rate
        self.model.changed(t)

    def _apply_summary(self, t: Transfer, s: RetrieveSummary) -> None:
        t.done, t.bytes_done, t.already_present = s.received, s.bytes_received, s.already_present
        if s.requested is not None:
            t.total = s.requested
        if s.transfer_seconds > 0:
            t.rate, t.byte_rate = s.rate, s.bytes_received / s.transfer_seconds

    def _finish_retrieve(self, t: Transfer, s: RetrieveSummary) -> None:
        detail = _summary_detail(s)
        here = s.already_present + s.received
        of = f" of {s.expected}" if s.expected is not None else ""
        if s.complete:
            if self.holdings is not None:
                self.holdings.mark_complete(t.sop_uid or t.series_uid or t.study_uid)
            if s.received == 0 and s.already_present:
                message = f"Everything ({s.already_present} images) was already on this computer."
            else:
                message = f"Retrieved {s.received} images ({size_text(s.bytes_received)}) in {s.elapsed:.1f} s"
                message += f"; {s.already_present} were already here." if s.already_present else "."
            self._end(t, State.COMPLETE, message, detail)
        elif s.cancelled or t.id in self._cancelled:
            rest = f"; Retry fetches the other {s.expected - here}" if s.expected is not None and s.expected > here \
                else "; Retry fetches the rest"
            self._end(t, State.CANCELLED, f"Stopped: {here}{of} images are on this computer{rest}.", detail)
        else:
            reasons = "; ".join(s.reasons) or "not everything arrived"
            message = f"{here}{of} images are on this computer: {reasons}. Retry fetches what is missing."
            self._end(t, State.INCOMPLETE, message[0].upper() + message[1:], detail)

    def _arrived(self, study_uid: str) -> None:
        """Files of this study are arriving: announce them (indexed) at most every NOTIFY_SECONDS."""
        task = self._notify.get(study_uid)
        if task is None or task.done():
            self._notify[study_uid] = asyncio.ensure_future(self._announce(study_uid, self.NOTIFY_SECONDS))

    async def _landed(self, study_uid: str, changed: bool) -> None:
        """The retrieve ended: what came is indexed, announced and counted before the row says so."""
        task = self._notify.pop(study_uid, None)
        if task is not None and not task.done():
            task.cancel()
        await self._announce(study_uid, 0.0, announce=changed)

    async def _announce(self, study_uid: str, delay: float, announce: bool = True) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            await run_blocking(self.archive.flush, name="archive-flush")
        except ArchiveError as exc:
            log.debug("archive not flushed: %s", exc)
            return
        if announce:
            self.archive_changed.emit(study_uid)
        if self.holdings is not None:
            self.holdings.refresh_study(study_uid)

    # -- send -------------------------------------------------------------------------------------
    async def _run_send(self, transfer: Transfer) -> None:
        service = services.store_service(transfer.profile)

        def progress(p: StoreProgress) -> None:
            transfer.total, transfer.done = p.total, p.done
            transfer.bytes_done, transfer.bytes_total = p.bytes_done, p.bytes_total or None
            if p.elapsed > 0:
                transfer.rate, transfer.byte_rate = p.done / p.elapsed, p.bytes_done / p.elapsed
            transfer.problems.extend(r for r in p.results if r.outcome is not StoreOutcome.SUCCESS)
            transfer.phase = "Reading files…" if p.total is None else "Sending"
            self.model.changed(transfer)

        try:
            summary = await service.store(list(transfer.paths), on_progress=progress)
        except DICOMNetworkError as exc:
            self._end(transfer, State.FAILED, str(exc), exc.detail)
            return
        except Exception as exc:  # noqa: BLE001 - a bug: the row says so instead of staying "running"
            log.exception("send failed")
            self._end(transfer, State.FAILED, f"The send stopped on an unexpected error: {exc}", repr(exc))
            return
        except asyncio.CancelledError:
            if transfer.id not in self._cancelled:
                raise
            stored = transfer.done - len(transfer.problems)
            self._end(transfer, State.CANCELLED, f"Stopped after {stored} files were stored; Retry sends them all again.")
            return
        self._finish_send(transfer, summary)

    def _finish_send(self, t: Transfer, s: StoreSummary) -> None:
        t.problems = s.problems
        t.done, t.total = len(s.results), len(s.results)
        stored = len(s.stored)
        message = f"Sent {stored} of {len(s.results)} files ({size_text(s.bytes_stored)}) in {s.elapsed:.1f} s"
        bad = [r for r in s.results if not r.stored]
        if bad:
            skipped, failed = len(s.skipped), len(s.failed)
            parts = ([f"{skipped} not sendable (not DICOM or damaged)"] if skipped else []) + \
                    ([f"{failed} refused or not delivered"] if failed else [])
            message += "; " + ", ".join(parts)
        if s.warnings:
            message += f"; {len(s.warnings)} stored with a warning"
        detail = s.error.detail if s.error is not None else ""
        if s.error is not None:
            message += f". {s.error}"
        state = State.COMPLETE if s.complete else State.INCOMPLETE if stored else State.FAILED
        self._end(t, state, message + ("." if not message.endswith(".") else ""), detail)


def _reset(t: Transfer) -> None:
    t.state, t.phase, t.message, t.detail = State.QUEUED, "", "", ""
    t.total, t.done, t.already_present, t.bytes_done, t.bytes_total = None, 0, 0, 0, None
    t.rate = t.byte_rate = 0.0
    t.started = t.ended = None
    t.problems = []
    t.offer_get = False


def _summary_detail(s: RetrieveSummary) -> str:
    lines = [f"{s.method.value} {s.level.name.lower()} level"
             + (f" to {s.destination_ae}" if s.destination_ae else "")
             + f": {s.summary}"]
    if s.status is not None:
        lines.append(f"last status 0x{s.status:04X}; {s.associations} associations, {s.requests} requests")
    elif s.method is RetrieveMethod.WADO:
        lines.append(f"{s.requests} WADO-RS request{'' if s.requests == 1 else 's'}")
    lines += list(s.reasons) + list(s.notes)
    return "\n".join(lines)


def uids_of(result: object, study: object = None, series: object = None) -> tuple[str, str, str]:
    """(study, series, SOP instance) UIDs of a study, series or instance result; the parents'
    records fill in what the PACS left out of the row's own."""
    study_uid = getattr(result, "study_instance_uid", "") or getattr(study, "study_instance_uid", "") or \
        getattr(series, "study_instance_uid", "")
    if isinstance(result, StudyResult):
        return result.study_instance_uid, "", ""
    if isinstance(result, SeriesResult):
        return study_uid, result.series_instance_uid, ""
    if isinstance(result, InstanceResult):
        series_uid = result.series_instance_uid or getattr(series, "series_instance_uid", "")
        return study_uid, series_uid, result.sop_instance_uid
    return "", "", ""


def describe(result: object, study: object = None) -> tuple[str, str]:
    """(what it is without patient data, the patient's name) for a transfer row."""
    study = result if isinstance(result, StudyResult) else study
    parts = []
    if isinstance(study, StudyResult):
        date = study.study_date.isoformat() if study.study_date else ""
        parts.append(" ".join(x for x in ("/".join(study.modalities or ()), date, study.study_description) if x)
                     or "study")
    if isinstance(result, SeriesResult):
        number = f"series {result.series_number}" if result.series_number is not None else "series"
        parts.append(" ".join(x for x in (number, result.series_description) if x))
    elif isinstance(result, InstanceResult):
        parts.append(f"image {result.instance_number}" if result.instance_number is not None else "image")
    patient = str(study.patient_name) if isinstance(study, StudyResult) else ""
    return " › ".join(parts), patient
