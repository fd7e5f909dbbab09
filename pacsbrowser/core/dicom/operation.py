"""What every long DIMSE request (C-FIND, C-GET, C-MOVE) shares: message IDs and the stop handle.

Stopping (PS3.7 9.3.2.3, C-CANCEL): `OperationControl.cancel()` may be called from any thread. It
sends C-CANCEL at once, gives the PACS `cancel_timeout` seconds to end the operation (answers still
arriving are drained, never left half-read), then aborts the association and wakes the reader.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_CANCEL_TIMEOUT = 5.0  # seconds the PACS has to stop after C-CANCEL before we abort

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
        self.aborted = False
        self.abort_reason = ""
        self.timed_out = False  # aborted by an idle watchdog, not after a cancel

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

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
        """Abort the association now and wake the reader (`timed_out`: because the PACS went silent)."""
        with self._lock:
            assoc = self._assoc
            if assoc is None or self._finished.is_set() or self.aborted:
                return
            self.aborted, self.abort_reason, self.timed_out = True, why, timed_out
        log.warning("aborting the association: %s", why)
        try:
            assoc.abort()
        except Exception as exc:  # noqa: BLE001 - the reader must still be woken
            log.debug("abort: %s", exc)
        finally:
            # Wake a reader blocked on the next response: pynetdicom yields an empty status for
            # (None, None) and ends the generator.
            assoc.dimse.msg_queue.put((None, None))

    # -- used by the code that sends the request ---------------------------------------------------
    def _attach(self, assoc: Any, msg_id: int, *, context_id: int | None = None, query_model: Any = None) -> None:
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

    def _finish(self) -> None:
        with self._lock:
            self._finished.set()
            self._assoc = None
