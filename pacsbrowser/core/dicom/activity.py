"""Bytes on the wire of one association: what the idle watchdogs read.

Pending C-GET/C-MOVE responses are optional (PS3.4 C.4.2.3) and one object may take minutes to
arrive on a slow link, so "the PACS went silent" means no bytes, in either direction, for a while;
not "no DIMSE message". The sockets of our associations (core.dicom.ae.ObservedSocket for those we
request, core.dicom.server's acceptor socket for our SCP) report every chunk they read or write
here; a receive path that reads PDUs itself does the same with `activity_of(assoc).received(n)`.

    activity = activity_of(assoc)
    if activity.idle_for() > limit: ...

Thread-safe: the socket side writes from the association's DUL thread, a watchdog reads from
another thread or the event loop.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_ATTRIBUTE = "_pacsbrowser_link_activity"
_attach_lock = threading.Lock()


class LinkActivity:
    """When bytes last crossed one link, and how many, each way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._received = 0
        self._sent = 0

    def received(self, nbytes: int) -> None:
        """`nbytes` were read from the peer (0 still counts as a sign of life only when positive)."""
        if nbytes <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self._received += nbytes
            self._last = now

    def sent(self, nbytes: int) -> None:
        """`nbytes` were written to the peer."""
        if nbytes <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self._sent += nbytes
            self._last = now

    def idle_for(self) -> float:
        """Seconds since the last byte in either direction (since creation when none yet)."""
        with self._lock:
            last = self._last
        return max(0.0, time.monotonic() - last)

    @property
    def bytes_received(self) -> int:
        with self._lock:
            return self._received

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return self._sent

    def __repr__(self) -> str:
        return (f"<LinkActivity received={self.bytes_received} sent={self.bytes_sent} "
                f"idle={self.idle_for():.1f}s>")


def activity_of(assoc: Any) -> LinkActivity:
    """The LinkActivity of `assoc` (a pynetdicom Association), created and attached on first use."""
    found = getattr(assoc, _ATTRIBUTE, None)
    if found is not None:
        return found
    with _attach_lock:
        found = getattr(assoc, _ATTRIBUTE, None)
        if found is None:
            found = LinkActivity()
            setattr(assoc, _ATTRIBUTE, found)
        return found


__all__ = ["LinkActivity", "activity_of"]
