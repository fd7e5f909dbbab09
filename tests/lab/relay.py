"""A TCP relay on 127.0.0.1 for the tests: forwards to a loopback peer, and can freeze mid-transfer
without closing (a dead Wi-Fi or VPN link: no FIN, no RST, no byte) or throttle.

    with Relay("127.0.0.1", scp_port) as relay:          # connect to relay.port instead
        relay.freeze_mid_pdu("down", pdu_type=0x04)       # freeze in the middle of the next P-DATA
        relay.throttle(down=2_000_000)                    # bytes per second, server -> client
        relay.freeze(); relay.thaw()

"up" is client -> target, "down" is target -> client; the byte counts and the PDU boundaries are
followed per direction for the whole relay, so give each test's connections one at a time (as a job's
associations come) or a relay of their own. Frozen, the relay reads nothing from either
side and writes nothing, and keeps both connections open, so the kernel's buffers fill and the
senders block; `close()` (or leaving the `with`) closes every connection and joins every thread.
Only loopback: the listening address and the target must be 127.0.0.1 (or ::1, localhost).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
CHUNK = 64 * 1024
_TICK = 0.02  # seconds between checks while frozen or waiting for throttle budget


@dataclass
class _Direction:
    name: str
    rate: float | None = None  # bytes per second; None: as fast as it comes
    passed: int = 0  # bytes forwarded
    freeze_at: int | None = None  # freeze once this many bytes have passed
    # PDU boundaries seen in this direction: (type, start offset, length with header)
    pdus: list[tuple[int, int, int]] = field(default_factory=list)
    _header: bytearray = field(default_factory=bytearray)
    _pdu_left: int = 0
    _budget_since: float = field(default_factory=time.monotonic)
    _budget_bytes: int = 0
    watch_type: int | None = None  # freeze mid-way through the next PDU of this type
    watch_after: int = 0  # ...of those whose header comes after this many bytes

    def track(self, data: bytes, offset: int) -> int | None:
        """Follow PDU boundaries; a byte count to freeze at when a watched PDU begins in `data`."""
        freeze = None
        i = 0
        while i < len(data):
            if self._pdu_left:
                step = min(self._pdu_left, len(data) - i)
                self._pdu_left -= step
                i += step
                continue
            need = 6 - len(self._header)
            take = data[i:i + need]
            self._header += take
            i += len(take)
            if len(self._header) == 6:
                pdu_type, _, length = struct.unpack(">BBL", bytes(self._header))
                start = offset + i - 6
                self.pdus.append((pdu_type, start, length + 6))
                self._header.clear()
                self._pdu_left = length
                if (freeze is None and self.watch_type == pdu_type and start >= self.watch_after
                        and length > 2):
                    freeze = start + 6 + length // 2  # in the middle of its body
                    self.watch_type = None
        return freeze


class Relay:
    """See the module docstring."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        if target_host not in LOOPBACK or host not in LOOPBACK:
            raise ValueError("the test relay forwards between loopback addresses only")
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._frozen: set[str] = set()  # the directions frozen
        self._stop = threading.Event()
        self.up = _Direction("up")
        self.down = _Direction("down")
        self.connections = 0
        self.freeze_ways: tuple[str, ...] = ("up", "down")  # what a freeze point freezes
        self._pending_watch: tuple[_Direction, int, int, bytes] | None = None
        self.frozen_at: float | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.1)
        self.host, self.port = self._listener.getsockname()[:2]
        self._acceptor = threading.Thread(target=self._accept_loop, name="test-relay-accept", daemon=True)

    # -- control ------------------------------------------------------------------------------

    def start(self) -> "Relay":
        self._acceptor.start()
        return self

    def freeze(self, directions: tuple[str, ...] = ("up", "down")) -> None:
        """Stop forwarding now (both ways unless told); the connections stay open."""
        for direction in directions:
            self._way(direction)
        with self._lock:
            if not self._frozen:
                self.frozen_at = time.monotonic()
            self._frozen.update(directions)

    def thaw(self) -> None:
        with self._lock:
            self._frozen.clear()
            self.up.freeze_at = self.down.freeze_at = None

    @property
    def frozen(self) -> bool:
        return bool(self._frozen)

    def freeze_after(self, direction: str, nbytes: int) -> None:
        """Freeze once `nbytes` more have passed in `direction` ("up" or "down")."""
        way = self._way(direction)
        with self._lock:
            way.freeze_at = way.passed + nbytes

    def freeze_mid_pdu(self, direction: str, pdu_type: int = 0x04, *, after: int = 0,
                       when_seen: bytes | None = None) -> None:
        """Freeze half-way through the body of the next PDU of `pdu_type` in `direction` (0x04:
        P-DATA-TF) that starts at least `after` bytes from now: the receiver then waits for the
        rest of a PDU that never comes. `when_seen`: only once these bytes have gone the other way
        (an abstract syntax UID in an association request, say)."""
        way = self._way(direction)
        with self._lock:
            if when_seen is not None:
                self._pending_watch = (way, pdu_type, after, when_seen)
                return
            way.watch_type, way.watch_after = pdu_type, way.passed + after

    def throttle(self, *, up: float | None = None, down: float | None = None) -> None:
        """Bytes per second in each direction (None: unlimited)."""
        with self._lock:
            for way, rate in ((self.up, up), (self.down, down)):
                way.rate = rate
                way._budget_since, way._budget_bytes = time.monotonic(), 0

    def _way(self, direction: str) -> _Direction:
        if direction not in ("up", "down"):
            raise ValueError("direction is 'up' or 'down'")
        return self.up if direction == "up" else self.down

    # -- running ------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                self._sockets += [client, server]
            thread = threading.Thread(target=self._pump, args=(client, server), daemon=True,
                                      name=f"test-relay-{self.connections}")
            self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        ends = {client: (server, self.up), server: (client, self.down)}
        for sock in ends:
            sock.setblocking(False)
        try:
            while not self._stop.is_set():
                with self._lock:
                    open_ways = [sock for sock, (_, way) in ends.items() if way.name not in self._frozen]
                if not open_ways:
                    self._stop.wait(_TICK)
                    continue
                readable, _, _ = select.select(open_ways, [], [], _TICK)
                for sock in readable:
                    other, way = ends[sock]
                    size = self._allowance(way)
                    if size <= 0:
                        continue
                    try:
                        data = sock.recv(size)
                    except BlockingIOError:
                        continue
                    except OSError:
                        return
                    if not data:  # that side closed: close the other (a FIN passes on)
                        return
                    self._forward(data, other, way)
        finally:
            for sock in (client, server):
                try:
                    sock.close()
                except OSError:
                    pass

    def _allowance(self, way: _Direction) -> int:
        """How many bytes may be read now in `way` (throttle budget, freeze point)."""
        with self._lock:
            size = CHUNK
            if way.freeze_at is not None:
                size = min(size, way.freeze_at - way.passed)
            if way.rate is not None:
                elapsed = time.monotonic() - way._budget_since
                budget = int(way.rate * elapsed) - way._budget_bytes
                size = min(size, budget, max(1, int(way.rate * 0.05)))
            return size

    def _forward(self, data: bytes, other: socket.socket, way: _Direction) -> None:
        with self._lock:
            pending = self._pending_watch
            if pending is not None and pending[0] is not way and pending[3] in data:
                watched, pdu_type, after, _ = pending
                watched.watch_type, watched.watch_after = pdu_type, watched.passed + after
                self._pending_watch = None
            cut = way.track(data, way.passed)
            if cut is not None:
                way.freeze_at = cut
        if way.freeze_at is not None and way.passed + len(data) > way.freeze_at:
            keep = max(0, way.freeze_at - way.passed)
            data = data[:keep]  # the rest is never delivered: the link is dead from here on
            self.freeze(self.freeze_ways)
        elif way.freeze_at is not None and way.passed + len(data) == way.freeze_at:
            self.freeze(self.freeze_ways)
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                sent = other.send(view)
                view = view[sent:]
            except BlockingIOError:
                select.select([], [other], [], _TICK)
            except OSError:
                return
        with self._lock:
            way.passed += len(data)
            if way.rate is not None:
                way._budget_bytes += len(data)

    def close(self) -> None:
        """Close the listener and every connection; join the threads (bounded)."""
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def __enter__(self) -> "Relay":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Relay"]
