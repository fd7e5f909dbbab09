"""Raw DICOM Upper Layer PDUs over a plain socket: a peer that can stop, lie or cut at any byte.

For the hostile-peer tests of our SCP (tests/serve/test_hostile_peers.py). Valid PDUs are built by
pynetdicom's own classes (A-ASSOCIATE-RQ from its primitives, DIMSE messages fragmented by its
encoder); the rest is `struct`, so a test can write any length, type or truncation it likes.

    with RawPeer.connect(host, port) as peer:
        accepted = peer.associate("PBSERVE", [(1, CTImageStorage, [ExplicitVRLittleEndian])])
        for pdu in dimse_pdus(c_store_rq(ds, context_id=1), ds_bytes, 1, 16384):
            peer.send(pdu)
        status = peer.read_response().Status

Everything is loopback only and bounded: every read has a timeout.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom._globals import APPLICATION_CONTEXT_NAME
from pynetdicom.dimse_messages import C_CANCEL_RQ, C_ECHO_RQ, C_FIND_RQ, C_GET_RQ, C_MOVE_RQ, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_CANCEL, C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext

LOOPBACK = "127.0.0.1"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1046.99"

A_ASSOCIATE_RQ_TYPE, A_ASSOCIATE_AC_TYPE, A_ASSOCIATE_RJ_TYPE = 0x01, 0x02, 0x03
P_DATA_TF_TYPE, A_RELEASE_RQ_TYPE, A_RELEASE_RP_TYPE, A_ABORT_TYPE = 0x04, 0x05, 0x06, 0x07

# (context ID, abstract syntax, transfer syntaxes)
Proposal = tuple[int, str, Sequence[str]]


# ------------------------------------------------------------------------------------------- PDUs


def header(pdu_type: int, length: int) -> bytes:
    """The 6-byte PDU header: type, reserved, 4-byte big-endian length (anything the test asks)."""
    return struct.pack(">BBL", pdu_type & 0xFF, 0, length & 0xFFFFFFFF)


def pdu(pdu_type: int, body: bytes) -> bytes:
    return header(pdu_type, len(body)) + body


def associate_rq(called: str, calling: str, proposals: Iterable[Proposal], *, max_pdu: int = 16384,
                 roles: Iterable[tuple[str, bool, bool]] = ()) -> bytes:
    """An A-ASSOCIATE-RQ proposing `proposals`; `roles`: (SOP class, SCU role, SCP role) items."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = UID(APPLICATION_CONTEXT_NAME)
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    contexts = []
    for context_id, abstract, syntaxes in proposals:
        cx = PresentationContext()
        cx.context_id = context_id
        cx.abstract_syntax = UID(abstract)
        cx.transfer_syntax = [UID(s) for s in syntaxes]
        contexts.append(cx)
    primitive.presentation_context_definition_list = contexts
    length = MaximumLengthNotification()
    length.maximum_length_received = max_pdu
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = UID(IMPLEMENTATION_UID)
    items: list = [length, implementation]
    for sop_class, scu, scp in roles:
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = UID(sop_class)
        role.scu_role, role.scp_role = scu, scp
        items.append(role)
    primitive.user_information = items
    rq = A_ASSOCIATE_RQ()
    rq.from_primitive(primitive)
    return rq.encode()


def pdv(context_id: int, data: bytes, *, command: bool, last: bool) -> bytes:
    """One Presentation Data Value item (PS3.8 9.3.5.1): length, context ID, message control header."""
    control = (0x01 if command else 0x00) | (0x02 if last else 0x00)
    return struct.pack(">LBB", len(data) + 2, context_id & 0xFF, control) + data


def p_data(*items: bytes) -> bytes:
    """A P-DATA-TF PDU holding the PDV items given (built by `pdv`, or any bytes a test likes)."""
    return pdu(P_DATA_TF_TYPE, b"".join(items))


def release_rq() -> bytes:
    return pdu(A_RELEASE_RQ_TYPE, b"\x00" * 4)


def release_rp() -> bytes:
    return pdu(A_RELEASE_RP_TYPE, b"\x00" * 4)


def abort(source: int = 0, reason: int = 0) -> bytes:
    """A-ABORT (source 0: service user, 2: service provider)."""
    return pdu(A_ABORT_TYPE, bytes([0, 0, source, reason]))


# ------------------------------------------------------------------------------------------ DIMSE


def encode_dataset(ds: Dataset, *, implicit: bool = False) -> bytes:
    """A data set as it travels in P-DATA (little endian; explicit VR unless `implicit`)."""
    return bytes(encode(ds, implicit, True))


def _message(primitive, message_class) -> object:
    message = message_class()
    message.primitive_to_message(primitive)
    return message


def command_pdus(primitive, context_id: int, max_pdu: int = 16384) -> list[bytes]:
    """The P-DATA-TF PDUs of a DIMSE request `primitive` whose data set (if any) is already
    encoded bytes in its dataset attribute, fragmented by pynetdicom's encoder."""
    message_class = {C_ECHO: C_ECHO_RQ, C_STORE: C_STORE_RQ, C_FIND: C_FIND_RQ, C_GET: C_GET_RQ,
                     C_MOVE: C_MOVE_RQ, C_CANCEL: C_CANCEL_RQ}[type(primitive)]
    if isinstance(primitive, C_STORE) and primitive.MessageIDBeingRespondedTo is not None:
        message_class = C_STORE_RSP
    message = _message(primitive, message_class)
    out = []
    for item in message.encode_msg(context_id, max_pdu):  # type: ignore[attr-defined] - _message returns a DIMSEMessage typed as object
        out.append(p_data(*(pdv(cid, value[1:], command=bool(value[0] & 1), last=bool(value[0] & 2))
                            for cid, value in item.presentation_data_value_list)))
    return out


def c_echo(message_id: int = 1) -> C_ECHO:
    rq = C_ECHO()
    rq.MessageID = message_id
    rq.AffectedSOPClassUID = "1.2.840.10008.1.1"
    return rq


def c_store(ds: Dataset, message_id: int = 1, *, implicit: bool = False) -> C_STORE:
    rq = C_STORE()
    rq.MessageID = message_id
    rq.AffectedSOPClassUID = ds.SOPClassUID
    rq.AffectedSOPInstanceUID = ds.SOPInstanceUID
    rq.Priority = 2
    rq.DataSet = BytesIO(encode_dataset(ds, implicit=implicit))
    return rq


def c_store_response(request: Dataset, status: int = 0x0000) -> C_STORE:
    """Our answer to a C-STORE-RQ command set `request` (a C-GET sub-operation)."""
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = request.MessageID
    rsp.AffectedSOPClassUID = request.AffectedSOPClassUID
    rsp.AffectedSOPInstanceUID = request.AffectedSOPInstanceUID
    rsp.Status = status
    return rsp


def _query(kind, sop_class: str, identifier: Dataset, message_id: int, move_destination: str = ""):
    rq = kind()
    rq.MessageID = message_id
    rq.AffectedSOPClassUID = sop_class
    rq.Priority = 2
    if move_destination:
        rq.MoveDestination = move_destination
    rq.Identifier = BytesIO(encode_dataset(identifier))
    return rq


def c_find(sop_class: str, identifier: Dataset, message_id: int = 1) -> C_FIND:
    return _query(C_FIND, sop_class, identifier, message_id)


def c_get(sop_class: str, identifier: Dataset, message_id: int = 1) -> C_GET:
    return _query(C_GET, sop_class, identifier, message_id)


def c_move(sop_class: str, identifier: Dataset, destination: str, message_id: int = 1) -> C_MOVE:
    return _query(C_MOVE, sop_class, identifier, message_id, destination)


def c_cancel(message_id: int) -> C_CANCEL:
    rq = C_CANCEL()
    rq.MessageIDBeingRespondedTo = message_id
    return rq


# ------------------------------------------------------------------------------------------- peer


@dataclass
class Message:
    """A DIMSE message read off the wire: its command set (decoded) and data set (raw bytes)."""

    context_id: int
    command: Dataset
    data: bytes = b""

    @property
    def status(self) -> int | None:
        return self.command.get("Status")

    @property
    def command_field(self) -> int:
        return int(self.command.CommandField)


@dataclass
class RawPeer:
    """A TCP connection to an SCP that speaks PDUs byte by byte; every read bounded by `timeout`."""

    sock: socket.socket
    timeout: float = 10.0
    _buffer: bytearray = field(default_factory=bytearray)
    _command: bytearray = field(default_factory=bytearray)
    _data: bytearray = field(default_factory=bytearray)
    _pending: tuple[int, Dataset] | None = None

    @classmethod
    def connect(cls, host: str, port: int, timeout: float = 10.0) -> RawPeer:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock, timeout)

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), as a crashed host's stack would."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def _fill(self, count: int, deadline: float) -> bool:
        while len(self._buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no PDU from the SCP within {self.timeout} s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return False
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def read_pdu(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        """The next PDU as (type, body), or None once the SCP closed the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        if not self._fill(6, deadline):
            return None
        pdu_type, _, length = struct.unpack(">BBL", self._buffer[:6])
        if not self._fill(6 + length, deadline):
            return None
        body = bytes(self._buffer[6:6 + length])
        del self._buffer[:6 + length]
        return pdu_type, body

    def closed_by_peer(self, timeout: float) -> bool:
        """Read (and drop) whatever comes until the SCP closes the connection; whether it did in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.read_pdu(timeout=max(0.01, deadline - time.monotonic())) is None:
                    return True
            except TimeoutError:
                return False
            except OSError:  # reset by the SCP: closed as well
                return True
        return False

    def associate(self, called: str, proposals: Sequence[Proposal], *, calling: str = "HOSTILE",
                  max_pdu: int = 16384, roles: Iterable[tuple[str, bool, bool]] = ()) -> dict[int, str]:
        """Send an A-ASSOCIATE-RQ and read the answer: {context ID: transfer syntax} of the accepted
        contexts. Raises AssertionError when rejected, aborted or closed."""
        self.send(associate_rq(called, calling, proposals, max_pdu=max_pdu, roles=roles))
        answer = self.read_pdu()
        assert answer is not None, "the SCP closed the connection instead of answering A-ASSOCIATE-RQ"
        pdu_type, body = answer
        assert pdu_type == A_ASSOCIATE_AC_TYPE, f"A-ASSOCIATE answered with PDU type 0x{pdu_type:02X}"
        ac = A_ASSOCIATE_AC()
        ac.decode(header(pdu_type, len(body)) + body)
        return {cx.context_id: str(cx.transfer_syntax[0]) for cx in ac.presentation_context if cx.result == 0}

    def read_message(self, timeout: float | None = None) -> Message | None:
        """The next whole DIMSE message, or None when the SCP closed, released or aborted."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            answer = self.read_pdu(timeout=max(0.01, deadline - time.monotonic()))
            if answer is None or answer[0] != P_DATA_TF_TYPE:
                return None
            body = answer[1]
            offset = 0
            while offset < len(body):
                (length, context_id, control) = struct.unpack(">LBB", body[offset:offset + 6])
                value = body[offset + 6:offset + 4 + length]
                offset += 4 + length
                if control & 1:
                    self._command += value
                    if control & 2:
                        command = decode(BytesIO(bytes(self._command)), True, True)
                        self._command.clear()
                        if command.CommandDataSetType == 0x0101:
                            return Message(context_id, command)
                        self._pending = (context_id, command)
                else:
                    self._data += value
                    if control & 2:
                        assert self._pending is not None, "a data set came before its command set"
                        context, command = self._pending
                        data, self._data = bytes(self._data), bytearray()
                        return Message(context, command, data)

    def send_message(self, primitive, context_id: int, max_pdu: int = 16384) -> None:
        for item in command_pdus(primitive, context_id, max_pdu):
            self.send(item)

    def release(self, timeout: float | None = None) -> bool:
        """A-RELEASE-RQ; whether the SCP answered A-RELEASE-RP."""
        self.send(release_rq())
        while True:
            answer = self.read_pdu(timeout)
            if answer is None:
                return False
            if answer[0] == A_RELEASE_RP_TYPE:
                return True
            if answer[0] == A_ABORT_TYPE:
                return False


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


__all__ = [
    "LOOPBACK",
    "Message",
    "RawPeer",
    "abort",
    "associate_rq",
    "c_cancel",
    "c_echo",
    "c_find",
    "c_get",
    "c_move",
    "c_store",
    "c_store_response",
    "chunks",
    "command_pdus",
    "encode_dataset",
    "header",
    "p_data",
    "pdu",
    "pdv",
    "release_rp",
    "release_rq",
]
