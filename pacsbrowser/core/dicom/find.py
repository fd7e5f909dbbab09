"""Synchronous C-FIND over an open association, with C-CANCEL and a bounded stop.

Runs on a core worker thread (see core.executor). `run_find` reads pynetdicom's response generator
to its end with core.dicom.operation's `read_responses`, also when a limit is reached or the caller
cancels.

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
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
from pynetdicom.status import code_to_category

from ..records import QueryModel
from .ae import settle_reactor
from .links import end_association
from .operation import (
    DEFAULT_CANCEL_TIMEOUT,
    MEDIUM,
    PENDING,
    OperationControl,
    next_message_id,
    read_responses,
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


def run_find(
    assoc: Association,
    identifier: Dataset,
    model: Any,
    on_result: Callable[[Dataset], None],
    *,
    control: FindControl | None = None,
    limit: int | None = None,
    msg_id: int | None = None,
) -> FindResponses:
    """Send one C-FIND and hand each matching identifier to `on_result` as it arrives.

    Stops after `limit` identifiers (C-CANCEL, then drains to the final status). Never leaves the
    response generator half-read. Raises only what `on_result` raised (after draining).
    """
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

    def pending(code: int, status: Dataset, found: Dataset | None) -> None:
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
        responses = send_request("C-FIND", lambda: assoc.send_c_find(identifier, model, msg_id=msg_id,
                                                                          priority=MEDIUM))
        control.attach(assoc, msg_id, query_model=model)
        final = read_responses(responses, control, pending, what="matches")
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
    "find_contexts",
    "next_message_id",
    "run_find",
    "holdings",
]
