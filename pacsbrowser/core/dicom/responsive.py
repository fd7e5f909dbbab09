"""Event-driven waits for pynetdicom's two per-association threads (pynetdicom 3.0).

pynetdicom polls. Its DUL thread (the socket side) sleeps 1 ms whenever a turn found nothing to
do, so a PDU that arrives, or one we queue to send, waits up to 1 ms to be noticed; its
association thread sleeps 1 ms at the top of every turn, so an incoming request waits up to 1 ms
to be served, and every send_c_*() first waits up to 1 ms for that thread to reach its pause
point. On loopback a C-ECHO then takes ~3.5 ms instead of ~0.2 ms, and a C-STORE exchange
carries up to 3 ms of sleeping (benchmarks/RESULTS.md has the before and after).

`make_responsive(assoc)`, called before the association's threads start, swaps in subclasses
whose waits end when there is work, with the same 1 ms cadence when there is none (so idle CPU
use does not change):

- `ResponsiveDUL`: between turns it waits in select() on the socket and on a wake-up socket pair
  that `send_pdu()` and `kill_dul()` write to, instead of sleeping; pynetdicom's loop, state
  machine and socket reads are unchanged.
- `ResponsiveAssociation`: its reactor waits on the DIMSE message queue (not taking the message)
  instead of sleeping, and counts as paused while it waits, so send_c_*() takes over at once.
  It goes through the pause checkpoint again before taking anything off the queue, which also
  closes the race `ae.settle_reactor` works around (a stale "paused" flag right after a wake-up):
  settle_reactor returns at once for these associations.

Only the waits differ; what is read, sent and decided is pynetdicom's own code. Any failure in a
wait falls back to pynetdicom's plain sleep.

C-FIND and the window: associations that only query (ae.open_association decides) keep
pynetdicom's polling. A C-FIND streaming 5,000 answers gains only 3% from event-driven waits
(decoding is its cost), but its two threads then hold the GIL more of the time, and the window's
results tree calls into Python for every row on each relayout: the longest event-loop stall while
5,000 studies stream in went from ~0.65 s to ~1.2 s. pynetdicom's 1 ms naps leave the GUI thread
room (benchmarks/, the GUI row).
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider

IDLE = 0.001  # seconds: pynetdicom's own polling period, kept for what is not event-driven


class ResponsiveDUL(DULServiceProvider):
    """The DUL with an idle wait that a PDU to send or data to read ends at once."""

    _wake_r: socket.socket | None
    _wake_w: socket.socket | None

    def _setup_wake(self) -> None:
        self._wake_lock = threading.Lock()
        try:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
        except OSError:  # no socket pair: plain polling
            self._wake_r = self._wake_w = None
        # the idle wait is in _is_transport_event(); the loop's own sleep becomes a GIL yield
        self._run_loop_delay = 0

    def run(self) -> None:
        try:
            super().run()
        finally:
            with self._wake_lock:  # no wake() writes to a descriptor being closed
                for end in (self._wake_r, self._wake_w):
                    if end is not None:
                        end.close()
                self._wake_r = self._wake_w = None

    def wake(self) -> None:
        with self._wake_lock:
            if self._wake_w is not None:
                try:
                    self._wake_w.send(b"\0")
                except OSError:  # full: a wake-up is pending anyway
                    pass

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self.wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self.wake()

    def _is_transport_event(self) -> bool:
        self._idle_wait()
        return super()._is_transport_event()

    def _idle_wait(self) -> None:
        """Wait until the socket has data, something is queued to send, or IDLE has passed."""
        if self.to_provider_queue.queue or self._kill_thread:
            return
        sock = self.socket
        raw = getattr(sock, "socket", None)
        receiver = self._wake_r
        if raw is None or receiver is None or not getattr(sock, "_is_connected", False):
            time.sleep(IDLE)  # not connected yet: pynetdicom's polling
            return
        if isinstance(raw, ssl.SSLSocket) and raw.pending():
            return  # decrypted bytes waiting: select() cannot see them
        try:
            readable, _, _ = select.select([raw, receiver], [], [], IDLE)
        except (OSError, ValueError):  # closed under us: pynetdicom's own check will say so
            return
        if receiver in readable:
            try:
                while receiver.recv(4096):
                    pass
            except OSError:
                pass


class ResponsiveAssociation(Association):
    """An Association whose reactor waits on the DIMSE queue instead of sleeping 1 ms a turn."""

    _pacsbrowser_responsive = True

    def _run_reactor(self) -> None:
        # pynetdicom 3.0's Association._run_reactor with event-driven waits (see the module doc);
        # the checks after the message are its own, in its order.
        messages = self.dimse.msg_queue
        checkpoint = self._reactor_checkpoint
        stale = False  # the queue holds something this thread did not take (see below)
        try:
            while not self._kill:
                # Idle: wait for a message without taking it. Meanwhile we count as paused: a
                # send_c_*() that clears the checkpoint may go ahead at once.
                self._is_paused = True
                ending = self._sent_abort or not self.is_established
                with messages.not_empty:
                    if stale or ending or not messages.queue:
                        messages.not_empty.wait(IDLE)
                    if messages.queue:
                        # put() wakes one waiter: if it was us, pass the wake-up on to a
                        # send_c_*() waiting for its response in get_msg()
                        messages.not_empty.notify()
                while not checkpoint.is_set():  # a send_c_*() or release() owns the queue
                    checkpoint.wait()
                self._is_paused = False
                if not checkpoint.is_set():  # cleared in between: that send owns the queue now
                    continue

                # Once aborting, what is queued is left to the send_c_*() being interrupted (the
                # empty items ae.interrupt() queues to wake it): pynetdicom's reactor takes one
                # item a millisecond, this one would take them all at once. An item not taken
                # (that, or what get_msg() keeps from this thread) must not make the loop spin:
                # `stale` makes the next turn wait.
                stale = False
                if not (self._sent_abort or not self.is_established):
                    waiting = bool(messages.queue)
                    context_id, msg = self.dimse.get_msg(block=False)
                    if msg and context_id is not None:
                        self._serve_request(msg, context_id)
                    elif waiting:
                        stale = True

                if self.is_established and self.acse.is_release_requested():
                    self.acse.send_release(is_response=True)
                    self.is_released = True
                    self.is_established = False
                    evt.trigger(self, evt.EVT_RELEASED, {})
                    self.kill()
                    return

                if self.acse.is_aborted():
                    self.dul.receive_pdu(wait=False)
                    self.is_aborted = True
                    self.is_established = False
                    evt.trigger(self, evt.EVT_ABORTED, {})
                    self.kill()
                    return

                if not self.dul.is_alive():
                    self.kill()
                    return

                if self.dul.idle_timer_expired():
                    if self.network_timeout_response == "A-RELEASE":
                        self._is_paused = True
                        checkpoint.wait()
                        self.release()
                        self._is_paused = False
                    else:
                        self.abort()
                    self.kill()
                    return
        finally:
            self._is_paused = True


def make_responsive(assoc: Association) -> Any:
    """Give `assoc` (a pynetdicom Association whose threads have not started) event-driven waits,
    and unbind pynetdicom's standard logging handlers unless its log is on (see `unbind_log_handlers`).

    Does nothing to an association of another class than pynetdicom's own (a test double, a
    subclass with its own reactor) or one already started."""
    if type(assoc) is not Association or assoc.is_alive():
        return assoc
    dul = assoc.dul
    if type(dul) is not DULServiceProvider or dul.is_alive():
        return assoc
    dul.__class__ = ResponsiveDUL
    cast(ResponsiveDUL, dul)._setup_wake()
    assoc.__class__ = ResponsiveAssociation
    unbind_log_handlers(assoc)
    return assoc


def unbind_log_handlers(assoc: Association) -> None:
    """pynetdicom binds four logging handlers to every association; they format every PDU and
    DIMSE message they see (a dictionary and a dispatch per PDU, the command set decoded again)
    for a log that is off unless --debug turns pynetdicom's logger on (core.logs). Off, they go:
    on a 5,000-result C-FIND that is ~10,000 PDUs and 5,000 messages not formatted for nothing."""
    if logging.getLogger("pynetdicom").isEnabledFor(logging.INFO):
        return
    try:
        from pynetdicom import _handlers as standard
    except ImportError:  # pragma: no cover - another pynetdicom layout
        return
    for event, name in ((evt.EVT_DIMSE_RECV, "standard_dimse_recv_handler"),
                        (evt.EVT_DIMSE_SENT, "standard_dimse_sent_handler"),
                        (evt.EVT_PDU_RECV, "standard_pdu_recv_handler"),
                        (evt.EVT_PDU_SENT, "standard_pdu_sent_handler")):
        handler = getattr(standard, name, None)
        if handler is not None:
            try:
                assoc.unbind(event, handler)
            except Exception:  # noqa: BLE001 - not bound: nothing to save
                pass


def is_responsive(assoc: Association) -> bool:
    return getattr(assoc, "_pacsbrowser_responsive", False)


__all__ = ["IDLE", "ResponsiveAssociation", "ResponsiveDUL", "is_responsive", "make_responsive", "unbind_log_handlers"]
