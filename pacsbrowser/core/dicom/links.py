"""The TCP link under every association, ours or a peer's: socket options, the socket timeout kept
after connect, and an abort that always ends the association's threads.

pynetdicom puts its sockets back to blocking without a timeout after connect (and our SCP's after
the TLS handshake), and its DUL thread reads until a whole PDU is in. A link that dies mid-PDU
without a FIN or RST (Wi-Fi, VPN, a firewall dropping its state) then blocks that thread for good:
the DIMSE timeout fires, but pynetdicom's abort waits for the DUL thread, which never returns, so
the worker, the job and (on our SCP) an association slot are held forever. So:

- every socket keeps a finite timeout (`link_timeout`): a read or write that moves no byte for
  that long fails, the DUL sees the transport close (Evt17) and the association ends;
- TCP keepalive (SO_KEEPALIVE, and TCP_KEEPIDLE/INTVL/CNT where the platform has them) finds a
  dead peer on an idle association too;
- `end_association` aborts without waiting on the DUL thread, gives it `grace` seconds to send the
  A-ABORT and stop, then shuts the socket down under it and waits (bounded) for both threads;
  `wait_ended` waits for them from elsewhere.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

KEEPALIVE_IDLE = 30  # seconds of silence before the first probe
KEEPALIVE_INTERVAL = 10  # seconds between probes
KEEPALIVE_COUNT = 4  # unanswered probes before the kernel calls the link dead (about 70 s in all)
DEFAULT_LINK_TIMEOUT = 60.0  # when no DIMSE or network timeout is configured
END_GRACE = 1.0  # seconds an abort has to go out before the socket is shut under it


def tune_socket(sock: socket.socket) -> None:
    """TCP_NODELAY (FIELD-NOTES: Nagle adds ~40 ms per message in two parts) and TCP keepalive."""
    for level, option, value in (
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None), KEEPALIVE_IDLE),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_COUNT),
    ):
        if option is None:  # not on this platform
            continue
        try:
            sock.setsockopt(level, option, value)
        except OSError as exc:  # a socket type without it: keep going without
            log.debug("setsockopt(%s, %s) failed: %s", level, option, exc)


def counted_send(holder: Any, bytestream: bytes, activity: Any, server_activity: Any = None) -> BaseException | None:
    """pynetdicom's AssociationSocket.send for `holder`, counting what went out in `activity` (and
    `server_activity`); on failure, pynetdicom's reading (the transport closed, Evt17) and the
    exception returned (a write that moved nothing for the socket timeout: the peer stopped reading)."""
    from pynetdicom import evt

    view = memoryview(bytestream)
    try:
        while view:
            sent = holder.socket.send(view)
            activity.sent(sent)
            if server_activity is not None:
                server_activity.sent(sent)
            view = view[sent:]
        evt.trigger(holder.assoc, evt.EVT_DATA_SENT, {"data": bytestream})
    except Exception as exc:  # noqa: BLE001 - pynetdicom's own reading of any send failure
        holder.event_queue.put("Evt17")
        return exc
    return None


def link_failure(assoc: Any) -> BaseException | None:
    """Why the socket of an association we requested failed (None: it did not, or not known)."""
    return getattr(getattr(getattr(assoc, "dul", None), "socket", None), "failure", None)


def link_timed_out(assoc: Any) -> bool:
    """Whether the association ended because a read or write moved no byte for the socket timeout."""
    return isinstance(link_failure(assoc), (TimeoutError, socket.timeout))


def link_timeout(dimse: float | None, network: float | None = None) -> float:
    """The socket timeout after connect: how long one read or write may move no byte. The DIMSE
    timeout (a stall mid-message is a DIMSE wait), else the network timeout, else 60 s."""
    for value in (dimse, network):
        if value is not None and value > 0:
            return float(value)
    return DEFAULT_LINK_TIMEOUT


def end_association(assoc: Any, grace: float = END_GRACE, join: float = 5.0) -> None:
    """Abort `assoc` and make sure its DUL and reactor threads end, whatever the link does.

    Never call it on the event loop: it waits up to `grace` + `join` seconds."""
    try:
        if not (assoc.is_aborted or assoc.is_released) or assoc.is_established:
            assoc.abort(block=False)  # queues the A-ABORT; does not wait on the DUL thread
    except Exception as exc:  # noqa: BLE001 - already gone: still make sure the threads end
        log.debug("abort: %s", exc)
    dul = getattr(assoc, "dul", None)
    _wait_idle(dul, grace)
    if dul is not None and dul.is_alive() and not _dul_idle(dul):
        shut_socket(assoc)  # a read or write blocked on a frozen link returns now
        _wait_idle(dul, 1.0)
    # pynetdicom's kill() waits, without a bound, for the DUL to reach Sta1: end both loops instead.
    assoc._kill = True
    assoc.is_established = False
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if checkpoint is not None:
        checkpoint.set()
    if dul is not None:
        dul.kill_dul()
    for thread in (dul, assoc):
        if isinstance(thread, threading.Thread) and thread.is_alive() and thread is not threading.current_thread():
            thread.join(join)


def wait_ended(assoc: Any, timeout: float = END_GRACE + 12.0) -> bool:
    """Wait, up to `timeout` s, until the DUL and reactor threads of `assoc` have ended (an abort
    under way on another thread: `end_association`); whether they have. What the association's own
    thread was storing when the abort came is then handed over (core.dicom.bulkreceive), so a flush
    of the archive after this covers it. Never on the event loop."""
    deadline = time.monotonic() + timeout
    for thread in (getattr(assoc, "dul", None), assoc):
        if isinstance(thread, threading.Thread) and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
    return True


def _wait_idle(dul: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while dul is not None and dul.is_alive() and not _dul_idle(dul) and time.monotonic() < deadline:
        time.sleep(0.01)


def _dul_idle(dul: Any) -> bool:
    machine = getattr(dul, "state_machine", None)
    return getattr(machine, "current_state", None) == "Sta1"


def abort_and_shut(raw: socket.socket | None, abort: bytes) -> None:
    """Send `abort` (an encoded A-ABORT) on `raw` as far as it goes, then shut `raw` in both
    directions (not closed: its DUL thread closes it)."""
    if raw is None:
        return
    try:
        raw.sendall(abort)
    except OSError:
        pass
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def shut_socket(assoc: Any) -> None:
    """Shut the association's socket in both directions and close it (idempotent)."""
    holder = getattr(getattr(assoc, "dul", None), "socket", None)
    raw = getattr(holder, "socket", None)
    if raw is None:
        return
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        raw.close()
    except OSError:
        pass


__all__ = [
    "DEFAULT_LINK_TIMEOUT",
    "abort_and_shut",
    "counted_send",
    "link_failure",
    "link_timed_out",
    "END_GRACE",
    "KEEPALIVE_COUNT",
    "KEEPALIVE_IDLE",
    "KEEPALIVE_INTERVAL",
    "end_association",
    "link_timeout",
    "shut_socket",
    "tune_socket",
]
