"""C-GET and C-MOVE, synchronously: identifiers, the C-STORE handler of a C-GET, and one request
read to its end with C-CANCEL and a bounded stop.

Runs on core worker threads (see core.executor); core.retrieve is the async face. The presentation
contexts of a C-GET are planned in core.dicom.contexts (re-exported here for core.retrieve).

Reading a request: pynetdicom's response generator handles the C-STORE sub-operations of a C-GET
itself, on the reading thread, calling the EVT_C_STORE handler bound at association; so
the C-STORE handler (core.dicom.receive.ReceiveHandler, the Storage SCP's own) runs here too
and writes each data set, as received, through `Archive.store`. The generator is always read to its end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.status import code_to_category

from ..records import QueryLevel
from . import bulkreceive
from .ae import link_timed_out, settle_reactor  # importing ae also quiets pynetdicom's log (it prints identifiers)
from .contexts import GET_MODEL, MOVE_MODEL, ContextGroup, default_groups, other_storage_groups, plan_get_contexts
from .links import end_association
from .operation import MEDIUM, OperationControl, next_message_id, read_responses, send_request
from .receive import ReceiveHandler
from .syntaxes import UNCOMPRESSED

log = logging.getLogger(__name__)


UID_LIST_CHUNK = 200  # SOP Instance UIDs per C-GET/C-MOVE identifier (about 13 KB)
# seconds a C-MOVE's pending responses gather on its association before they are read (lean path,
# bulkreceive.sink_pending): progress and the idle watch lag by that much at most
MOVE_GATHER = 0.02

CANCEL = 0xFE00



# --------------------------------------------------------------------------------------------
# Presentation contexts: what the PACS accepted (the plan is .contexts')


def accepted_storage_syntaxes(assoc: Any) -> dict[str, list[str]]:
    """Per storage SOP class, the syntaxes of the contexts accepted with us as SCP, in context order."""
    out: dict[str, list[str]] = {}
    for cx in sorted(assoc.accepted_contexts, key=lambda c: c.context_id):
        if cx.as_scp and str(cx.abstract_syntax) not in (str(GET_MODEL), str(MOVE_MODEL)):
            out.setdefault(str(cx.abstract_syntax), []).append(str(cx.transfer_syntax[0]))
    return out


def accepts_model(assoc: Any, model: str) -> bool:
    return any(str(cx.abstract_syntax) == str(model) and cx.as_scu for cx in assoc.accepted_contexts)


# --------------------------------------------------------------------------------------------
# Identifiers


def retrieve_identifier(level: QueryLevel, study_uid: str, series_uids: Sequence[str] = (),
                        sop_uids: Sequence[str] = ()) -> Dataset:
    """A Study Root C-GET/C-MOVE identifier. At the level retrieved, a list of UIDs is allowed
    (PS3.4 C.4.2.2.1): several series at SERIES level, several instances of one series at IMAGE."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level.value
    ds.StudyInstanceUID = study_uid
    if level is QueryLevel.SERIES:
        if not series_uids:
            raise ValueError("a series retrieve needs Series Instance UIDs")
        ds.SeriesInstanceUID = list(series_uids) if len(series_uids) > 1 else series_uids[0]
    elif level is QueryLevel.INSTANCE:
        if len(series_uids) != 1 or not sop_uids:
            raise ValueError("an instance retrieve needs one Series Instance UID and SOP Instance UIDs")
        ds.SeriesInstanceUID = series_uids[0]
        ds.SOPInstanceUID = list(sop_uids) if len(sop_uids) > 1 else sop_uids[0]
    elif level is not QueryLevel.STUDY:
        raise ValueError(f"cannot retrieve at the {level.name.lower()} level")
    return ds


def chunks(items: Sequence[str], size: int = UID_LIST_CHUNK) -> list[list[str]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


# --------------------------------------------------------------------------------------------
# The C-STORE sub-operations of a C-GET are received by core.dicom.receive.ReceiveHandler, the
# Storage SCP's own handler: the sender is the PACS called.


class AbortWatch:
    """EVT_PDU_RECV: remembers an A-ABORT the peer sent (to tell it from a timeout or our own)."""

    def __init__(self) -> None:
        self.peer_aborted = False
        self.source: int | None = None
        self.reason: int | None = None

    def __call__(self, event: Any) -> None:
        pdu = getattr(event, "pdu", None)
        if isinstance(pdu, A_ABORT_RQ):
            self.peer_aborted, self.source, self.reason = True, pdu.source, pdu.reason_diagnostic


# --------------------------------------------------------------------------------------------
# One request


# The C-GET/C-MOVE stop handle is the shared one: cancel() sends C-CANCEL at once and gives the PACS
# `cancel_timeout` seconds to end the operation (sub-operations still arriving are kept), then aborts.
RetrieveControl = OperationControl


@dataclass
class RetrieveResponses:
    """How one C-GET/C-MOVE request went on the wire."""

    status: int | None = None  # the final status; None when none came
    comment: str = ""
    remaining: int | None = None  # the last counts the PACS sent
    completed: int = 0
    failed: int = 0
    warning: int = 0
    pending: int = 0  # pending responses received
    failed_uids: tuple[str, ...] = ()
    sent: bool = False
    cancel_sent: bool = False
    cancel_latency: float | None = None
    aborted: bool = False
    aborted_by: str = ""  # "peer", "us" (after C-CANCEL), "timeout", "closed"
    abort_reason: str = ""
    elapsed: float = 0.0

    @property
    def category(self) -> str:
        return code_to_category(self.status) if self.status is not None else "None"


def _count(status: Dataset, keyword: str) -> int | None:
    value = status.get(keyword)
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _failed_uids(identifier: Dataset | None) -> tuple[str, ...]:
    if identifier is None:
        return ()
    try:
        value = identifier.get("FailedSOPInstanceUIDList")
    except Exception:  # noqa: BLE001 - a damaged identifier from the PACS
        return ()
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split("\\") if v)
    return tuple(str(v) for v in value if v)


def send_retrieve(
    assoc: Any,
    identifier: Dataset,
    *,
    move_destination: str | None = None,
    control: RetrieveControl | None = None,
    on_pending: Callable[[RetrieveResponses], None] | None = None,
    handler: ReceiveHandler | None = None,
    watch: AbortWatch | None = None,
    msg_id: int | None = None,
    no_dimse_timeout: bool = False,
) -> RetrieveResponses:
    """Send one C-GET (or C-MOVE to `move_destination`) and read its responses to the end.

    `on_pending(result)` after each pending response (result holds the PACS's latest counts).
    `no_dimse_timeout`: wait for the responses without pynetdicom's DIMSE timeout (a C-MOVE whose
    PACS sends no pending responses while our listener receives; the caller watches for silence
    and calls `control.abort(..., timed_out=True)`). Never leaves the response generator
    half-read; raises only AssociationAborted when the association was gone before the request
    could be sent.
    """
    control = control or RetrieveControl()
    result = RetrieveResponses()
    if control.requested:  # cancelled before it started: send nothing
        control.finish()
        return result
    model = MOVE_MODEL if move_destination else GET_MODEL
    msg_id = msg_id or next_message_id()
    original_timeout = assoc.dimse_timeout
    started = time.monotonic()
    last_activity = started
    what = "C-MOVE" if move_destination else "C-GET"

    def counts(status: Dataset, *, final: bool) -> None:
        set_counts(_count(status, "NumberOfRemainingSuboperations"), _count(status, "NumberOfCompletedSuboperations"),
                   _count(status, "NumberOfFailedSuboperations"), _count(status, "NumberOfWarningSuboperations"),
                   final=final)

    def set_counts(remaining: int | None, completed: int | None, failed: int | None, warning: int | None, *,
                   final: bool) -> None:
        """The PACS's latest sub-operation counts (a count it leaves out keeps its last value)."""
        result.remaining = 0 if final and remaining is None else remaining
        result.completed, result.failed, result.warning = (
            c if c is not None else old for c, old in
            zip((completed, failed, warning), (result.completed, result.failed, result.warning)))

    def pending(code: int, status: Dataset, answer: Dataset | None) -> None:
        result.pending += 1
        counts(status, final=False)
        if on_pending is not None:
            on_pending(result)

    def lean_pending(response: bulkreceive.PendingResponse) -> bool:
        """A pending response read on the lean path (on the DUL thread, while this thread waits for
        the final one); after a C-CANCEL they go the usual way, where the drain is watched."""
        nonlocal last_activity
        if control.requested:
            return False
        result.pending += 1
        last_activity = time.monotonic()
        set_counts(response.remaining, response.completed, response.failed, response.warning, final=False)
        if on_pending is not None:
            on_pending(result)
        return True

    stop_sink: Callable[[], None] = lambda: None  # noqa: E731 - replaced once the request goes
    try:
        settle_reactor(assoc)
        if no_dimse_timeout:
            assoc.dimse_timeout = None
        context = send_request(what, lambda: assoc._get_valid_context(model, "", "scu"))
        stop_sink = bulkreceive.sink_pending(assoc, msg_id, lean_pending,
                                             gather=MOVE_GATHER if move_destination else 0.0)
        if move_destination:
            responses = send_request(what, lambda: assoc.send_c_move(identifier, move_destination, model,
                                                                     msg_id=msg_id, priority=MEDIUM))
        else:
            responses = send_request(what, lambda: assoc.send_c_get(identifier, model, msg_id=msg_id,
                                                                    priority=MEDIUM))
        result.sent = True
        control.attach(assoc, msg_id, context_id=context.context_id)
        final = read_responses(responses, control, pending)
        result.aborted = final.empty
        last_activity = max(final.last_activity or 0.0, last_activity)
        if final.status is not None:
            result.status, result.comment = final.code, final.comment
            counts(final.status, final=True)
            result.failed_uids = _failed_uids(final.identifier)
    finally:
        stop_sink()
        control.finish()
        result.elapsed = time.monotonic() - started
        if assoc.is_established:
            assoc.dimse_timeout = original_timeout
    result.cancel_sent = control.cancel_sent
    result.cancel_latency = control.cancel_latency
    if result.aborted and result.status is None:
        if control.aborted:
            result.aborted_by = "timeout" if control.timed_out else "us"
            result.abort_reason = control.abort_reason
        elif watch is not None and watch.peer_aborted:
            result.aborted_by, result.abort_reason = "peer", "the PACS aborted the association"
        elif link_timed_out(assoc):
            result.aborted_by = "timeout"
            result.abort_reason = "the link to the PACS stopped moving data mid-message"
        else:
            if handler is not None:
                last_activity = max(last_activity, handler.last_activity)
            timeout = original_timeout or 0
            if timeout and time.monotonic() - last_activity >= timeout * 0.9:
                result.aborted_by = "timeout"
                result.abort_reason = f"the PACS sent nothing for {timeout:g} s"
            else:
                result.aborted_by, result.abort_reason = "closed", "the connection was closed"
        if assoc.is_established:
            end_association(assoc)
    elif result.aborted:  # a final status came, then the association went: the request is done
        result.aborted = False
    return result


__all__ = [
    "GET_MODEL",
    "MOVE_MODEL",
    "UNCOMPRESSED",
    "AbortWatch",
    "ContextGroup",
    "ReceiveHandler",
    "RetrieveResponses",
    "RetrieveControl",
    "accepted_storage_syntaxes",
    "accepts_model",
    "chunks",
    "default_groups",
    "other_storage_groups",
    "plan_get_contexts",
    "retrieve_identifier",
    "send_retrieve",
]
