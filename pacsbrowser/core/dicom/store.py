"""C-STORE, synchronously: sending each planned file in a syntax the PACS accepted (decompressing
it when that is the only way).

Synchronous: call only from worker threads (see core.executor). Files are found, planned from their
File Meta Information and checked in core.dicomfiles; their presentation contexts are planned in
core.dicom.contexts (`plan_store_contexts`). `send_item`, on the worker that owns the association,
checks the file (a truncated or damaged one is reported, never sent), then sends it
- as stored, streamed from disk without decoding, when its own syntax was accepted;
- re-encoded by pynetdicom when another uncompressed little-endian syntax was accepted;
- decompressed (pydicom + pylibjpeg plugins) when only an uncompressed syntax was accepted;
- not at all, reported, when nothing fits.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID
from pynetdicom import _config as pynetdicom_config
from pynetdicom.association import Association
from pynetdicom.status import code_to_category

from ..dicomfiles import StoreItem, Unsendable, check_file, short_error
from ..errors import AssociationAborted, Timeout, status_words
from ..logs import phi
from ..records import StoreOutcome, StoreResult
from .ae import interrupt, link_timed_out, settle_reactor
from .links import end_association
from .operation import MEDIUM, next_message_id
from .syntaxes import UNCOMPRESSED, class_name, syntax_name

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Streaming files as stored, per thread
#
# pynetdicom streams a file given to send_c_store() by path (no decoding, a PDU's worth of bytes
# at a time) only when the module-wide switch _config.STORE_SEND_CHUNKED_DATASET is on; otherwise
# it reads and re-encodes the whole data set. A module-wide switch would change how every other
# part of the application (a C-GET SCP handing paths to pynetdicom, say) sends. So the switch
# becomes a per-thread one: it reads as the previous global value everywhere, except on a thread
# inside `_chunked()`. send_c_store() reads it once, on the calling thread.


class _PerThreadSwitch:
    def __init__(self, default: bool) -> None:
        self.default = bool(default)
        self._local = threading.local()

    def __bool__(self) -> bool:
        return getattr(self._local, "value", self.default)

    def set(self, value: bool | None) -> None:
        if value is None:
            self._local.__dict__.pop("value", None)
        else:
            self._local.value = value

    def __repr__(self) -> str:
        return f"<per-thread switch, default {self.default}>"


_switch_lock = threading.Lock()


def _switch() -> _PerThreadSwitch | None:
    with _switch_lock:
        current = pynetdicom_config.STORE_SEND_CHUNKED_DATASET
        if isinstance(current, _PerThreadSwitch):
            return current
        if current is True:  # somebody turned streaming on for everyone: nothing to do
            return None
        switch = _PerThreadSwitch(bool(current))
        pynetdicom_config.STORE_SEND_CHUNKED_DATASET = switch  # type: ignore[assignment]  # a per-thread switch where pynetdicom has a bool
        return switch


class _chunked:
    """`with _chunked(): assoc.send_c_store(path)` streams the file as stored."""

    def __enter__(self) -> None:
        self.switch = _switch()
        if self.switch is not None:
            self.switch.set(True)

    def __exit__(self, *exc: object) -> None:
        if self.switch is not None:
            self.switch.set(None)


# --------------------------------------------------------------------------------------------
# Sending


def _store(assoc: Association, dataset: Any) -> Any:
    """assoc.send_c_store(), then let its reactor wake (see ae.settle_reactor): (status, seconds taken)."""
    started = time.monotonic()
    try:
        return assoc.send_c_store(dataset, msg_id=next_message_id(), priority=MEDIUM), time.monotonic() - started
    finally:
        settle_reactor(assoc)


def _accepted(assoc: Association, sop_class: str) -> list[Any]:
    return [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == sop_class and cx.as_scu]


def send_item(assoc: Association, item: StoreItem) -> StoreResult:
    """Send one planned item on `assoc` and say what happened.

    Returns a result for everything the PACS answered and for everything that cannot be sent
    (damaged, no fitting context, cannot be decompressed). Raises AssociationAborted or Timeout
    when the association broke before the PACS confirmed the file: it may then be sent again."""
    try:
        check_file(item)
    except Unsendable as exc:
        return item.result(StoreOutcome.SKIPPED, str(exc))
    accepted = _accepted(assoc, item.sop_class_uid)
    if not accepted:
        return item.result(StoreOutcome.FAILED, _refusal(assoc, item))
    syntax = UID(item.transfer_syntax)
    exact = [cx for cx in accepted if cx.transfer_syntax[0] == syntax]
    uncompressed = [cx for cx in accepted if cx.transfer_syntax[0] in UNCOMPRESSED]
    try:
        if exact and item.path is not None and item.offset >= 0:
            with _chunked():
                status = _store(assoc, item.path)
            return _answer(assoc, item, status, syntax, converted=False)
        if exact:
            status = _store(assoc, _load(item))
            return _answer(assoc, item, status, syntax, converted=False)
        if not uncompressed:
            offered = ", ".join(syntax_name(cx.transfer_syntax[0]) for cx in accepted)
            return item.result(StoreOutcome.FAILED,
                               f"the PACS accepts {class_name(item.sop_class_uid)} only as {offered}; "
                               f"this file is {syntax_name(syntax)} and cannot be converted to that")
        target = uncompressed[0].transfer_syntax[0]
        if syntax.is_transfer_syntax and not syntax.is_little_endian:
            return item.result(StoreOutcome.FAILED,
                               f"the PACS does not accept {syntax_name(syntax)} and this file cannot be "
                               f"converted to {syntax_name(target)}")
        ds = _load(item)
        converted = True
        if syntax.is_transfer_syntax and syntax.is_compressed:
            if item.dataset is not None:
                ds = copy.deepcopy(ds)
            try:
                ds.decompress(generate_instance_uid=False)
            except Exception as exc:  # noqa: BLE001 - a missing plugin, a corrupt codestream
                return item.result(StoreOutcome.FAILED,
                                   f"the PACS accepts only uncompressed images and this "
                                   f"{syntax_name(syntax)} file could not be decompressed ({short_error(exc)})")
        status = _store(assoc, ds)
        return _answer(assoc, item, status, target, converted=converted)
    except Unsendable as exc:
        return item.result(StoreOutcome.SKIPPED, str(exc))
    except (AssociationAborted, Timeout):
        raise
    except (AttributeError, ValueError) as exc:  # pynetdicom refused it before sending anything
        return item.result(StoreOutcome.FAILED, f"could not be sent: {short_error(exc)}")
    except RuntimeError as exc:  # pynetdicom: the association is no longer established
        if not assoc.is_established:
            raise AssociationAborted("The association with the PACS ended before the file was sent",
                                     detail=short_error(exc)) from exc
        _abort_quietly(assoc)
        return item.result(StoreOutcome.FAILED, f"could not be sent: {short_error(exc)}")
    except Exception as exc:  # noqa: BLE001 - a file that vanished, an encoding failure...
        # The message may have been half sent: the association's state is unknown, so end it.
        log.warning("sending %s failed: %s", phi(item.name), short_error(exc))
        _abort_quietly(assoc)
        return item.result(StoreOutcome.FAILED, f"could not be sent: {short_error(exc)}")


class SendInterrupted(Exception):
    """The association broke while `item` was on its way: the PACS did not confirm it."""

    def __init__(self, error: AssociationAborted | Timeout, item: StoreItem, confirmed: int) -> None:
        super().__init__(str(error))
        self.error, self.item, self.confirmed = error, item, confirmed


def send_items(assoc: Association, take: Callable[[], StoreItem | None], emit: Callable[[StoreResult], None],
               stop: threading.Event) -> int:
    """Send items from `take()` until it returns None, `stop` is set or the association ends;
    each result goes to `emit` as soon as the PACS answered. Returns how many were answered.
    Raises SendInterrupted (with the unconfirmed item) when the association broke."""
    answered = 0
    while not stop.is_set() and assoc.is_established:
        item = take()
        if item is None:
            break
        try:
            result = send_item(assoc, item)
        except (AssociationAborted, Timeout) as error:
            raise SendInterrupted(error, item, answered) from error
        answered += 1
        emit(result)
    return answered


def _refusal(assoc: Association, item: StoreItem) -> str:
    """Why no context for the item's class was accepted, in words."""
    rejected = [cx for cx in assoc.rejected_contexts if cx.abstract_syntax == item.sop_class_uid]
    if rejected and all(cx.result == 0x04 for cx in rejected):  # transfer syntaxes not supported
        offered = ", ".join(sorted({syntax_name(cx.transfer_syntax[0]) for cx in rejected}))
        return (f"the PACS accepts {class_name(item.sop_class_uid)} objects in none of the transfer syntaxes "
                f"this file can be sent in ({offered})")
    return f"the PACS does not accept {class_name(item.sop_class_uid)} objects"


def _abort_quietly(assoc: Association) -> None:
    try:
        if assoc.is_established:
            end_association(assoc)
    except Exception:  # the association is going anyway: nothing left to report
        pass


def _load(item: StoreItem) -> Dataset:
    if item.dataset is not None:
        ds = item.dataset
        meta = getattr(ds, "file_meta", None)
        if meta is None or not meta.get("TransferSyntaxUID"):
            # pynetdicom needs the syntax in the file meta: give it one on a shallow copy
            ds = Dataset(ds)
            ds.file_meta = FileMetaDataset(meta or FileMetaDataset())
            ds.file_meta.TransferSyntaxUID = UID(item.transfer_syntax)
        return ds
    assert item.path is not None
    try:
        ds = dcmread(item.path, force=item.offset < 0)
    except Exception as exc:  # whatever pydicom raises, the file is damaged: said in words
        raise Unsendable(f"a damaged DICOM file ({short_error(exc)})") from None
    if item.offset < 0:  # no file header: the syntax it was read in
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(item.transfer_syntax)
    return ds


def _answer(assoc: Association, item: StoreItem, sent: tuple[Any, float], syntax: str, *, converted: bool) -> StoreResult:
    status_ds, elapsed = sent
    if status_ds is None or "Status" not in status_ds:
        timeout = assoc.dimse_timeout
        if timeout and elapsed >= timeout * 0.95:  # pynetdicom aborts when the DIMSE timeout expires
            raise Timeout("waiting for the PACS to confirm the file", timeout)
        if link_timed_out(assoc):  # the socket moved no byte for its timeout (core.dicom.links)
            raise Timeout("sending the file: the link to the PACS stopped moving data", timeout or 0)
        raise AssociationAborted("The PACS closed the association before confirming the file")
    code = int(status_ds.Status)
    comment = str(status_ds.get("ErrorComment", "") or "")
    category = code_to_category(code)
    _, words = status_words(code, "C-STORE")
    reason = words + (f" ({comment})" if comment else "")
    if category == "Success":
        outcome, reason = StoreOutcome.SUCCESS, ""
    elif category == "Warning":
        outcome = StoreOutcome.WARNING
    else:
        outcome = StoreOutcome.FAILED
    return item.result(outcome, reason, code, transfer_syntax=str(syntax), converted=converted)


__all__ = [
    "SendInterrupted",
    "interrupt",
    "send_item",
    "send_items",
]
