"""C-GET and C-MOVE, synchronously: presentation-context planning, identifiers, the C-STORE handler
of a C-GET, and one request read to its end with C-CANCEL and a bounded stop.

Runs on core worker threads (see core.executor); core.retrieve is the async face.

Presentation contexts for C-GET (PS3.4 C.4.3, PS3.7 D.3.3.4): the instances come back as C-STORE
sub-operations on our own association, so for every storage SOP class the request may return we
propose a context and the SCP role (SCP/SCU Role Selection). An SCP accepts one transfer syntax per
context, so the uncompressed syntaxes share one context and every compressed one gets a context of
its own; a PACS that cannot convert (DCMTK's dcmqrscp) can then send a compressed file as it is.
At most 128 contexts fit an association (PS3.8 9.3.2.2: IDs 1..255, odd); classes that do not fit
go into further groups, each on its own association.

dcmqrscp sends every file of a SOP class on the *first* accepted context of that class, whatever
the file's own syntax: RLE files fail on an uncompressed context and uncompressed files on an RLE
one. `plan_get_contexts(first=...)` puts a chosen syntax's context first, so that what failed on
one association can be fetched on another (core.retrieve does those rounds).

Reading a request: pynetdicom's response generator handles the C-STORE sub-operations of a C-GET
itself, on the reading thread, calling the EVT_C_STORE handler bound at association; so
the C-STORE handler (`GetStoreHandler`, the Storage SCP's own, core.dicom.receive) runs here too
and writes each data set, as received, through `Archive.store`. The generator is always read to its end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID, JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless, RLELossless
from pynetdicom import build_role
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.status import code_to_category

from ..errors import AssociationAborted
from ..records import QueryLevel
from .ae import settle_reactor  # importing ae also quiets pynetdicom's log (it prints identifiers)
from .operation import OperationControl, next_message_id
from .receive import ReceiveHandler
from .syntaxes import COMPRESSED, UNCOMPRESSED

log = logging.getLogger(__name__)


GET_MODEL = StudyRootQueryRetrieveInformationModelGet
MOVE_MODEL = StudyRootQueryRetrieveInformationModelMove
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2
UID_LIST_CHUNK = 200  # SOP Instance UIDs per C-GET/C-MOVE identifier (about 13 KB)

PENDING = (0xFF00, 0xFF01)
CANCEL = 0xFE00

# Proposed, each compressed syntax in its own context, for every image class the PACS said the study holds.
COMPRESSED_SYNTAXES = COMPRESSED
# When the PACS does not say which classes a study holds, a common set, with the compressed
# syntaxes PACS actually store, so that the whole set fits one association.
DEFAULT_COMPRESSED = (RLELossless, JPEGLosslessSV1, JPEGBaseline8Bit, JPEGLSLossless, JPEG2000Lossless, JPEG2000)
DEFAULT_IMAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
    "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.20",  # Nuclear Medicine Image Storage
    "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
)
DEFAULT_OTHER_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR Storage
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR Storage
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR Storage
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection Document Storage
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State Storage
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF Storage
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose Storage
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
    "1.2.840.10008.5.1.4.1.1.481.5",  # RT Plan Storage
)
DEFAULT_CLASSES = DEFAULT_IMAGE_CLASSES + DEFAULT_OTHER_CLASSES


def is_image_class(sop_class: str) -> bool:
    """Whether instances of `sop_class` carry pixel data that may be compressed."""
    if sop_class in DEFAULT_IMAGE_CLASSES:
        return True
    if sop_class in DEFAULT_OTHER_CLASSES:
        return sop_class == "1.2.840.10008.5.1.4.1.1.481.2"  # RT Dose has pixel data
    name = UID(sop_class).name
    return "Image" in name and "Key Object" not in name and "Presentation State" not in name


# --------------------------------------------------------------------------------------------
# Presentation contexts


@dataclass(frozen=True)
class ContextGroup:
    """The contexts of one C-GET association: the retrieve model, then the storage contexts of
    `sop_classes` (each with the SCP role proposed). `first` maps a class to the syntax whose context
    was put first for it (absent: uncompressed first)."""

    sop_classes: tuple[str, ...]
    contexts: tuple[PresentationContext, ...]
    roles: tuple[Any, ...]
    first: tuple[tuple[str, str], ...] = ()

    def __contains__(self, sop_class: object) -> bool:
        return sop_class in self.sop_classes


def storage_contexts(sop_class: str, compressed: Sequence[str], first: str | None = None) -> list[PresentationContext]:
    """The uncompressed syntaxes in one context, each compressed syntax in its own; the context of
    `first` (a syntax) ahead of the others when given."""
    contexts: list[tuple[str, list[str]]] = [("uncompressed", [str(s) for s in UNCOMPRESSED])]
    contexts += [(str(s), [str(s)]) for s in compressed if str(s) not in {str(u) for u in UNCOMPRESSED}]
    if first is not None and str(first) not in {str(u) for u in UNCOMPRESSED}:
        contexts.sort(key=lambda item: item[0] != str(first))
    return [build_context(sop_class, syntaxes) for _, syntaxes in contexts]


def plan_get_contexts(
    sop_classes: Iterable[str],
    *,
    compressed: Sequence[str] | None = None,
    first: dict[str, str] | None = None,
    limit: int = MAX_CONTEXTS,
) -> list[ContextGroup]:
    """Groups of at most `limit` contexts (one of them the C-GET model) for `sop_classes`, in order.

    Image classes get `compressed` (default COMPRESSED_SYNTAXES) in contexts of their own; other
    classes the uncompressed context only. A class that cannot fit even alone (more syntaxes than
    the limit allows) gets as many of its contexts as fit.
    """
    compressed = COMPRESSED_SYNTAXES if compressed is None else tuple(compressed)
    first = first or {}
    budget = limit - 1  # the C-GET model's context
    groups: list[ContextGroup] = []
    classes: list[str] = []
    contexts: list[PresentationContext] = []

    def close() -> None:
        if classes:
            groups.append(ContextGroup(
                tuple(classes), (build_context(GET_MODEL), *contexts),
                tuple(build_role(c, scp_role=True) for c in classes),
                tuple((c, first[c]) for c in classes if c in first)))

    for sop_class in dict.fromkeys(str(c) for c in sop_classes if c):
        own = storage_contexts(sop_class, compressed if is_image_class(sop_class) else (), first.get(sop_class))
        own = own[:budget]
        if contexts and len(contexts) + len(own) > budget:
            close()
            classes, contexts = [], []
        classes.append(sop_class)
        contexts.extend(own)
    close()
    return groups


def default_groups(first: dict[str, str] | None = None) -> list[ContextGroup]:
    """Contexts for a study whose SOP classes the PACS did not say (one association)."""
    return plan_get_contexts(DEFAULT_CLASSES, compressed=DEFAULT_COMPRESSED, first=first)


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
# The C-STORE sub-operations of a C-GET


# The C-GET's C-STORE handler is the Storage SCP's (core.dicom.receive): the sender is the PACS called.
GetStoreHandler = ReceiveHandler


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
    handler: GetStoreHandler | None = None,
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
        control._finish()
        return result
    model = MOVE_MODEL if move_destination else GET_MODEL
    msg_id = msg_id or next_message_id()
    original_timeout = assoc.dimse_timeout
    started = time.monotonic()
    last_activity = started
    what = "C-MOVE" if move_destination else "C-GET"
    try:
        settle_reactor(assoc)
        if no_dimse_timeout:
            assoc.dimse_timeout = None
        try:
            context = assoc._get_valid_context(model, "", "scu")
            if move_destination:
                responses = assoc.send_c_move(identifier, move_destination, model, msg_id=msg_id)
            else:
                responses = assoc.send_c_get(identifier, model, msg_id=msg_id)
        except RuntimeError as exc:  # pynetdicom: "must be established"
            raise AssociationAborted(f"The association with the PACS closed before the {what} could be sent",
                                     detail=str(exc)) from exc
        result.sent = True
        control._attach(assoc, msg_id, context_id=context.context_id)
        for status, answer in responses:
            code = status.get("Status") if status else None
            if code is None:  # pynetdicom's sign of an abort, a closed connection or a timeout
                result.aborted = True
                continue
            code = int(code)
            last_activity = time.monotonic()
            remaining = _count(status, "NumberOfRemainingSuboperations")
            counts = (_count(status, "NumberOfCompletedSuboperations"), _count(status, "NumberOfFailedSuboperations"),
                      _count(status, "NumberOfWarningSuboperations"))
            if code in PENDING:
                result.pending += 1
                result.remaining = remaining
                result.completed, result.failed, result.warning = (
                    c if c is not None else old for c, old in
                    zip(counts, (result.completed, result.failed, result.warning)))
                if on_pending is not None:
                    on_pending(result)
                if control._overdue():
                    control.abort(f"the PACS kept sending {control.cancel_timeout:g} s after C-CANCEL")
                continue
            result.status = code
            result.comment = str(status.get("ErrorComment", "") or "")
            result.remaining = remaining if remaining is not None else 0
            result.completed, result.failed, result.warning = (
                c if c is not None else old for c, old in zip(counts, (result.completed, result.failed, result.warning)))
            result.failed_uids = _failed_uids(answer)
    finally:
        control._finish()
        result.elapsed = time.monotonic() - started
        if assoc.is_established:
            assoc.dimse_timeout = original_timeout
    result.cancel_sent = control.cancel_sent_at is not None
    if control.cancel_sent_at is not None:
        result.cancel_latency = started + result.elapsed - control.cancel_sent_at
    if result.aborted and result.status is None:
        if control.aborted:
            result.aborted_by = "timeout" if control.timed_out else "us"
            result.abort_reason = control.abort_reason
        elif watch is not None and watch.peer_aborted:
            result.aborted_by, result.abort_reason = "peer", "the PACS aborted the association"
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
            assoc.abort()
    elif result.aborted:  # a final status came, then the association went: the request is done
        result.aborted = False
    return result


__all__ = [
    "COMPRESSED_SYNTAXES",
    "DEFAULT_CLASSES",
    "GET_MODEL",
    "MAX_CONTEXTS",
    "MOVE_MODEL",
    "AbortWatch",
    "ContextGroup",
    "GetStoreHandler",
    "RetrieveResponses",
    "RetrieveControl",
    "accepted_storage_syntaxes",
    "accepts_model",
    "chunks",
    "default_groups",
    "is_image_class",
    "plan_get_contexts",
    "retrieve_identifier",
    "send_retrieve",
    "storage_contexts",
]
