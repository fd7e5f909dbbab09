"""What every long DIMSE request (C-FIND, C-GET, C-MOVE) shares: message IDs, sending, the stop
handle and the loop that reads the responses.

Stopping (PS3.7 9.3.2.3, C-CANCEL): `OperationControl.cancel()` may be called from any thread. It
sends C-CANCEL at once, gives the PACS `cancel_timeout` seconds to end the operation (answers still
arriving are drained, never left half-read), then aborts the association and wakes the reader.

Reading (`read_responses`): pynetdicom's response generator is always read to its end, never left
half-read (that leaves the association paused and its remaining responses queued), also when a
limit is reached or the caller cancels; a PACS that keeps sending after C-CANCEL is cut off.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom.association import Association

from ..errors import AssociationAborted
from .links import end_association

log = logging.getLogger(__name__)

DEFAULT_CANCEL_TIMEOUT = 5.0  # seconds the PACS has to stop after C-CANCEL before we abort
PENDING = (0xFF00, 0xFF01)  # Pending, and Pending with optional keys not supported (C-FIND)
MEDIUM = 0  # PS3.7 C.4: Priority 0000H MEDIUM (pynetdicom's default is 0002H LOW); DCMTK asks MEDIUM too

T = TypeVar("T")

_message_ids = itertools.count(1)


def next_message_id() -> int:
    """Message IDs 1..65535, unique among the operations running in this process."""
    return next(_message_ids) % 65535 + 1


class OperationControl:
    """The stop handle of one request: thread-safe, idempotent, usable before the request starts."""

    def __init__(self, cancel_timeout: float = DEFAULT_CANCEL_TIMEOUT) -> None:
        self.cancel_timeout = cancel_timeout
        self._lock = threading.Lock()
        self._requested = threading.Event()
        self._finished = threading.Event()
        self._assoc: Any = None
        self._msg_id: int | None = None
        self._cancel_args: dict[str, Any] = {}
        self.reason = ""
        self.cancel_sent_at: float | None = None
        self.finished_at: float | None = None
        self.aborted = False
        self.abort_reason = ""
        self.timed_out = False  # aborted by an idle watchdog, not after a cancel

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def cancel_sent(self) -> bool:
        return self.cancel_sent_at is not None

    @property
    def cancel_latency(self) -> float | None:
        """Seconds from C-CANCEL to the end of the request (None: no C-CANCEL, or not ended)."""
        if self.cancel_sent_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.cancel_sent_at

    def cancel(self, *, wait: bool = True, reason: str = "cancelled") -> bool:
        """C-CANCEL now; with `wait`, block until the request ends, aborting the association when the
        PACS has not ended it within `cancel_timeout`. True when it has ended."""
        self._request(reason)
        if not wait:
            return self.finished
        if self._finished.wait(self.cancel_timeout):
            return True
        self.abort(f"the PACS did not stop within {self.cancel_timeout:g} s of C-CANCEL")
        return self._finished.wait(self.cancel_timeout)

    def abort(self, why: str, *, timed_out: bool = False) -> None:
        """Abort the association now and wake the reader (`timed_out`: because the PACS went silent).
        Blocks up to a few seconds until the association's threads have ended: never on the loop."""
        with self._lock:
            assoc = self._assoc
            if assoc is None or self._finished.is_set() or self.aborted:
                return
            self.aborted, self.abort_reason, self.timed_out = True, why, timed_out
        log.warning("aborting the association: %s", why)
        try:
            assoc.abort(block=False)  # marks it aborted: pynetdicom's own abort then returns at once
        except Exception as exc:  # noqa: BLE001 - the reader must still be woken
            log.debug("abort: %s", exc)
        finally:
            # Wake a reader blocked on the next response: pynetdicom yields an empty status for
            # (None, None) and ends the generator.
            assoc.dimse.msg_queue.put((None, None))
        end_association(assoc)  # the threads end even when the link is frozen (core.dicom.links)

    # -- used by the code that sends the request ---------------------------------------------------
    def attach(self, assoc: Association, msg_id: int, *, context_id: int | None = None, query_model: Any = None) -> None:
        """The request `msg_id` has been sent on `assoc`: a cancel (also one asked for already) now
        sends C-CANCEL for it, naming its presentation context or (C-FIND) its query model."""
        with self._lock:
            self._assoc, self._msg_id = assoc, msg_id
            self._cancel_args = {"context_id": context_id} if context_id is not None else {"query_model": query_model}
            if self._requested.is_set():
                self._send_cancel_locked()

    def _request(self, reason: str) -> None:
        with self._lock:
            if self._requested.is_set():
                return
            self.reason = reason
            self._requested.set()
            if self._assoc is not None and not self._finished.is_set():
                self._send_cancel_locked()

    def _send_cancel_locked(self) -> None:
        assoc = self._assoc
        if self.cancel_sent_at is not None or assoc is None:
            return
        try:
            assoc.send_c_cancel(self._msg_id, **self._cancel_args)
        except Exception as exc:  # noqa: BLE001 - the association is already gone: nothing to cancel
            log.debug("C-CANCEL not sent: %s", exc)
            return
        self.cancel_sent_at = time.monotonic()
        current = assoc.dimse_timeout
        if current is None or current > self.cancel_timeout:
            assoc.dimse_timeout = self.cancel_timeout

    def _overdue(self) -> bool:
        sent = self.cancel_sent_at
        return sent is not None and time.monotonic() - sent > self.cancel_timeout

    def finish(self) -> None:
        """The request has ended (or was never sent): wakes `cancel(wait=True)`; nothing more is sent."""
        with self._lock:
            if self.finished_at is None:
                self.finished_at = time.monotonic()
            self._finished.set()
            self._assoc = None


def send_request(what: str, send: Callable[[], T]) -> T:
    """Call pynetdicom's send_c_*: a closed association (its RuntimeError) becomes AssociationAborted."""
    try:
        return send()
    except RuntimeError as exc:  # pynetdicom: "must be established"
        raise AssociationAborted(f"The association with the PACS closed before the {what} could be sent",
                                 detail=str(exc)) from exc


@dataclass
class FinalResponse:
    """How the responses of one request ended, as `read_responses` found them."""

    code: int | None = None  # the final status; None when none came
    status: Dataset | None = None  # the final response's status dataset
    identifier: Dataset | None = None  # the final response's identifier, if any
    empty: bool = False  # pynetdicom gave an empty status: a timeout, an abort or a closed connection
    last_activity: float | None = None  # time.monotonic() of the last response with a status

    @property
    def comment(self) -> str:
        """The final response's Error Comment ('' when none)."""
        return str(self.status.get("ErrorComment", "") or "") if self.status is not None else ""


def read_responses(responses: Iterable[tuple[Dataset | None, Dataset | None]], control: OperationControl,
                   on_pending: Callable[[int, Dataset, Dataset | None], None], *,
                   what: str = "answers") -> FinalResponse:
    """Read a request's responses to their end: `on_pending(code, status, identifier)` for each
    pending one, the final one returned. Aborts the association when the PACS keeps sending `what`
    `control.cancel_timeout` seconds after C-CANCEL. Raises what `on_pending` raises (the caller
    that must drain first catches in `on_pending` and asks `control` to cancel)."""
    final = FinalResponse()
    previous: Dataset | None = None
    for status, identifier in responses:
        if status is not None and status is previous and identifier is None:
            # pynetdicom 3.0 yields a pending response whose identifier it cannot decode twice
            # (once in its except clause, once after it) with the same status object: count it once.
            continue
        previous = status
        code = status.get("Status") if status else None
        if status is None or code is None:  # pynetdicom's sign of a timeout, an abort or an invalid response
            final.empty = True
            continue
        code = int(code)
        final.last_activity = time.monotonic()
        if code in PENDING:
            on_pending(code, status, identifier)
            if control._overdue():
                control.abort(f"the PACS kept sending {what} {control.cancel_timeout:g} s after C-CANCEL")
            continue
        final.code, final.status, final.identifier = code, status, identifier
    return final


__all__ = [
    "DEFAULT_CANCEL_TIMEOUT",
    "MEDIUM",
    "PENDING",
    "FinalResponse",
    "OperationControl",
    "next_message_id",
    "read_responses",
    "send_request",
]
