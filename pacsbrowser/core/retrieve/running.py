"""Running a retrieve job: plan, then the C-GET rounds or the C-MOVE, each request read on a worker
thread with its events counted on the loop; the idle watch of a C-MOVE to our listener; cancel
(C-CANCEL, then abort after the bound); a broken association becomes RetrieveInterrupted.

C-GET rounds: the storage contexts are those of the SOP classes the PACS listed, split over several
associations when they do not fit one (each association then asks only for its classes). When the
PACS could not send some instances on the contexts it accepted (dcmqrscp sends each SOP class on the
first accepted context and cannot convert), what is missing is asked for again on a new association
with an accepted compressed syntax first, once per syntax the PACS accepted. When the PACS did not
say the SOP classes, a common set is proposed first, then, for what it could not send, every other
storage class on further associations. Nothing is asked for again after our own handler refused
(the archive could not write).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pynetdicom import build_context, evt
from pynetdicom.association import Association

from ..client import DICOMClient
from ..dicom import retrieve as dicom_retrieve
from ..dicom.activity import activity_of
from ..dicom.anyclass import take_proposed_scp_role
from ..dicom.contexts import DEFAULT_CLASSES
from ..dicom.links import wait_ended
from ..dicom.operation import next_message_id
from ..dicom.receive import ReceiveHandler
from ..dicom.retrieve import UNCOMPRESSED, AbortWatch, ContextGroup, RetrieveControl, RetrieveResponses
from ..dicom.syntaxes import syntax_name
from ..errors import DICOMNetworkError, MoveDestinationUnknown, RetrieveInterrupted, ServiceNotSupported
from ..executor import run_blocking, start_detached, stream_blocking
from ..records import Received, RetrieveMethod, RetrievePhase
from ..server import ArchiveServer
from .association import open_association
from .counting import RetrieveCounts
from .planning import Plan, Request, make_plan, plan_requests
from .shortcut import quick_plan

if TYPE_CHECKING:
    from .service import RetrieveService

log = logging.getLogger(__name__)

_USE_MOVE = ("retrieve with C-MOVE instead (set the profile's retrieve method to C-MOVE; the PACS must know our "
             "AE title, host and port)")
_USE_GET = "retrieve with C-GET instead (set the profile's retrieve method to C-GET)"
_UNCOMPRESSED = {str(u) for u in UNCOMPRESSED}


class RetrieveRun:
    """The work of one RetrieveJob: what `counts` describes (method, target, destination), with
    `resume` or not. `publish` is called on the loop whenever `counts` changed."""

    def __init__(self, service: RetrieveService, counts: RetrieveCounts, resume: bool,
                 publish: Callable[[], None]) -> None:
        self.service, self.counts, self.resume, self.publish = service, counts, resume, publish
        self.profile, self.archive = service.profile, service.archive
        self.method, self.target, self.destination_ae = counts.method, counts.target, counts.destination_ae
        self.cancel_requested = False
        self._control: RetrieveControl | None = None  # of the request under way
        self._background: set[asyncio.Task] = set()  # C-CANCEL and abort calls on worker threads
        self._arrival: asyncio.Event | None = None
        self._own_moves: list[Callable[[], None]] = []  # ArchiveServer.expect_move, ended with the job

    # -- control

    def cancel(self) -> None:
        """C-CANCEL the request under way (later ones are not sent). On the loop; returns at once."""
        self.cancel_requested = True
        control = self._control
        if control is not None and not control.requested:
            self._in_background(run_blocking(control.cancel, name="retrieve-cancel"))

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for the C-CANCEL and abort calls still under way."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def finish(self) -> None:
        self.counts.finish(cancel_requested=self.cancel_requested)

    # -- the work

    async def run(self) -> None:
        c = self.counts
        plan = await self._plan()
        c.planned(plan)
        if plan.missing is not None and not plan.missing:
            c.notes.append("everything was already in the archive" if plan.wanted else
                           "the PACS listed nothing to retrieve")
            if not plan.wanted:
                # The PACS said it holds nothing: ask anyway (it may not list what it can send).
                plan.wanted = None
                c.total = c.queued = None
            else:
                self.finish()
                return
        if self.cancel_requested:
            self.finish()
            return
        c.phase = RetrievePhase.RETRIEVING
        self.publish()
        if self.method is RetrieveMethod.GET:
            try:
                await self._get(plan)
            finally:  # what was written in batches, renamed and indexed: what the summary counts is in the index
                if not self.archive.closed:
                    await run_blocking(self.archive.flush, name="archive-flush")
        else:
            await self._move(plan)
        c.transfer_ended = c.transfer_ended or time.monotonic()
        await self._name_the_missing(plan)
        self.finish()
        error = c.failure()
        if error is not None:
            raise error

    async def _plan(self) -> Plan:
        """Without listing the PACS's instances when the archive holds nothing of the target
        (core.retrieve.shortcut), else the full plan."""
        c = self.counts
        said: tuple[str, ...] | None = None
        if self.method is RetrieveMethod.GET or c.to_us:
            quick, said = await quick_plan(self.profile, self.archive, self.target, c, method=self.method,
                                           resume=self.resume, cancel_timeout=self.service.cancel_timeout)
            if quick is not None:
                return quick
        return await make_plan(self.profile, self.archive, self.target, c, method=self.method, to_us=c.to_us,
                               resume=self.resume, cancel_timeout=self.service.cancel_timeout,
                               cancelled=lambda: self.cancel_requested, said_classes=said)

    async def _name_the_missing(self, plan: Plan) -> None:
        """A plan without a listing (the archive held nothing) knows how many instances to expect,
        not which: when fewer arrived, list the PACS's instances now, so that the summary names the
        missing ones (and a later retrieve asks for them). The archive held none before this job."""
        c = self.counts
        if plan.wanted is not None or plan.expected is None or self.cancel_requested or c.received >= plan.expected:
            return
        try:
            listed = await make_plan(self.profile, self.archive, self.target, c, method=self.method,
                                     to_us=c.to_us, resume=True, cancel_timeout=self.service.cancel_timeout,
                                     cancelled=lambda: self.cancel_requested)
        except DICOMNetworkError as exc:
            log.info("could not list the instances still missing: %s", exc)
            return
        if listed.wanted is not None:
            plan.wanted, plan.present = listed.wanted, set()

    # -- C-GET

    async def _get(self, plan: Plan) -> None:
        c = self.counts
        todo = plan.missing
        classes_known = plan.classes_known
        first: dict[str, str] = {}
        tried: dict[str, set[str]] = {}
        accepted: dict[str, list[str]] = {}
        round_no = 0
        widening = widened = False  # the PACS did not say the classes: the other storage classes proposed
        while True:
            round_no += 1
            if classes_known:
                assert todo is not None
                groups = dicom_retrieve.plan_get_contexts(sorted({w.sop_class for w in todo}), first=first)
            elif widening:
                groups = dicom_retrieve.other_storage_groups(exclude=plan.study_classes or DEFAULT_CLASSES)
            elif plan.study_classes:  # SOP Classes in Study (with or without a listing)
                groups = dicom_retrieve.plan_get_contexts(sorted(plan.study_classes), first=first)
            else:
                groups = dicom_retrieve.default_groups(first)
            work: list[tuple[ContextGroup, list[Request]]] = []
            for group in groups:
                subset = [w for w in todo if w.sop_class in group] if (classes_known and todo is not None) else todo
                requests = plan_requests(self.target, plan, subset)
                if requests:
                    work.append((group, requests))
            c.requests += sum(len(r) for _, r in work)
            failed_before = c.finished[1]
            received_before = set(c.received_uids)
            refused_before = len(c.refused)
            for group, requests in work:
                if self.cancel_requested:
                    break
                if widening:  # only what the groups before this one did not bring
                    assert todo is not None
                    requests = plan_requests(self.target, plan, [w for w in todo if w.uid not in c.received_uids])
                    if not requests:
                        break
                await self._get_on_association(group, requests, accepted, tried, optional=widening)
            if round_no > 1:
                c.retried_ok += len(c.received_uids - received_before)
            if widening:
                # each instance was asked for on every further group, and failed on those without its class
                c.retried_ok += c.finished[1] - failed_before
                widening = False
            if self.cancel_requested:
                return
            if len(c.refused) > refused_before:
                # Our own handler refused (the archive could not write: disk full...): asking again
                # would only be refused again.
                c.notes.append("no second attempt: our archive refused instances "
                               f"({c.refused[refused_before]})")
                return
            if todo is None:
                return
            still = [w for w in todo if w.uid not in c.received_uids]
            if not still or c.finished[1] == failed_before:
                return
            if not classes_known and not widened:
                widened = widening = True
                c.notes.append(f"{len(still)} instance{'s' if len(still) != 1 else ''} did not come on the default "
                               "storage contexts (the PACS did not say the SOP classes): the other storage classes "
                               "were proposed on further associations")
                todo = still
                c.queued = len(todo)
                continue
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
            c.notes.append(f"{len(still)} instance{'s' if len(still) != 1 else ''} the PACS could not send "
                           f"{'were' if len(still) != 1 else 'was'} asked for again on a new association with "
                           f"{', '.join(names)} first")
            first = next_first
            todo = [w for w in still if not classes_known or w.sop_class in next_first]
            c.queued = len(todo)

    async def _get_on_association(self, group: ContextGroup, requests: list[Request],
                                  accepted: dict[str, list[str]], tried: dict[str, set[str]], *,
                                  optional: bool = False) -> None:
        """The requests on one association with the contexts of `group`; `optional`: a group of
        further storage classes, of which the PACS may accept none (then nothing is asked)."""
        client = DICOMClient.from_profile(self.profile)
        handler = ReceiveHandler(self.archive, batched=True)  # the PACS keeps what a crash would lose
        watch = AbortWatch()
        async with open_association(client, self.counts, contexts=list(group.contexts), ext_neg=list(group.roles),
                                    evt_handlers=[(evt.EVT_C_STORE, handler), (evt.EVT_PDU_RECV, watch)],
                                    service="C-GET (Study Root)", model=dicom_retrieve.GET_MODEL,
                                    hint=_USE_MOVE) as assoc:
            take_proposed_scp_role(assoc)  # private classes accepted without a role answer (Orthanc)
            syntaxes = dicom_retrieve.accepted_storage_syntaxes(assoc)
            if not syntaxes and optional:
                return
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
                if self.cancel_requested:
                    break
                # Idle = no bytes for the DIMSE timeout, not a DIMSE message per timeout: one large
                # object on a slow link may take far longer than that to arrive.
                result = await self._send(assoc, request, handler=handler, watch=watch,
                                          idle=self.profile.timeouts.dimse)
                if result.aborted:
                    self._interrupted(result)
            flushing = self._flush_while_releasing()
        await flushing

    # -- C-MOVE

    async def _move(self, plan: Plan) -> None:
        c = self.counts
        missing = plan.missing
        c.move_filter = {w.uid for w in missing} if missing is not None else None
        if not c.to_us:
            await self._move_requests(plan, None)
            return
        async with self.service.listening() as scp:
            with scp.subscribe(self._on_received):
                try:
                    await self._move_requests(plan, scp)
                    # The PACS sends its final response once our SCP has answered every sub-operation,
                    # so the files are in place; wait until they are indexed (their records reach the
                    # loop before this await returns).
                    c.phase = RetrievePhase.FINISHING
                    self.publish()
                    await run_blocking(self.archive.flush, name="archive-flush")
                    if not self.cancel_requested:
                        await self._await_stragglers(self.profile.timeouts.dimse, scp)
                finally:
                    while self._own_moves:
                        self._own_moves.pop()()

    async def _move_requests(self, plan: Plan, scp: ArchiveServer | None) -> None:
        """Send the C-MOVE requests (`scp`: our listener, when the destination is us)."""
        c = self.counts
        requests = plan_requests(self.target, plan, plan.missing)
        c.requests += len(requests)
        client = DICOMClient.from_profile(self.profile)
        watch = AbortWatch()
        async with open_association(client, c, contexts=[build_context(dicom_retrieve.MOVE_MODEL)],
                                    evt_handlers=[(evt.EVT_PDU_RECV, watch)], service="C-MOVE (Study Root)",
                                    model=dicom_retrieve.MOVE_MODEL, hint=_USE_GET) as assoc:
            local_host = str(assoc.requestor.address or "")
            for number, request in enumerate(requests):
                if self.cancel_requested:
                    break
                result = await self._send(assoc, request, watch=watch, destination=self.destination_ae,
                                          idle=self._move_idle(scp), scp=scp)
                if result.aborted:
                    if scp is not None:  # count what has landed before saying how many arrived
                        await run_blocking(self.archive.flush, name="archive-flush")
                    self._interrupted(result)
                self._check_destination(result, number, local_host, scp)
            flushing = self._flush_while_releasing() if scp is not None else None  # what reached our listener
        if flushing is not None:
            await flushing
        if scp is None:
            c.received = c.finished[0] + c.finished[2]

    def _flush_while_releasing(self) -> asyncio.Task:
        """The archive's flush, started on a worker thread to run while the association is released
        (the caller awaits it once the association's block is left normally): the files of the last
        group are fsynced, renamed and indexed during the release's round trip (about 12 ms with
        Orthanc) instead of after it, and the flush that follows the transfer finds them done.
        When the release raises instead, the flush goes on unawaited (its outcome is collected)."""
        task = asyncio.ensure_future(run_blocking(self.archive.flush, name="archive-flush"))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    def _move_idle(self, scp: ArchiveServer | None) -> float:
        """How long a C-MOVE may be silent. To us: the DIMSE timeout, with every byte reaching our
        listener counted. To another AE, nothing of the transfer is seen here and pending responses
        are optional (PS3.4 C.4.2.3): the longer of the DIMSE and network timeouts."""
        timeouts = self.profile.timeouts
        return timeouts.dimse if scp is not None else max(timeouts.dimse, timeouts.network)

    def _on_received(self, record: Received) -> None:
        """A record from our Storage SCP (C-MOVE), on the loop."""
        before = self.counts.arrived
        new = self.counts.landed(record)
        if self.counts.arrived != before and self._arrival is not None:
            self._arrival.set()
        if new:
            self.publish()

    def _outstanding(self) -> int:
        """Instances still to come at our listener after the final C-MOVE response: what the PACS
        counted as sent and has not arrived, and, when it answered success or warning, the planned
        instances not here yet less those it said failed. An "answer first, send later" PACS
        (Orthanc with SynchronousCMove false) answers Success with nothing sent yet."""
        c = self.counts
        said = c.finished[0] + c.finished[2] - c.arrived
        planned = 0
        last = c.statuses[-1] if c.statuses else None
        if last in (0x0000, 0xB000, 0xB006, 0xB007) and c.plan is not None:
            if c.plan.missing is not None:
                planned = len(c.missing_now()) - c.finished[1]
            elif c.plan.expected is not None:  # a plan without a listing (core.retrieve.shortcut): its count
                planned = c.plan.expected - c.arrived - c.finished[1]
        return max(0, said, planned)

    def _quiet_for(self, scp: ArchiveServer | None) -> float:
        """Seconds since the last response or instance of this job, or the last byte our listener
        (`scp`, when one runs) received: what the idle watches compare with their bound."""
        quiet = time.monotonic() - self.counts.last_activity
        listener = scp.link_idle_for() if scp is not None else None
        return quiet if listener is None else min(quiet, listener)

    async def _await_stragglers(self, idle: float, scp: ArchiveServer | None = None) -> None:
        """A PACS may send its final C-MOVE response before its sub-operations (an asynchronous
        C-MOVE SCP): until what it counts as sent, and what the plan expects, has arrived, wait,
        as long as something keeps arriving within `idle` seconds (the listener stays up)."""
        c = self.counts
        if not self._outstanding():
            return
        log.info("the PACS answered the C-MOVE; %d instances are still to come: waiting for them",
                 self._outstanding())
        self._arrival = asyncio.Event()
        try:
            while self._outstanding() and not self.cancel_requested:
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), min(idle, 1.0))
                except TimeoutError:
                    if self._quiet_for(scp) < idle:
                        continue  # bytes are still coming in: a big object arriving slowly is not silence
                    c.reasons.append(f"nothing more arrived at our listener for {idle:g} s after the PACS answered "
                                     f"the C-MOVE ({c.arrived} instances arrived)")
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

    async def _send(self, assoc: Association, request: Request, *, handler: ReceiveHandler | None = None,
                    watch: AbortWatch | None = None, destination: str | None = None,
                    idle: float | None = None, scp: ArchiveServer | None = None) -> RetrieveResponses:
        """One request on a worker thread, its events applied here. `idle`: instead of pynetdicom's
        per-message DIMSE timeout, abort when no byte came for that many seconds, on the request's
        association or (`scp`, a C-MOVE to us) at our listener, and neither a response nor an
        instance (a PACS need not send pending responses while it sends)."""
        c = self.counts
        control = RetrieveControl(self.service.cancel_timeout)
        if self.cancel_requested:
            control.cancel(wait=False)
        self._control = control
        identifier = request.identifier(self.target.study_uid)
        holder: dict[str, RetrieveResponses] = {}
        msg_id = next_message_id()
        if destination is not None and scp is not None:  # to us: stored batched, as a C-GET (until the job ends)
            self._own_moves.append(scp.expect_move(self.profile.called_ae, str(assoc.requestor.ae_title or ""),
                                                   msg_id))

        def produce(emit: Callable[[tuple], None]) -> None:
            if handler is not None:
                handler.sink = emit
            try:
                holder["result"] = dicom_retrieve.send_retrieve(
                    assoc, identifier, move_destination=destination, control=control, handler=handler, watch=watch,
                    on_pending=lambda r: emit(("pending", r.remaining, r.completed, r.failed, r.warning)),
                    no_dimse_timeout=idle is not None, msg_id=msg_id)
            finally:
                if handler is not None:
                    if not assoc.is_established:
                        # aborted: its thread may still be storing the instance that came with the
                        # abort; what it stores is counted here, before the sink goes
                        wait_ended(assoc)
                    handler.sink = None

        c.request_sent(request)
        log.info("%s %s level, %s instances", "C-MOVE" if destination else "C-GET", request.level.name.lower(),
                 request.count if request.count is not None else "?")
        self.publish()
        stop_watching = self._watch_idle(control, idle, assoc, scp) if idle else None
        stream = stream_blocking(produce, name="retrieve")
        try:
            async for batch in stream:
                for event in batch:
                    c.apply(event)
                self.publish()
        except asyncio.CancelledError:
            # abort blocks until the association's threads end: never on the loop
            start_detached(lambda: control.abort("the retrieve was stopped"), name="retrieve-abort")
            raise
        finally:
            self._control = None
            if stop_watching is not None:
                stop_watching()
        result = holder["result"]
        c.request_ended(result)
        self.publish()
        return result

    def _watch_idle(self, control: RetrieveControl, idle: float, assoc: Association,
                    scp: ArchiveServer | None) -> Callable[[], None]:
        """Check every second whether the PACS has gone silent (no byte on the request's association
        or at our listener, no response, no instance); the function returned stops it."""
        loop = asyncio.get_running_loop()
        handle: dict[str, asyncio.TimerHandle] = {}
        link = activity_of(assoc)

        def check() -> None:
            if control.finished:
                return
            quiet = min(self._quiet_for(scp), link.idle_for())
            if quiet >= idle:
                why = f"nothing came from the PACS for {idle:g} s"
                self._in_background(run_blocking(lambda: control.abort(why, timed_out=True), name="retrieve-abort"))
                return
            handle["timer"] = loop.call_later(min(1.0, idle - quiet) + 0.01, check)

        handle["timer"] = loop.call_later(min(1.0, idle), check)
        return lambda: handle["timer"].cancel()

    def _interrupted(self, result: RetrieveResponses) -> None:
        """The association broke during a request: raise (or, after our own cancel, just stop)."""
        c = self.counts
        c.aborted = True
        if result.aborted_by == "us" and self.cancel_requested:
            c.reasons.append(f"the PACS did not stop after C-CANCEL: the association was aborted "
                             f"({result.abort_reason})")
            return
        c.transfer_ended = time.monotonic()
        summary = c.finish(cancel_requested=self.cancel_requested)
        what = c.service_name
        if result.aborted_by == "peer":
            lead = f"The PACS aborted the association during the {what}"
        elif result.aborted_by == "timeout":
            lead = f"The PACS stopped answering during the {what} ({result.abort_reason})"
        else:
            lead = f"The connection to the PACS closed during the {what}"
        raise RetrieveInterrupted(lead, c.received, summary.requested, summary=summary,
                                  detail=f"{result.aborted_by}: {result.abort_reason}",
                                  timed_out=result.aborted_by == "timeout")


__all__ = ["RetrieveRun"]
