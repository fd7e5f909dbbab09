"""Synchronous C-FIND over an open association, with C-CANCEL and a bounded stop.

Runs on a core worker thread (see core.executor). `run_find` reads pynetdicom's response generator
to its end, always: it never breaks out of it, even when a limit is reached or the caller cancels,
because a half-read generator leaves the association paused and its remaining responses queued.

Stopping (PS3.7 9.3.2.3, C-CANCEL): `FindControl.cancel()` may be called from any other thread
while `run_find` waits for the next response. It sends C-CANCEL at once and shortens the DIMSE
timeout of the responses still to come to `cancel_timeout`; if the PACS has not sent its final
status within `cancel_timeout` it aborts the association and wakes the reader (pynetdicom only
wakes it by itself when the peer closes the connection). A client-side limit does the same from
the reading thread, which then checks the bound after every response, so a PACS that keeps
sending matches after C-CANCEL is cut off too.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.status import code_to_category

from ..errors import AssociationAborted
from .ae import settle_reactor

log = logging.getLogger(__name__)

PENDING = (0xFF00, 0xFF01)
CANCEL = 0xFE00
DEFAULT_CANCEL_TIMEOUT = 5.0  # seconds the PACS has to stop after C-CANCEL before we abort

_message_ids = itertools.count(1)


def next_message_id() -> int:
    """Message IDs 1..65535, unique among the operations running in this process."""
    return next(_message_ids) % 65535 + 1


@dataclass
class FindSummary:
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


class FindControl:
    """The stop handle of one C-FIND: thread-safe, idempotent, usable before the find starts."""

    def __init__(self, cancel_timeout: float = DEFAULT_CANCEL_TIMEOUT) -> None:
        self.cancel_timeout = cancel_timeout
        self._lock = threading.Lock()
        self._requested = threading.Event()
        self._finished = threading.Event()
        self._assoc: Any = None
        self._msg_id: int | None = None
        self._model: Any = None
        self.reason = ""
        self.cancel_sent_at: float | None = None
        self.aborted = False
        self.abort_reason = ""

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def cancel(self, *, wait: bool = True, reason: str = "cancelled") -> bool:
        """Stop the find: C-CANCEL now; with `wait`, block until it ends, aborting the association if
        the PACS has not stopped within `cancel_timeout`. True when the find has ended."""
        self._request(reason)
        if not wait:
            return self.finished
        if self._finished.wait(self.cancel_timeout):
            return True
        self._abort(f"the PACS did not stop within {self.cancel_timeout:g} s of C-CANCEL")
        return self._finished.wait(self.cancel_timeout)

    # -- used by run_find -------------------------------------------------------------------

    def _attach(self, assoc: Any, msg_id: int, model: Any) -> None:
        with self._lock:
            self._assoc, self._msg_id, self._model = assoc, msg_id, model
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
            assoc.send_c_cancel(self._msg_id, query_model=self._model)
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

    def _abort(self, why: str) -> None:
        with self._lock:
            assoc = self._assoc
            if assoc is None or self._finished.is_set() or self.aborted:
                return
            self.aborted, self.abort_reason = True, why
        log.warning("aborting the association: %s", why)
        try:
            assoc.abort()
        except Exception as exc:  # noqa: BLE001 - the reader must still be woken
            log.debug("abort: %s", exc)
        finally:
            # Wake a reader blocked on the next response: pynetdicom yields an empty status for
            # (None, None) and ends the generator.
            assoc.dimse.msg_queue.put((None, None))

    def _finish(self) -> None:
        with self._lock:
            self._finished.set()
            self._assoc = None


def run_find(
    assoc: Any,
    identifier: Dataset,
    model: Any,
    on_result: Callable[[Dataset], None],
    *,
    control: FindControl | None = None,
    limit: int | None = None,
    msg_id: int | None = None,
) -> FindSummary:
    """Send one C-FIND and hand each matching identifier to `on_result` as it arrives.

    Stops after `limit` identifiers (C-CANCEL, then drains to the final status). Never leaves the
    response generator half-read. Raises only what `on_result` raised (after draining).
    """
    control = control or FindControl()
    summary = FindSummary()
    if control.requested:  # cancelled before it started: send nothing
        summary.cancel_reason = control.reason
        control._finish()
        return summary
    msg_id = msg_id or next_message_id()
    original_timeout = assoc.dimse_timeout
    started = time.monotonic()
    error: BaseException | None = None
    try:
        try:
            responses = assoc.send_c_find(identifier, model, msg_id=msg_id)
        except RuntimeError as exc:  # pynetdicom: "must be established"
            raise AssociationAborted("The association with the PACS closed before the C-FIND could be sent",
                                     detail=str(exc)) from exc
        control._attach(assoc, msg_id, model)
        for status, found in responses:
            code = status.get("Status") if status else None
            if code is None:  # pynetdicom's sign of a timeout, an abort or an invalid response
                summary.aborted = True
                continue
            code = int(code)
            if code in PENDING:
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
                        control._request("error")
                    else:
                        summary.emitted += 1
                        if limit is not None and summary.emitted >= limit:
                            summary.limit_reached = True
                            control._request("limit")
                if control._overdue():
                    control._abort(f"the PACS kept sending matches {control.cancel_timeout:g} s after C-CANCEL")
                continue
            summary.status = code
            summary.comment = str(status.get("ErrorComment", "") or "")
    finally:
        control._finish()
        summary.elapsed = time.monotonic() - started
        if assoc.is_established:
            assoc.dimse_timeout = original_timeout
            settle_reactor(assoc)  # the next C-FIND on this association must not lose its answer
    summary.cancel_sent = control.cancel_sent_at is not None
    summary.cancel_reason = control.reason
    if control.cancel_sent_at is not None:
        summary.cancel_latency = started + summary.elapsed - control.cancel_sent_at
    if control.aborted:
        summary.aborted, summary.abort_reason = True, control.abort_reason
    elif summary.aborted:
        summary.abort_reason = ("the association was closed" if not assoc.is_established
                                else "no answer in time")
    if summary.aborted and summary.status is None and assoc.is_established:
        assoc.abort()
    if error is not None:
        raise error
    return summary


__all__ = ["CANCEL", "DEFAULT_CANCEL_TIMEOUT", "PENDING", "FindControl", "FindSummary", "next_message_id", "run_find"]
