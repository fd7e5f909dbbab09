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

Sending, with backpressure: pynetdicom's send_msg() puts every P-DATA of a message on the DUL's
unbounded queue at once (a whole 1 GB file streamed from disk ends up in memory), then starts the
response's DIMSE timeout while the DUL is still writing it (a big file on a slow link times out).
Here the queue counts the P-DATA bytes it holds: `send_pdu()` waits while more than
`SEND_QUEUE_LIMIT` bytes are queued and not yet written, and `ResponsiveDIMSE.send_msg()` returns
only when the last PDU of a message with a data set has been written, so the response timeout
starts then. Both waits end at once when the association is aborted, closed or its DUL has ended
(a frozen link ends it within the socket timeout, core.dicom.links).

C-FIND and the window: associations that only query are responsive too when their responses are
read on the lean path (core.dicom.bulkreceive, the default): a response then costs its DUL thread
little, and the longest event-loop stall while 5,000 studies stream into the window's tree went
from 1.28 s to 0.29 s (benchmarks/RESULTS-window.md). With `PACSBROWSER_LEAN_FIND=0` they keep
pynetdicom's polling (ae.open_association decides): with pynetdicom's own decoding, event-driven
waits gained a C-FIND only 3% while its threads held the GIL more of the time, and the stall grew
from ~0.65 s to ~1.2 s; pynetdicom's 1 ms naps left the GUI thread room.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import threading
import time
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

IDLE = 0.001  # seconds: pynetdicom's own polling period, kept for what is not event-driven
SEND_QUEUE_LIMIT = 4 << 20  # bytes of P-DATA queued for the DUL before a sender waits
_FLOW_CHECK = 0.1  # seconds between checks that the association is still there, while waiting


def _pdata_size(item: Any) -> int:
    if isinstance(item, P_DATA):
        return sum(len(value) for _, value in item.presentation_data_value_list)
    return 0


class SendQueue(queue.Queue):
    """The DUL's to-provider queue, counting the P-DATA bytes put in and not yet written out
    (`ResponsiveDUL._send` takes them off when the PDU has gone to the socket)."""

    def __init__(self) -> None:
        super().__init__()
        self.pending_bytes = 0  # guarded by self.mutex
        self.flow = threading.Condition(self.mutex)

    def _put(self, item: Any) -> None:
        super()._put(item)
        self.pending_bytes += _pdata_size(item)

    def written(self, nbytes: int) -> None:
        with self.flow:
            self.pending_bytes = max(0, self.pending_bytes - nbytes)
            self.flow.notify_all()


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
        self.to_provider_queue = SendQueue()

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
        if isinstance(primitive, P_DATA):
            self._wait_for_room()
            if not self._flowing():
                # Aborted, closed or ended: it could not go out. pynetdicom would go on reading the
                # rest of the file into the queue; drop it (its get_msg() finds no response).
                return
        super().send_pdu(primitive)
        self.wake()

    def _flowing(self) -> bool:
        """Whether what is queued can still go out (else nobody should wait for it)."""
        assoc = self.assoc
        return (self.is_alive() and not self._kill_thread and bool(assoc.is_established)
                and not getattr(assoc, "_sent_abort", False))

    def _wait_for_room(self) -> None:
        sends = self.to_provider_queue
        if not isinstance(sends, SendQueue) or threading.current_thread() is self:
            return
        with sends.flow:
            while sends.pending_bytes >= SEND_QUEUE_LIMIT and self._flowing():
                sends.flow.wait(_FLOW_CHECK)

    def wait_written(self) -> None:
        """Return when every P-DATA queued so far has been written to the socket, or can no longer be."""
        sends = self.to_provider_queue
        if not isinstance(sends, SendQueue) or threading.current_thread() is self:
            return
        with sends.flow:
            while sends.pending_bytes > 0 and self._flowing():
                sends.flow.wait(_FLOW_CHECK)

    def _send(self, pdu: Any) -> None:
        try:
            super()._send(pdu)
            if isinstance(pdu, P_DATA_TF):
                # A message went out: the association is in use, not idle. pynetdicom counts the
                # network timeout from the last PDU received only, so an SCP serving a C-MOVE
                # for longer than that timeout (the requester rightly silent) aborted the
                # association at its next turn, racing the requester's A-RELEASE-RQ.
                self._idle_timer.restart()
        finally:
            if isinstance(pdu, P_DATA_TF):
                sends = self.to_provider_queue
                if isinstance(sends, SendQueue):
                    sends.written(sum(len(item.presentation_data_value or b"")
                                      for item in pdu.presentation_data_value_items))

    def kill_dul(self) -> None:
        super().kill_dul()
        self.wake()

    def _is_transport_event(self) -> bool:
        self._idle_wait()
        return super()._is_transport_event()

    def _pause(self, seconds: float) -> None:
        """Wait `seconds` without reading, unless something is queued to send or the thread is
        told to end (the wake-up pipe says so at once)."""
        receiver = self._wake_r
        if self.to_provider_queue.queue or self._kill_thread or receiver is None:
            return
        try:
            readable, _, _ = select.select([receiver], [], [], seconds)
        except (OSError, ValueError):
            return
        if readable:
            self._drain_wake(receiver)

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
            self._drain_wake(receiver)

    @staticmethod
    def _drain_wake(receiver: socket.socket) -> None:
        """Empty the wake-up pipe (non-blocking) once it has woken a wait."""
        try:
            while receiver.recv(4096):
                pass
        except OSError:
            pass


class ResponsiveDIMSE(DIMSEServiceProvider):
    """send_msg() returns when a message with a data set has been written out (see the module doc)."""

    def send_msg(self, primitive: Any, context_id: int) -> None:
        super().send_msg(primitive, context_id)
        carries_data = any(getattr(primitive, name, None) is not None
                           for name in ("DataSet", "Identifier", "_dataset_path"))
        dul = self.dul
        if carries_data and isinstance(dul, ResponsiveDUL):
            dul.wait_written()


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


def keep_responses_for_callers(assoc: Association) -> None:
    """Stop the association's own reactor thread from taking DIMSE messages off the queue.

    pynetdicom's reactor polls the queue to serve requests a peer sends; our send_c_*() callers
    pause it first, but the pause handshake is racy (`_is_paused` is read before the reactor has
    really stopped), so under load the reactor can take the answer to our request and drop it,
    and the request then waits out the whole DIMSE timeout (seen: a C-ECHO hanging 60 s). On the
    associations we request, a peer sends us no requests outside the operations we run (C-GET's
    sub-operations arrive inside send_c_get), so the reactor is kept from the queue altogether.
    """
    dimse = assoc.dimse
    get_msg = dimse.get_msg

    def get_msg_unless_reactor(block: bool = False):
        if threading.current_thread() is assoc:
            return None, None
        return get_msg(block)

    dimse.get_msg = get_msg_unless_reactor  # type: ignore[method-assign]  # replaced per association on purpose (see above)


def settle_reactor(assoc: Association, limit: float = 0.05) -> None:
    """Let the association's reactor thread wake up after a DIMSE exchange, before the next one.

    Call after every send_c_*() that may be followed at once by another on the same association.

    pynetdicom pauses the reactor during send_c_store() (so that it does not take the response
    off the queue) and wakes it at the end. The next send_c_store() waits for `_is_paused` again,
    but right after the wake-up that flag still says True from the last pause: a request sent at
    once can then have its response taken by the reactor, which drops it ("Received unexpected
    C-STORE service message") and the send waits out the DIMSE timeout. Seen against dcmqrscp on a
    busy machine; pynetdicom 3.0. So wait (bounded) until the reactor has really woken."""
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if checkpoint is None or not hasattr(assoc, "_is_paused") or is_responsive(assoc):
        return  # a responsive reactor checks the checkpoint again before taking a message
    deadline = time.monotonic() + limit
    while assoc._is_paused and checkpoint.is_set() and assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.00005)


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
    if type(assoc.dimse) is DIMSEServiceProvider:
        assoc.dimse.__class__ = ResponsiveDIMSE
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


__all__ = ["IDLE", "SEND_QUEUE_LIMIT", "keep_responses_for_callers", "settle_reactor", "ResponsiveAssociation", "ResponsiveDIMSE", "ResponsiveDUL", "SendQueue",
           "is_responsive", "make_responsive", "unbind_log_handlers"]
