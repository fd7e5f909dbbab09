"""Synchronous C-FIND over an open association, with C-CANCEL and a bounded stop.

Runs on a core worker thread (see core.executor). pynetdicom sends the request (send_c_find); the
responses are read here, off the association's DIMSE queue as pynetdicom's own response generator
(Association._wrap_find_responses) reads them, always to the end, also when a limit is reached or the
caller cancels. What differs: no status Dataset per pending response, and the identifier is handed to
`read` as its bytes (core.dicom.rawidentifiers makes a result record of them without a pydicom Dataset);
without `read`, pynetdicom's decode gives a Dataset as before. On the lean path
(core.dicom.bulkreceive) the pending responses are read off the socket by the association's DUL
thread and queued as `FindPending` (status and identifier bytes), never decoded by pynetdicom;
the final response, and anything the lean path leaves, arrive as pynetdicom's C_FIND primitives.

Stopping (PS3.7 9.3.2.3, C-CANCEL): `FindControl.cancel()` may be called from any other thread
while `run_find` waits for the next response. It sends C-CANCEL at once and shortens the DIMSE
timeout of the responses still to come to `cancel_timeout`; if the PACS has not sent its final
status within `cancel_timeout` it aborts the association and wakes the reader (pynetdicom only
wakes it by itself when the peer closes the connection). A client-side limit does the same from
the reading thread, which then checks the bound after every response, so a PACS that keeps
sending matches after C-CANCEL is cut off too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import decode
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    RepositoryQuery,
    StudyRootQueryRetrieveInformationModelFind,
)
from pynetdicom.status import code_to_category

from ..records import QueryModel
from . import bulkreceive
from .ae import settle_reactor
from .bulkreceive import FindPending
from .links import end_association
from .operation import (
    DEFAULT_CANCEL_TIMEOUT,
    MEDIUM,
    PENDING,
    FinalResponse,
    OperationControl,
    next_message_id,
    send_request,
)

log = logging.getLogger(__name__)

CANCEL = 0xFE00

FIND_MODELS = {
    QueryModel.PATIENT_ROOT: PatientRootQueryRetrieveInformationModelFind,
    QueryModel.STUDY_ROOT: StudyRootQueryRetrieveInformationModelFind,
}


@dataclass
class FindResponses:
    """How one C-FIND went on the wire."""

    status: int | None = None  # the final status; None when none came (abort, timeout)
    comment: str = ""  # Error Comment of the final response
    pending: int = 0  # pending responses received
    emitted: int = 0  # identifiers handed to the caller
    dropped: int = 0  # matches that came after a cancel or the limit, not handed over
    unreadable: int = 0  # pending responses whose identifier could not be decoded
    unsupported_keys: bool = False  # a 0xFF01 response: optional keys not supported
    cancel_sent: bool = False
    cancel_reason: str = ""  # "limit", "cancelled" or "error"
    limit_reached: bool = False
    aborted: bool = False
    abort_reason: str = ""
    elapsed: float = 0.0  # request sent to final status (or abort)
    first_response_after: float | None = None
    cancel_latency: float | None = None  # C-CANCEL sent to the end of the operation

    @property
    def category(self) -> str:
        return code_to_category(self.status) if self.status is not None else "None"


def find_contexts() -> list[PresentationContext]:
    """Presentation contexts for C-FIND in both information models."""
    return [build_context(uid) for uid in FIND_MODELS.values()]


# The C-FIND stop handle is the shared one (C-CANCEL, bounded drain, then abort).
FindControl = OperationControl


# What `run_find` gets for an identifier: its bytes and the transfer syntax of the presentation context.
Reader = Callable[[bytes, Any], Any]


def decode_identifier(raw: bytes, syntax: Any) -> Dataset | None:
    """The default `read`: a pydicom Dataset, as pynetdicom decodes a response identifier (None when it
    cannot: an unreadable response)."""
    try:
        return decode(BytesIO(raw), syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
    except Exception as exc:  # noqa: BLE001 - pynetdicom's own reaction: the identifier is unreadable
        log.debug("a response identifier could not be decoded: %s", exc.__class__.__name__)
        return None


def run_find(
    assoc: Association,
    identifier: Dataset,
    model: Any,
    on_result: Callable[[Any], None],
    *,
    control: FindControl | None = None,
    limit: int | None = None,
    msg_id: int | None = None,
    read: Reader | None = None,
) -> FindResponses:
    """Send one C-FIND and hand each matching identifier to `on_result` as it arrives.

    `read(raw, transfer_syntax)` turns an identifier's bytes into what `on_result` gets, None for one
    it cannot read (counted in `unreadable`, not handed over); by default a pydicom Dataset. Stops after
    `limit` identifiers (C-CANCEL, then drains to the final status). Never leaves the responses
    half-read. Raises only what `on_result` raised (after draining).
    """
    read = read or decode_identifier
    control = control or FindControl()
    summary = FindResponses()
    if control.requested:  # cancelled before it started: send nothing
        summary.cancel_reason = control.reason
        control.finish()
        return summary
    msg_id = msg_id or next_message_id()
    original_timeout = assoc.dimse_timeout
    started = time.monotonic()
    error: BaseException | None = None

    def pending(code: int, found: Any) -> None:
        nonlocal error
        summary.pending += 1
        if summary.first_response_after is None:
            summary.first_response_after = time.monotonic() - started
        if code == 0xFF01:
            summary.unsupported_keys = True
        if found is None:
            summary.unreadable += 1
        elif control.requested:
            summary.dropped += 1
        else:
            try:
                on_result(found)
            except BaseException as exc:  # noqa: BLE001 - drain first, raise after
                error = exc
                control.cancel(wait=False, reason="error")
            else:
                summary.emitted += 1
                if limit is not None and summary.emitted >= limit:
                    summary.limit_reached = True
                    control.cancel(wait=False, reason="limit")

    try:
        # pynetdicom sends it and returns its response generator, not started: dropped unread, the
        # responses are read below (it has paused the reactor: the queue is ours until the end).
        # its pending responses read on the lean path (core.dicom.bulkreceive), when it is on
        stop_taking = bulkreceive.take_find_responses(assoc, msg_id) if bulkreceive.lean_find() else (lambda: None)
        try:
            send_request("C-FIND", lambda: assoc.send_c_find(identifier, model, msg_id=msg_id, priority=MEDIUM))
            control.attach(assoc, msg_id, query_model=model)
            syntax = assoc._get_valid_context(model, "", "scu").transfer_syntax[0]  # the one send_c_find used
            final = read_find_responses(assoc, control, model, syntax, read, pending)
        finally:
            stop_taking()
        summary.aborted = final.empty
        summary.status, summary.comment = final.code, final.comment
    finally:
        control.finish()
        summary.elapsed = time.monotonic() - started
        if assoc.is_established:
            assoc.dimse_timeout = original_timeout
            settle_reactor(assoc)  # the next C-FIND on this association must not lose its answer
    summary.cancel_sent = control.cancel_sent
    summary.cancel_reason = control.reason
    summary.cancel_latency = control.cancel_latency
    if control.aborted:
        summary.aborted, summary.abort_reason = True, control.abort_reason
    elif summary.aborted:
        summary.abort_reason = ("the association was closed" if not assoc.is_established
                                else "no answer in time")
    if summary.aborted and summary.status is None and assoc.is_established:
        end_association(assoc)
    if error is not None:
        raise error
    return summary


def read_find_responses(assoc: Association, control: OperationControl, model: Any, syntax: Any, read: Reader,
                        on_pending: Callable[[int, Any], None]) -> FinalResponse:
    """Read one C-FIND's responses off the association's DIMSE queue to their end, as pynetdicom's
    Association._wrap_find_responses (3.0) does: each pending one to `on_pending(code, read(bytes) or
    None)`, the final one returned. A DIMSE timeout, an abort or a closed connection (no message)
    and an unexpected or invalid message (then the association is aborted) end it with `empty`.
    Aborts the association when the PACS keeps sending matches `control.cancel_timeout` seconds after
    C-CANCEL. The reactor is woken at the end, whatever ends it."""
    final = FinalResponse()
    get_msg = assoc.dimse.get_msg

    def pending(code: int, identifier: bytes | None) -> None:
        final.last_activity = time.monotonic()
        on_pending(code, read(identifier, syntax) if identifier is not None else None)
        if control._overdue():
            control.abort(f"the PACS kept sending matches {control.cancel_timeout:g} s after C-CANCEL")

    try:
        while True:
            _, rsp = get_msg(block=True)
            if isinstance(rsp, FindPending):  # taken on the lean path: pending, for this request, its bytes
                pending(rsp.status, rsp.identifier)
                continue
            if rsp is None:  # the DIMSE timeout, an abort (ours wakes us this way) or a closed connection
                assoc._handle_no_response()
                final.empty = True
                return final
            if not isinstance(rsp, C_FIND) or not rsp.is_valid_response:
                log.error("the PACS sent %s instead of a C-FIND response: aborting",
                          "an invalid C-FIND response" if isinstance(rsp, C_FIND)
                          else f"an unexpected {rsp.__class__.__name__.replace('_', '-')} message")
                assoc.abort()
                final.empty = True
                return final
            code = int(rsp.Status or 0)  # is_valid_response: never None here
            final.last_activity = time.monotonic()
            if code in PENDING:
                raw = rsp.Identifier  # a BytesIO (pynetdicom's DIMSE decoder, the lean reader)
                pending(code, raw.getvalue() if raw is not None else None)
                continue
            final.code, final.status = code, _status_dataset(rsp)
            if model == RepositoryQuery and code == 0xB001:
                continue  # PS3.4 C.6.4.4: the end of the pending responses, not of the operation
            return final
    finally:
        assoc._reactor_checkpoint.set()  # pynetdicom's generator unpauses the reactor when it ends


def _status_dataset(rsp: C_FIND) -> Dataset:
    """The status of a final response as pynetdicom yields it: Status and the optional elements sent."""
    status = Dataset()
    status.Status = rsp.Status
    for keyword in rsp.STATUS_OPTIONAL_KEYWORDS:
        value = getattr(rsp, keyword)
        if value is not None:
            setattr(status, keyword, value)
    return status


def holdings(assoc: Association, study_uid: str, series_uid: str = "", *, timeout: float = 30.0
             ) -> tuple[list[str], int | None] | None:
    """One C-FIND (Study Root) at study level (or series level with `series_uid`) for what the PACS
    holds of it: (the SOP Classes in Study (0008,0062), study level only, and the number of related
    instances), or None when it did not answer with exactly one match."""
    identifier = Dataset()
    identifier.StudyInstanceUID = study_uid
    if series_uid:
        identifier.QueryRetrieveLevel = "SERIES"
        identifier.SeriesInstanceUID = series_uid
        identifier.NumberOfSeriesRelatedInstances = ""
    else:
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.SOPClassesInStudy = ""
        identifier.NumberOfStudyRelatedInstances = ""
    found: list[Dataset] = []
    summary = run_find(assoc, identifier, StudyRootQueryRetrieveInformationModelFind, found.append,
                       control=FindControl(timeout), limit=2)
    if summary.aborted or len(found) != 1 or summary.category not in ("Success", "Cancel"):
        return None
    answer = found[0]
    try:
        value = answer.get("SOPClassesInStudy")
        values = [value] if isinstance(value, str) else list(value or [])  # one value comes unwrapped
        classes = [str(uid).strip() for uid in values if str(uid).strip()]
        raw = answer.get("NumberOfSeriesRelatedInstances" if series_uid else "NumberOfStudyRelatedInstances")
        count = int(raw) if raw not in (None, "") else None
    except (ValueError, TypeError):
        return None
    return classes, count


__all__ = [
    "CANCEL",
    "DEFAULT_CANCEL_TIMEOUT",
    "FIND_MODELS",
    "PENDING",
    "FindControl",
    "FindResponses",
    "decode_identifier",
    "find_contexts",
    "next_message_id",
    "read_find_responses",
    "run_find",
    "holdings",
]
