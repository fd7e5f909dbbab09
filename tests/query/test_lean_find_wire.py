"""C-FIND responses read off the socket on the lean path (core.dicom.bulkreceive `_take_find`)
give what pynetdicom's reading gives, however the PACS frames them on the wire, and honour the
protocol when the PACS breaks off or sends garbage in the middle of one.

A pynetdicom SCP sends the command and the identifier of each response in PDUs of their own;
Orthanc and DCMTK may frame them otherwise. `Reframer` sits between our client and the scripted
SCP and rewrites the P-DATA-TF PDUs coming down: the command and the identifier in one PDU, the
identifier cut into tiny fragments each in a PDU of its own, the command cut too (then the lean
path leaves the response to pynetdicom), or a fault half way through a response. Everything else
passes as it came.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydicom.dataset import Dataset

from pacsbrowser.core.dicom import bulkreceive
from pacsbrowser.core.errors import AssociationAborted
from pacsbrowser.core.records import QueryKeys
from tests.lab import rawpdu
from tests.lab.client import run

from .conftest import ScriptedSCP, collect, service_for

pytestmark = pytest.mark.timeout(60)

RESPONSES = 40


def _responses(count: int = RESPONSES) -> list[tuple[int, Dataset | None]]:
    answers: list[tuple[int, Dataset | None]] = []
    for number in range(count):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientName = f"Müller^Jürgen{number}"
        ds.PatientID = f"ID{number:04d}"
        ds.StudyDescription = "Kopf " * (number % 7)
        ds.StudyInstanceUID = f"1.2.826.0.1.{number}"
        answers.append((0xFF01 if number == 3 else 0xFF00, ds))
    answers.append((0x0000, None))
    return answers


def _has_data_set(command: bytes) -> bool:
    """Whether a command set (implicit VR little endian) says a data set follows (0000,0800)."""
    pos = 0
    while pos + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHL", command, pos)
        if (group, element) == (0, 0x0800):
            return struct.unpack_from("<H", command, pos + 8)[0] != 0x0101
        pos += 8 + length
    return False


class Reframer:
    """A relay on 127.0.0.1 to `target` that reframes the P-DATA-TF PDUs it passes down (see the
    module doc). `mode`: "pass", "one-pdu", "tiny-data", "tiny-all", "abort-mid" (A-ABORT after
    the first fragment of response `fault_at`), "garbage-mid" (a command fragment there instead)."""

    def __init__(self, target: tuple[str, int], ae_title: str, mode: str, fault_at: int = 5) -> None:
        self.target, self.ae_title, self.mode, self.fault_at = target, ae_title, mode, fault_at
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.host, self.port = self.listener.getsockname()[:2]
        self.responses = 0
        self.faulted = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._start(self._accept)

    def _start(self, fn: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(self.target, timeout=10)
            client.settimeout(10)
            self._sockets += [client, server]
            self._start(self._up, client, server)
            self._start(self._down, server, client)

    def _up(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                server.sendall(data)
        except OSError:
            pass
        finally:
            _shut(server)

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        peer = rawpdu.RawPeer(server)
        held: list[bytes] = []  # a command PDV held back to go with its identifier ("one-pdu")
        try:
            while (pdu := peer.read_pdu(timeout=30)) is not None:
                pdu_type, body = pdu
                if pdu_type != 0x04:
                    client.sendall(rawpdu.pdu(pdu_type, body))
                    continue
                for context_id, control, data in _pdvs(body):
                    if not self._forward(client, held, context_id, control, data):
                        return
        except OSError:
            pass
        finally:
            _shut(client)

    def _forward(self, client: socket.socket, held: list[bytes], context_id: int, control: int, data: bytes) -> bool:
        command, last = bool(control & 1), bool(control & 2)
        mode = self.mode
        if command and last:
            self.responses += 1
        if mode in ("abort-mid", "garbage-mid") and not command and self.responses == self.fault_at:
            client.sendall(rawpdu.p_data(rawpdu.pdv(context_id, data[:5], command=False, last=False)))
            if mode == "abort-mid":
                client.sendall(rawpdu.abort(2, 0))
            else:
                client.sendall(rawpdu.p_data(rawpdu.pdv(context_id, b"\x00" * 12, command=True, last=True)))
            self.faulted.set()
            return False
        if mode == "one-pdu" and command:
            if _has_data_set(data):
                held.append(rawpdu.pdv(context_id, data, command=True, last=last))
                return True
        if mode == "one-pdu" and held and not command:
            client.sendall(rawpdu.p_data(held.pop(), rawpdu.pdv(context_id, data, command=False, last=last)))
            return True
        if mode == "tiny-data" and not command or mode == "tiny-all":
            for start in range(0, len(data), 7):
                piece = data[start:start + 7]
                client.sendall(rawpdu.p_data(rawpdu.pdv(context_id, piece, command=command,
                                                        last=last and start + 7 >= len(data))))
            return True
        client.sendall(rawpdu.p_data(rawpdu.pdv(context_id, data, command=command, last=last)))
        return True

    def close(self) -> None:
        self._stop.set()
        for sock in [self.listener, *self._sockets]:
            _shut(sock)
            sock.close()
        for thread in self._threads:
            thread.join(5)


def _pdvs(body: bytes) -> list[tuple[int, int, bytes]]:
    items, pos = [], 0
    while pos < len(body):
        length, context_id, control = struct.unpack_from(">LBB", body, pos)
        items.append((context_id, control, body[pos + 6:pos + 4 + length]))
        pos += 4 + length
    return items


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@pytest.fixture
def reframed(start_scp: Callable[..., Any]):
    made: list[Reframer] = []

    def factory(mode: str, responses: list[tuple[int, Dataset | None]] | None = None, **options: Any) -> Reframer:
        scp = start_scp(ScriptedSCP, responses if responses is not None else _responses())
        relay = Reframer((scp.host, scp.port), scp.ae_title, mode, **options)
        made.append(relay)
        return relay

    yield factory
    for relay in made:
        relay.close()


@pytest.fixture
def taken(monkeypatch) -> list[int]:
    """How many pending responses the lean path took (BulkReader._found calls), for each find."""
    counts: list[int] = []
    real = bulkreceive.BulkReader._found

    def counting(self, *args: Any) -> None:
        counts.append(1)
        real(self, *args)

    monkeypatch.setattr(bulkreceive.BulkReader, "_found", counting)
    return counts


def _both_ways(relay: Reframer, monkeypatch) -> tuple[tuple[list[Any], Any], tuple[list[Any], Any]]:
    monkeypatch.setenv("PACSBROWSER_LEAN_FIND", "0")
    before = run(collect(service_for(relay), QueryKeys.studies()))
    monkeypatch.setenv("PACSBROWSER_LEAN_FIND", "1")
    after = run(collect(service_for(relay), QueryKeys.studies()))
    return before, after


@pytest.mark.parametrize("mode, lean", [("pass", True), ("one-pdu", True), ("tiny-data", True), ("tiny-all", False)])
def test_every_framing_reads_as_pynetdicom_reads_it(reframed, taken, monkeypatch, mode, lean):
    relay = reframed(mode)
    (old, old_outcome), (new, new_outcome) = _both_ways(relay, monkeypatch)
    assert len(old) == RESPONSES and new == old
    assert [r.patient_name.given for r in new][:2] == ["Jürgen0", "Jürgen1"]
    assert old_outcome.status == new_outcome.status == 0x0000
    assert new_outcome.reasons == old_outcome.reasons
    # taken on the lean path, or (a command cut in pieces) left to pynetdicom, which reads it alike
    assert len(taken) == (RESPONSES if lean else 0)


def test_a_limit_cancels_and_drains_on_the_lean_path(reframed, taken):
    relay = reframed("one-pdu")
    results, outcome = run(collect(service_for(relay), QueryKeys.studies(), limit=10))
    assert len(results) == 10 and outcome.limit_reached
    assert len(taken) >= 10


@pytest.mark.parametrize("mode", ["abort-mid", "garbage-mid"])
def test_a_response_broken_off_half_way_ends_the_find_with_what_came_before(reframed, taken, mode):
    relay = reframed(mode, fault_at=6)

    async def scenario() -> tuple[list[Any], BaseException | None]:
        found = service_for(relay).find(QueryKeys.studies())
        seen: list[Any] = []
        try:
            async with found:
                async for result in found:
                    seen.append(result)
        except AssociationAborted as exc:
            return seen, exc
        return seen, None

    results, error = run(scenario())
    assert relay.faulted.is_set()
    assert [r.study_instance_uid for r in results] == [f"1.2.826.0.1.{n}" for n in range(5)]
    assert error is not None, "the broken response must end the find as an abort"
    assert len(taken) == 5
