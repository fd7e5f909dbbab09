"""The lean data path for bulk receive: C-STORE requests read off the socket and written to the
archive as their fragments arrive, answered at once (issue 16).

pynetdicom reads a PDU with two recv() calls, decodes it into objects, runs it through the state
machine and the DIMSE provider, which joins the fragments into one message (each byte copied
about six times), decodes the command set with pydicom, hands the request to the association's
thread, which calls our EVT_C_STORE handler and encodes the reply twice. For the C-STORE
sub-operations of a C-GET and for our Storage SCP that is most of the CPU a received image costs.

`BulkDUL` (a `responsive.ResponsiveDUL`) takes over the reading of an association's socket once
it is established (pynetdicom negotiated it, with its own reads, which never read past a PDU):

- PDUs are read with `recv_into` into one reused buffer, several per call, their headers parsed
  with `struct`;
- a C-STORE-RQ whose command set is whole in its first PDU, on a context where pynetdicom would
  have called our `ReceiveHandler`, is decoded here (a handful of fixed elements, implicit VR little
  endian). Its data set's start is kept until the header is complete (everything before the
  pixel data), then `Archive.open_stream` writes File Meta and header and every further fragment
  goes to the temporary file with one `os.writev` per read, straight from the receive buffer;
- the last fragment commits the file (the same bytes, File Meta, place, durability and indexing as
  `Archive.store`, the statuses of `ReceiveHandler`: disk full 0xA700, malformed 0xC000, ...) and
  the C-STORE-RSP goes out at once, encoded here with the bytes pynetdicom would send;
- everything else is pynetdicom's: any other PDU (A-RELEASE, A-ABORT, ...) and any other message
  (C-ECHO, C-FIND, C-GET and C-MOVE with their C-CANCEL, the responses to our requests, a C-STORE
  we do not take) is handed over whole, as its own reader would have produced it, and goes
  through its state machine and DIMSE provider as before. While pynetdicom is assembling a
  message, all P-DATA goes to it.

Protocol rules on the lean path (PS3.8): an A-ABORT, A-RELEASE-RQ or other PDU in the middle of a
C-STORE drops the partial instance (nothing is left in the archive) and goes to pynetdicom; a
malformed P-DATA-TF (a fragment longer than its PDU, a command fragment or another context in
the middle of the data set) drops it and raises Evt19 (invalid PDU: pynetdicom's state machine
sends A-ABORT); a closed connection raises Evt17. What pynetdicom itself ignores (fragments after
the last one in the same PDU) is ignored here too. A disk that fills up half way refuses the
instance, as `ReceiveHandler` does, once its last fragment has been read; a handler that raises
is answered 0xC211, as pynetdicom answers it. On our SCP a PDU longer than we accept (a P-DATA-TF
over the maximum we announced plus 1 KiB, any other PDU over 1 MiB) is refused with A-ABORT
(invalid PDU parameter value) and the connection hung up, as core.dicom.server's acceptor socket
refuses it before the association is established: nothing a peer announces is buffered ahead.

Reads never block on a plain socket (MSG_DONTWAIT: the DUL loop's select() waits), so an abort
queued by another thread, a killed DUL or a closed socket ends a transfer mid-PDU; a TLS socket
is read when select() or `pending()` says so, and a socket timeout is "no data yet". Every byte
read is reported to the association's LinkActivity (core.dicom.activity).

C-FIND responses (`take_find_responses`, set by core.dicom.find for the request being read): a
pending C-FIND-RSP to that request whose command set is whole in its first PDU is read here too
(its identifier's fragments joined once, across PDUs when it is cut), and goes on the DIMSE queue
as a `FindPending` (status, identifier bytes) instead of pynetdicom's C_FIND primitive; final
responses are pynetdicom's. A broad query brings one per match (5,000 and more); pynetdicom's
path cost 0.4 ms of CPU each on its DUL thread. Another PDU in the middle of a response drops it;
a malformed continuation is an invalid PDU (Evt19). After an Evt19 of ours on an association we
requested, the thread waiting for a response is woken once the state machine has sent its A-ABORT
(pynetdicom's AA-8 does not wake it, unlike its aborts from the peer).

The DIMSE timeout of a C-GET (pynetdicom waits that long for its next message, and the C-STORE
requests no longer reach its queue) counts from the last byte the lean path read: a PACS that
sends no pending responses while it sends images is not timed out.

`PACSBROWSER_LEAN_RECEIVE=0` in the environment turns the lean path off (pynetdicom's path, for
comparisons: benchmarks `--env PACSBROWSER_LEAN_RECEIVE=0`); `PACSBROWSER_LEAN_FIND=0` turns off
its C-FIND part (and core.dicom.rawidentifiers), and C-FIND associations then keep pynetdicom's
polling threads.

Upstream: pynetdicom could take the idea in general form (read into a reused buffer, stream
C-STORE data fragments to a handler-provided sink, encode fixed command sets directly); its
`STORE_RECV_CHUNKED_DATASET` spools to a temporary file but still goes through every layer.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import _config as pynetdicom_config
from pynetdicom import dul as pynetdicom_dul
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_GET, C_MOVE, C_STORE
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from ..archive import HEADER_TAGS, ArchiveStream, RawHeader, is_valid_uid
from .activity import LinkActivity, activity_of
from .limits import ABORT_INVALID_PARAMETER, MAX_COMMAND_SET, CommandSetBound, pdu_limit
from .links import abort_and_shut
from .receive import SUCCESS, ReceiveHandler, sender_of
from .responsive import IDLE, ResponsiveDUL

log = logging.getLogger(__name__)

ENABLED = os.environ.get("PACSBROWSER_LEAN_RECEIVE", "1").strip() != "0"


def lean_find() -> bool:
    """Whether C-FIND responses are read the lean way: off the socket here (`take_find_responses`,
    with the lean path on) and from their bytes (core.dicom.rawidentifiers); the default.
    `PACSBROWSER_LEAN_FIND=0` leaves them to pynetdicom and reads each into a pydicom Dataset
    first, as before (for comparisons). Read at each query."""
    return os.environ.get("PACSBROWSER_LEAN_FIND", "1").strip() != "0"

BUFFER = 1 << 20  # the receive buffer (grows only for a single PDU larger than this)
_MIN_ROOM = 1 << 16  # compact or grow the buffer when less than this is free at its end

_PDU_HEADER = struct.Struct(">BxL")  # type, reserved, length
_PDV_HEADER = struct.Struct(">LBB")  # item length, presentation context ID, message control header
_ELEMENT = struct.Struct("<HHL")  # implicit VR little endian: group, element, length
_IMPLICIT_ELEMENT = _ELEMENT
_EXPLICIT_ELEMENT = struct.Struct("<HH2sH")  # explicit VR little endian: group, element, VR, short length
_UL = struct.Struct("<L")
_US = struct.Struct("<H")

_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # where parse_dataset stops (core.archive.part10)
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"

# C-STORE-RQ command set (PS3.7 9.3.1.1): element -> value length (0: any)
_STORE_RQ_ELEMENTS = {0x0000: 4, 0x0002: 0, 0x0100: 2, 0x0110: 2, 0x0700: 2, 0x0800: 2, 0x1000: 0,
                      0x1030: 0, 0x1031: 2}
_NO_DATA_SET = 0x0101
# C-GET-RSP / C-MOVE-RSP command set (PS3.7 9.3.3.2, 9.3.4.2) as a pending response carries it
_RETRIEVE_RSP_ELEMENTS = {0x0000: 4, 0x0002: 0, 0x0100: 2, 0x0120: 2, 0x0800: 2, 0x0900: 2,
                          0x1020: 2, 0x1021: 2, 0x1022: 2, 0x1023: 2}
_RETRIEVE_RSP: dict[int, type[C_GET] | type[C_MOVE]] = {0x8010: C_GET, 0x8021: C_MOVE}
_SUBOPERATIONS = ((0x1020, "NumberOfRemainingSuboperations"), (0x1021, "NumberOfCompletedSuboperations"),
                  (0x1022, "NumberOfFailedSuboperations"), (0x1023, "NumberOfWarningSuboperations"))
_PENDING = 0xFF00
_RETRIEVE_MODELS = {
    "1.2.840.10008.5.1.4.1.2.1.2",  # Patient Root Query/Retrieve Information Model - MOVE
    "1.2.840.10008.5.1.4.1.2.1.3",  # Patient Root Query/Retrieve Information Model - GET
    "1.2.840.10008.5.1.4.1.2.2.2",  # Study Root Query/Retrieve Information Model - MOVE
    "1.2.840.10008.5.1.4.1.2.2.3",  # Study Root Query/Retrieve Information Model - GET
    "1.2.840.10008.5.1.4.1.2.3.2",  # Patient/Study Only - MOVE (retired)
    "1.2.840.10008.5.1.4.1.2.3.3",  # Patient/Study Only - GET (retired)
}
_FIND_MODELS = {
    "1.2.840.10008.5.1.4.1.2.1.1",  # Patient Root Query/Retrieve Information Model - FIND
    "1.2.840.10008.5.1.4.1.2.2.1",  # Study Root Query/Retrieve Information Model - FIND
}
# C-FIND-RSP command set (PS3.7 9.3.2.2) as a pending response carries it
_FIND_RSP_ELEMENTS = {0x0000: 4, 0x0002: 0, 0x0100: 2, 0x0120: 2, 0x0800: 2, 0x0900: 2}
_FIND_PENDING = (0xFF00, 0xFF01)
_HANDLER_FAILED = 0xC211  # pynetdicom's status when the EVT_C_STORE handler raises

NEED, DELIVERED = "need", "delivered"



# --------------------------------------------------------------------------------------------
# Command sets


@dataclass(frozen=True)
class StoreRequest:
    """The C-STORE-RQ fields the reply and the archive need."""

    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    move_originator: str | None = None  # Move Originator AE Title (a C-MOVE's sub-operation)
    move_message_id: int | None = None  # Move Originator Message ID


def _uid(raw: bytes) -> str | None:
    try:
        text = raw.decode("ascii").rstrip("\x00 ")
    except UnicodeDecodeError:
        return None
    return text if is_valid_uid(text) else None


def _command_values(command: bytes | bytearray | memoryview, allowed: dict[int, int]) -> dict[int, bytes] | None:
    """The elements of a command set (implicit VR little endian, group 0000) by element number, raw;
    None when one is not in `allowed` (element -> its value length, 0: any), has another length, is
    repeated or runs past the end: a command set to leave to pynetdicom."""
    values: dict[int, bytes] = {}
    pos, end = 0, len(command)
    while pos < end:
        if pos + 8 > end:
            return None
        group, element, length = _ELEMENT.unpack_from(command, pos)
        pos += 8
        expected = allowed.get(element)
        if group != 0 or expected is None or (expected and length != expected) or pos + length > end \
                or element in values:
            return None
        values[element] = bytes(command[pos:pos + length])
        pos += length
    return values


def decode_store_request(command: bytes | bytearray) -> StoreRequest | None:
    """A C-STORE-RQ with a data set, from its command set; None for anything else (another
    command, an element pynetdicom would read differently, a UID it would refuse...): those are
    pynetdicom's."""
    values = _command_values(command, _STORE_RQ_ELEMENTS)
    if values is None:
        return None
    try:
        if _US.unpack(values[0x0100])[0] != 0x0001:  # C-STORE-RQ
            return None
        if _US.unpack(values[0x0800])[0] == _NO_DATA_SET:
            return None
        if _US.unpack(values[0x0700])[0] not in (0, 1, 2):  # pynetdicom refuses other priorities
            return None
        message_id = _US.unpack(values[0x0110])[0]
        sop_class, sop_instance = _uid(values[0x0002]), _uid(values[0x1000])
    except KeyError:
        return None
    if sop_class is None or sop_instance is None:
        return None
    originator = values.get(0x1030)
    title = None
    if originator is not None:
        try:
            title = originator.decode("ascii").strip(" \x00")
        except UnicodeDecodeError:
            return None
        if not title or len(title) > 16 or "\\" in title:
            return None
    raw_id = values.get(0x1031)
    return StoreRequest(message_id, sop_class, sop_instance, title, None if raw_id is None else _US.unpack(raw_id)[0])


@dataclass(frozen=True)
class PendingResponse:
    """A pending C-GET-RSP or C-MOVE-RSP (status 0xFF00, no data set), as its command set says."""

    command_field: int  # 0x8010 C-GET-RSP, 0x8021 C-MOVE-RSP
    message_id: int  # Message ID Being Responded To
    sop_class_uid: str | None
    remaining: int | None
    completed: int | None
    failed: int | None
    warning: int | None

    def primitive(self) -> C_GET | C_MOVE:
        """The primitive pynetdicom's DIMSE provider would queue for it."""
        primitive = _RETRIEVE_RSP[self.command_field]()
        if self.sop_class_uid is not None:
            primitive.AffectedSOPClassUID = self.sop_class_uid
        primitive.MessageIDBeingRespondedTo = self.message_id
        primitive.Status = _PENDING
        primitive.NumberOfRemainingSuboperations = self.remaining
        primitive.NumberOfCompletedSuboperations = self.completed
        primitive.NumberOfFailedSuboperations = self.failed
        primitive.NumberOfWarningSuboperations = self.warning
        return primitive


@dataclass(frozen=True)
class _ResponseFields:
    """What every response command set says (PS3.7 9.3): the raw elements and the common fields."""

    values: dict[int, bytes]
    command_field: int
    status: int
    data_set_type: int
    message_id: int  # Message ID Being Responded To
    sop_class_uid: str | None  # Affected SOP Class UID (optional in a pending response)


def _response_fields(command: bytes | bytearray | memoryview, allowed: dict[int, int]) -> _ResponseFields | None:
    """The common fields of a response command set; None when one is missing or the SOP class
    is not a UID pynetdicom would take (then the response is pynetdicom's)."""
    values = _command_values(command, allowed)
    if values is None:
        return None
    try:
        field, data_set_type = _US.unpack(values[0x0100])[0], _US.unpack(values[0x0800])[0]
        status, message_id = _US.unpack(values[0x0900])[0], _US.unpack(values[0x0120])[0]
    except KeyError:
        return None
    sop_class = None
    raw_class = values.get(0x0002)
    if raw_class is not None:
        sop_class = _uid(raw_class)
        if sop_class is None:
            return None
    return _ResponseFields(values, field, status, data_set_type, message_id, sop_class)


def decode_retrieve_pending(command: bytes | bytearray | memoryview) -> PendingResponse | None:
    """A pending C-GET-RSP or C-MOVE-RSP from its command set; None for anything else (another
    command or status, an element pynetdicom would read differently): those are pynetdicom's."""
    fields = _response_fields(command, _RETRIEVE_RSP_ELEMENTS)
    if fields is None or fields.command_field not in _RETRIEVE_RSP or fields.data_set_type != _NO_DATA_SET \
            or fields.status != _PENDING:
        return None
    counts = [fields.values.get(element) for element, _ in _SUBOPERATIONS]
    remaining, completed, failed, warning = (None if raw is None else _US.unpack(raw)[0] for raw in counts)
    return PendingResponse(fields.command_field, fields.message_id, fields.sop_class_uid, remaining, completed,
                           failed, warning)


@dataclass(frozen=True)
class FindPending:
    """A pending C-FIND-RSP (status 0xFF00 or 0xFF01) with its identifier's bytes, as the lean
    path puts it on the DIMSE queue instead of pynetdicom's C_FIND primitive (core.dicom.find
    reads both)."""

    message_id: int  # Message ID Being Responded To
    status: int
    sop_class_uid: str | None
    identifier: bytes = b""


def decode_find_pending(command: bytes | bytearray | memoryview) -> FindPending | None:
    """A pending C-FIND-RSP with an identifier, from its command set; None for anything else
    (another command, a final status, no data set, an element pynetdicom would read differently):
    those are pynetdicom's."""
    fields = _response_fields(command, _FIND_RSP_ELEMENTS)
    if fields is None or fields.command_field != 0x8020 or fields.status not in _FIND_PENDING \
            or fields.data_set_type == _NO_DATA_SET:
        return None
    return FindPending(fields.message_id, fields.status, fields.sop_class_uid)


def _element(element: int, value: bytes) -> bytes:
    return _ELEMENT.pack(0, element, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    value = text.encode("ascii")
    return value + pad if len(value) % 2 else value


def encode_store_response(request: StoreRequest, status: int, comment: str = "") -> bytes:
    """The C-STORE-RSP command set pynetdicom encodes for the same response (implicit VR little
    endian, its elements in order: Affected SOP Class UID, Command Field, Message ID Being
    Responded To, Command Data Set Type, Status, Error Comment when given, Affected SOP Instance
    UID). `comment` must be ASCII."""
    body = b"".join([
        _element(0x0002, _padded(request.sop_class_uid, b"\x00")),
        _element(0x0100, _US.pack(0x8001)),
        _element(0x0120, _US.pack(request.message_id)),
        _element(0x0800, _US.pack(_NO_DATA_SET)),
        _element(0x0900, _US.pack(status)),
        _element(0x0902, _padded(comment, b" ")) if comment else b"",
        _element(0x1000, _padded(request.sop_instance_uid, b"\x00")),
    ])
    return _element(0x0000, struct.pack("<L", len(body))) + body


def p_data_tf(context_id: int, command: bytes) -> bytes:
    """One P-DATA-TF PDU holding `command` as a single, last command fragment."""
    item = len(command) + 2
    return struct.pack(">BxLLBB", 0x04, item + 4, item, context_id, 0x03) + command


# --------------------------------------------------------------------------------------------
# Where the header of a data set ends


class Unwalkable(ValueError):
    """The data set's elements cannot be walked (not DICOM as far as a walk can tell)."""


def header_end(data: bytes | bytearray, start: int, implicit: bool,
               values: dict[int, bytes] | None = None) -> tuple[int | None, int]:
    """Walk the top-level elements of an encoded data set (little endian) from `start`, an
    element boundary: (offset of the first pixel data element, or None when the bytes so far end
    before one; the boundary to resume from). The values of the header elements the index keeps
    (archive.HEADER_TAGS) go into `values`, raw, as `parse_dataset` reads them. Raises Unwalkable.

    Elements of defined length are read with one unpack each (this runs for every received image,
    between its first fragment and its reply); undefined lengths go through `_skip_element`."""
    pos = start
    n = len(data)
    wanted = HEADER_TAGS if values is not None else ()
    unpack_implicit, unpack_explicit = _IMPLICIT_ELEMENT.unpack_from, _EXPLICIT_ELEMENT.unpack_from
    while True:
        if pos + 8 > n:
            return None, pos
        if implicit:
            group, element, length = unpack_implicit(data, pos)
            value_at = pos + 8
        else:
            group, element, vr, length = unpack_explicit(data, pos)
        tag = group << 16 | element
        if group == 0x7FE0 and tag in _PIXEL_TAGS:
            return pos, pos
        if not implicit:
            if vr in _LONG_VRS:
                if pos + 12 > n:
                    return None, pos
                (length,) = _UL.unpack_from(data, pos + 8)
                value_at = pos + 12
            elif vr.isalpha() and vr.isupper():
                value_at = pos + 8
            else:
                raise Unwalkable(f"no VR at offset {pos}")
        if length == 0xFFFFFFFF:
            end = _skip_element(data, pos, implicit)
            if end is None:
                return None, pos
        else:
            end = value_at + length
            if end > n:
                return None, pos
            if tag in wanted:
                values[tag] = bytes(data[value_at:end])  # type: ignore[index]  # wanted is empty without values
        pos = end


def _skip_element(data: bytes | bytearray, pos: int, implicit: bool) -> int | None:
    n = len(data)
    vr = b""
    if implicit:
        if pos + 8 > n:
            return None
        (length,) = struct.unpack_from("<L", data, pos + 4)
        start = pos + 8
    else:
        if pos + 8 > n:
            return None
        vr = bytes(data[pos + 4:pos + 6])
        if vr in _LONG_VRS:
            if pos + 12 > n:
                return None
            (length,) = struct.unpack_from("<L", data, pos + 8)
            start = pos + 12
        elif vr.isalpha() and vr.isupper():
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        else:
            raise Unwalkable(f"no VR at offset {pos}")
    if length != 0xFFFFFFFF:
        end = start + length
        return end if end <= n else None
    if not implicit and vr not in (b"SQ", b"UN", b"OB", b"OW"):
        raise Unwalkable(f"undefined length with VR {vr!r}")
    return _skip_items(data, start, implicit or vr == b"UN")


def _skip_items(data: bytes | bytearray, pos: int, implicit: bool) -> int | None:
    """Items (or fragments) up to and past the sequence delimiter."""
    n = len(data)
    while True:
        if pos + 8 > n:
            return None
        group, element, length = struct.unpack_from("<HHL", data, pos)
        tag = group << 16 | element
        if tag == 0xFFFEE0DD:
            return pos + 8
        if tag != 0xFFFEE000:
            raise Unwalkable(f"no item at offset {pos}")
        if length != 0xFFFFFFFF:
            pos += 8 + length
            if pos > n:
                return None
            continue
        pos += 8
        while True:  # an item of undefined length: elements up to the item delimiter
            if pos + 8 > n:
                return None
            group, element = struct.unpack_from("<HH", data, pos)
            if (group << 16 | element) == 0xFFFEE00D:
                pos += 8
                break
            end = _skip_element(data, pos, implicit)
            if end is None:
                return None
            pos = end


def _walkable(transfer_syntax: str) -> bool:
    """Little endian and not deflated: the header can be found as the bytes come."""
    if transfer_syntax in (_IMPLICIT_LE, _EXPLICIT_LE):
        return True
    try:
        uid = UID(transfer_syntax)
        return bool(uid.is_transfer_syntax and uid.is_encapsulated and uid.is_little_endian
                    and not uid.is_deflated)
    except Exception:  # noqa: BLE001 - a syntax pydicom does not know: kept whole
        return False


# --------------------------------------------------------------------------------------------
# One C-STORE on the lean path


@dataclass
class _Message:
    request: StoreRequest
    context_id: int
    transfer_syntax: str
    handler: ReceiveHandler
    sender_ae: str
    peer: str
    received_at: float
    nbytes: int = 0  # data set bytes received
    head: bytearray | None = field(default_factory=bytearray)  # until the stream opens
    scan: int = 0  # where the header walk resumes
    values: dict[int, bytes] = field(default_factory=dict)  # the header elements the walk found
    walk: bool = True  # False: keep the whole data set in memory (deflated, big endian, unwalkable)
    stream: ArchiveStream | None = None
    error: BaseException | None = None  # storing failed: the rest is read and dropped, then refused


class BulkReader:
    """The lean reader of one association's socket (see the module doc); runs on its DUL thread."""

    def __init__(self, dul: "BulkDUL") -> None:
        self.dul = dul
        self.assoc = dul.assoc
        self.active = False
        self.wanted = True
        self.refused = False  # a PDU was refused: nothing more is read
        self.acceptor = bool(self.assoc.is_acceptor)
        self.announced = 0  # the maximum PDU length we announced (set on activation)
        self.commands = CommandSetBound()  # command fragments handed to pynetdicom (our SCP: bounded)
        self.buf = bytearray()  # allocated on activation
        self.view = memoryview(self.buf)
        self.lo = self.hi = 0
        self.more = False  # a complete unit may wait in the buffer (no socket read needed)
        self.last_data = time.monotonic()
        self.message: _Message | None = None
        self.pdu_left = 0  # bytes left of the P-DATA-TF PDU being streamed
        self.pdv_left = 0  # bytes left of the current data fragment
        self.pdv_last = False
        self.skip = 0  # bytes to pass over (fragments after a message's last one, in its PDU)
        self.taken = 0  # C-STOREs taken (tests and benchmarks read it)
        self.responses = 0  # pending C-GET / C-MOVE responses taken
        # (message ID, sink): pending responses to that request go to sink(response) on this thread
        # instead of the DIMSE queue, when it returns True (`sink_pending`)
        self.pending_sink: tuple[int, Callable[[PendingResponse], bool]] | None = None
        # seconds to let further pending responses gather after one went to the sink (a C-MOVE's:
        # its association carries nothing else), and whether one just did
        self.gather = 0.0
        self.gathering = False
        # the C-FIND whose pending responses are read here (`take_find_responses`): its message ID,
        # and a response whose identifier continues in the next PDU (context ID, response, bytes)
        self.find_id: int | None = None
        self.find_message: tuple[int, FindPending, bytearray] | None = None
        self.find_taken = 0  # pending C-FIND responses taken (tests read it)
        self.wake_pending = False  # a waiting reader is to be woken after our Evt19 (`_invalid`)
        self._contexts: dict[tuple[int, str], str | None] = {}
        self._activity = activity_of(self.assoc)
        self._server_activity: LinkActivity | None = None  # our SCP's byte count (set on activation)

    def activate(self) -> bool:
        """Whether to take over the socket's reads, now that the association is established:
        on our SCP's associations, and on those we requested that accept us as storage SCP (a
        C-GET's), a C-MOVE model (their pending responses: `_take_response`) or a C-FIND model
        (`_take_find`). A C-STORE association of ours keeps pynetdicom's reads."""
        if not self.wanted:
            return False
        assoc = self.assoc
        if assoc.is_requestor and not any(cx.as_scp or str(cx.abstract_syntax) in _RETRIEVE_MODELS
                                          or str(cx.abstract_syntax) in _FIND_MODELS
                                          for cx in assoc.accepted_contexts):
            self.wanted = False
            return False
        local = assoc.acceptor if assoc.is_acceptor else assoc.requestor
        self.acceptor = bool(assoc.is_acceptor)
        self.announced = int(local.maximum_length or 0)
        self._server_activity = getattr(getattr(assoc, "_server", None), "link_activity", None)
        self.buf = bytearray(BUFFER)
        self.view.release()
        self.view = memoryview(self.buf)
        self.active = True
        return True

    # ---- reading

    def pump(self) -> None:
        """Act on what is buffered, read what the socket has, act on it; in the middle of a
        C-STORE, go on reading here (a DUL loop turn per read costs more than the read) until it
        is whole, the socket stays silent for IDLE, or the DUL has something else to do (a
        primitive to send, such as an abort; its end)."""
        dul = self.dul
        fresh = False  # bytes were read in this call (and acted on)
        while True:
            if self._process() == DELIVERED:
                return
            if fresh and (self.message is None or dul._kill_thread or dul.to_provider_queue.queue):
                return  # the DUL loop's turn: it sends what is queued (a C-CANCEL, an abort) at once
            got = self._recv()
            if got < 0:
                self._closed()
                return
            if got:
                fresh = True
                if self.message is not None:
                    dul._idle_timer.restart()  # bytes came: the network timeout counts from here
                continue
            if self.message is None or dul._kill_thread or dul.to_provider_queue.queue or not self._wait():
                return

    def _wait(self) -> bool:
        """Whether the socket became readable within IDLE."""
        raw = getattr(self.dul.socket, "socket", None)
        if raw is None:
            return False
        if isinstance(raw, ssl.SSLSocket) and raw.pending():
            return True
        try:
            readable, _, _ = select.select([raw], [], [], IDLE)
        except (OSError, ValueError):
            return False
        return bool(readable)

    def _recv(self) -> int:
        """Read what the socket holds without waiting for more: bytes read, 0 for none yet, -1
        when the connection is closed."""
        sock = self.dul.socket
        raw = getattr(sock, "socket", None)
        if raw is None or self.refused:
            return -1
        if self.lo == self.hi:
            self.lo = self.hi = 0
            if len(self.buf) > BUFFER:  # back to the usual size after an oversized PDU
                self._resize(BUFFER)
        if len(self.buf) - self.hi < _MIN_ROOM:
            if self.lo:
                size = self.hi - self.lo
                self.buf[:size] = self.buf[self.lo:self.hi]
                self.lo, self.hi = 0, size
            if len(self.buf) - self.hi < _MIN_ROOM:
                self._resize(len(self.buf) * 2)
        target = self.view[self.hi:]
        try:
            if isinstance(raw, ssl.SSLSocket):
                if not raw.pending():
                    readable, _, _ = select.select([raw], [], [], 0)
                    if not readable:
                        return 0
                got = raw.recv_into(target)
            else:
                got = raw.recv_into(target, len(target), socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError, socket.timeout, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0
        except (OSError, ValueError):
            return -1
        finally:
            del target
        if not got:
            return -1
        self.hi += got
        self.last_data = time.monotonic()
        self._activity.received(got)
        if self._server_activity is not None:
            self._server_activity.received(got)
        if self.message is not None:
            self.message.handler.last_activity = self.last_data
        return got

    def _resize(self, size: int) -> None:
        self.view.release()
        if size > len(self.buf):
            self.buf.extend(bytes(size - len(self.buf)))
        else:
            del self.buf[size:]
        self.view = memoryview(self.buf)

    def _closed(self) -> None:
        """The connection closed (or failed): what pynetdicom's reader says then, Evt17."""
        self._drop("the connection closed")
        self.lo = self.hi = 0
        self.more = False
        self.dul.event_queue.put("Evt17")

    # ---- acting on what is buffered

    def _process(self) -> str:
        """Stream C-STORE data, start lean messages, or hand one complete PDU to pynetdicom
        (DELIVERED: one event queued, the DUL loop runs it before the next call)."""
        segments: list[memoryview] = []
        self.more = False
        if self.message is not None and self.dul.state_machine.current_state in ("Sta1", "Sta13"):
            self._drop("the association is ending")  # pynetdicom ignores P-DATA from here on
        try:
            while True:
                avail = self.hi - self.lo
                message = self.message
                if message is not None and (self.pdv_left or self.pdu_left):
                    if self.pdv_left:
                        n = min(self.pdv_left, avail)
                        if not n:
                            return NEED
                        self._data(message, segments, self.lo, n)
                        self.lo += n
                        self.pdv_left -= n
                        self.pdu_left -= n
                        if not self.pdv_left and self.pdv_last:
                            self._complete(message, segments)
                        continue
                    if avail < 6:
                        return NEED
                    length, context_id, control = _PDV_HEADER.unpack_from(self.buf, self.lo)
                    if length < 2 or length + 4 > self.pdu_left or context_id != message.context_id or control & 1:
                        return self._malformed(segments)
                    self.lo += 6
                    self.pdu_left -= 6
                    self.pdv_left, self.pdv_last = length - 2, bool(control & 2)
                    if not self.pdv_left and self.pdv_last:
                        self._complete(message, segments)
                    continue
                if self.skip:
                    n = min(self.skip, avail)
                    if not n:
                        return NEED
                    self.lo += n
                    self.skip -= n
                    continue
                if avail < 6:
                    return NEED
                pdu_type, length = _PDU_HEADER.unpack_from(self.buf, self.lo)
                limit = self._limit(pdu_type)
                if limit is not None and length > limit:
                    return self._refuse(pdu_type, length, limit, segments)
                if pdu_type == 0x04 and message is not None:
                    self.lo += 6
                    self.pdu_left = length
                    continue
                if message is not None:  # another PDU in the middle of a C-STORE: it ends it
                    self._flush(message, segments)
                    self._drop(f"PDU type 0x{pdu_type:02X} arrived in the middle of its data set")
                if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
                    # pynetdicom's reader: Evt19 at the header (what follows is not read as PDUs)
                    self.lo = self.hi = 0
                    self._invalid()
                    return DELIVERED
                if avail < 6 + length:  # _recv makes room as the bytes come (compacts, then grows)
                    return NEED
                if self.find_message is not None:
                    if pdu_type != 0x04:  # an abort, a release...: the response never completes
                        self.find_message = None
                        log.info("a C-FIND response was dropped: PDU type 0x%02X arrived in the middle of it", pdu_type)
                    elif not self._find_continued(self.lo, 6 + length):
                        self.find_message = None
                        self.lo = self.hi = 0
                        self._invalid()  # a malformed P-DATA-TF
                        return DELIVERED
                    else:
                        continue
                if pdu_type == 0x04 and (self._take(self.lo, 6 + length) or self._take_response(self.lo, 6 + length)
                                         or self._take_find(self.lo, 6 + length)):
                    continue
                pdu = self.buf[self.lo:self.lo + 6 + length]
                if pdu_type == 0x04 and self.acceptor and not self.commands.fits(memoryview(pdu)[6:]):
                    return self._refuse_command_set(segments)
                self.lo += 6 + length
                self._deliver(pdu)
                self.more = self.hi > self.lo
                return DELIVERED
        finally:
            if self.message is not None:
                self._flush(self.message, segments)
            segments.clear()

    def _limit(self, pdu_type: int) -> int | None:
        """On our SCP, the longest PDU body read (as core.dicom.server's acceptor socket reads
        before the association is established): a P-DATA-TF up to the maximum length we announced
        (PS3.8 D.1; none when we announced 0) plus slack for a peer counting the header in, any
        other PDU up to 1 MiB. A peer cannot make us buffer gigabytes."""
        if not self.acceptor:
            return None
        return pdu_limit(pdu_type, self.announced)

    def _refuse(self, pdu_type: int, length: int, limit: int, segments: list[memoryview], what: str = "") -> str:
        """A PDU longer than we accept (or `what` else): A-ABORT (service provider, invalid PDU
        parameter value), the connection hung up, nothing more read; pynetdicom sees the transport
        closed (Evt17)."""
        message = self.message
        if message is not None:
            segments.clear()
        self._drop("a PDU longer than accepted arrived")
        if what:
            log.warning("%s sent %s: association aborted", self.assoc.requestor.address, what)
        else:
            log.warning("%s sent a PDU of type 0x%02X and %d bytes, more than the %d we accept: association aborted",
                        self.assoc.requestor.address, pdu_type, length, limit)
        abort_and_shut(getattr(self.dul.socket, "socket", None), ABORT_INVALID_PARAMETER)
        self.refused = True
        self.lo = self.hi = 0
        self.dul.event_queue.put("Evt17")
        return DELIVERED

    def _refuse_command_set(self, segments: list[memoryview]) -> str:
        """A command set going on past limits.MAX_COMMAND_SET (pynetdicom would buffer it without
        end): refused as a PDU longer than we accept is."""
        return self._refuse(0x04, self.commands.pending, MAX_COMMAND_SET, segments,
                            what=f"a DIMSE command set of more than {MAX_COMMAND_SET} bytes")

    def _deliver(self, pdu: bytearray) -> None:
        """One complete PDU to pynetdicom, as its `_read_pdu_data` would have queued it."""
        dul = self.dul
        try:
            decoded, event = dul._decode_pdu(pdu)
        except Exception:  # noqa: BLE001 - pynetdicom's reading of a PDU it cannot decode: Evt19
            log.error("Unable to decode the received PDU data")
            self._invalid()
            return
        dul.event_queue.put(event)
        dul._recv_pdu.put(decoded)

    def _malformed(self, segments: list[memoryview]) -> str:
        """A P-DATA-TF that breaks the rules in the middle of a C-STORE: Evt19 (A-ABORT)."""
        message = self.message
        if message is not None:
            self._flush(message, segments)
        self._drop("a malformed P-DATA-TF PDU arrived")
        self.lo = self.hi = 0
        self._invalid()
        return DELIVERED

    def _invalid(self) -> None:
        """Evt19 (an invalid PDU): pynetdicom's state machine sends A-ABORT (AA-8). AA-8 does not
        wake a thread of ours waiting for a response on this association, as an abort from the
        peer does (AA-2/3/4): it would wait out the whole DIMSE timeout. So, once the state
        machine has left Sta6, the reader is woken as those do (`wake_after_abort`)."""
        self.dul.event_queue.put("Evt19")
        if not self.acceptor:
            self.wake_pending = True

    def wake_after_abort(self) -> None:
        """After an Evt19 of ours: once the association is no longer established (Sta6), an empty
        message on the DIMSE queue, what pynetdicom's own aborts put there (AA-2/3/4)."""
        if self.wake_pending and self.dul.state_machine.current_state != "Sta6":
            self.wake_pending = False
            self.assoc.dimse.msg_queue.put((None, None))

    # ---- starting a lean message

    def _between_messages(self) -> bool:
        """Whether a message may start on the lean path: established (Sta6), not releasing,
        pynetdicom neither assembling a message nor holding an event to run."""
        dul, assoc = self.dul, self.assoc
        return (assoc.dimse.message is None and not dul.event_queue.qsize() and bool(assoc.is_established)
                and not assoc._sent_release and dul.state_machine.current_state == "Sta6")

    def _command_in(self, pos: int, end: int) -> tuple[bytearray, int, int] | None:
        """The command set whose fragments start at `pos` and end within the PDU ending at `end`
        (one context): (its bytes, the context ID, where the PDU goes on); None otherwise."""
        buf = self.buf
        command = bytearray()
        context_id = -1
        while True:
            if pos + 6 > end:
                return None
            length, cid, control = _PDV_HEADER.unpack_from(buf, pos)
            if length < 2 or pos + 4 + length > end or not control & 1 or (context_id >= 0 and cid != context_id):
                return None
            context_id = cid
            command += buf[pos + 6:pos + 4 + length]
            pos += 4 + length
            if control & 2:
                return command, context_id, pos

    def _take(self, start: int, size: int) -> bool:
        """Whether the P-DATA-TF PDU at `start` begins a C-STORE the lean path takes; if so, its
        command is consumed and the reader positioned on the PDU's next fragment."""
        assoc = self.assoc
        if not self._between_messages():
            return False
        handler = self._handler()
        if handler is None:
            return False
        found = self._command_in(start + 6, start + size)
        if found is None:
            return False
        command, context_id, pos = found
        end = start + size
        request = decode_store_request(command)
        if request is None:
            return False
        transfer_syntax = self._storage_syntax(context_id, request.sop_class_uid)
        if transfer_syntax is None:
            return False
        sender_ae, peer = sender_of(assoc)
        now = time.time()
        message = _Message(request, context_id, transfer_syntax, handler, sender_ae, peer, now)
        message.walk = _walkable(transfer_syntax)
        self.message = message
        self.pdu_left, self.pdv_left, self.pdv_last = end - pos, 0, False
        self.lo = pos
        handler.last_activity = time.monotonic()
        self.taken += 1
        return True

    def _take_response(self, start: int, size: int) -> bool:
        """Whether the P-DATA-TF PDU at `start` is a pending C-GET or C-MOVE response (one command
        fragment, the whole message) on an association we requested; if so its primitive goes on
        the DIMSE queue, as pynetdicom's state machine (DT-2) and DIMSE provider would put it
        there after decoding the command set with pydicom, and the reader moves past it.

        One goes out per C-STORE sub-operation: pynetdicom's path costs more CPU than the lean
        C-STORE before it, and the decoding competes for the GIL with the next image's arrival."""
        assoc = self.assoc
        if self.acceptor or not self._between_messages():
            return False
        buf, pos, end = self.buf, start + 6, start + size
        if pos + 6 > end:
            return False
        length, context_id, control = _PDV_HEADER.unpack_from(buf, pos)
        if control & 3 != 3 or length < 2 or pos + 4 + length != end:
            return False
        response = decode_retrieve_pending(bytes(buf[pos + 6:end]))
        if response is None:
            return False
        self.lo = end
        self.responses += 1
        sink = self.pending_sink
        if sink is not None and sink[0] == response.message_id:
            try:
                if sink[1](response):
                    self.gathering = self.gather > 0
                    return True
            except Exception:  # noqa: BLE001 - the requestor then reads it as it would have
                log.exception("error in the pending-response sink of the lean path")
        primitive = response.primitive()
        primitive._context_id = context_id
        assoc.dimse.msg_queue.put((context_id, primitive))
        return True

    def _take_find(self, start: int, size: int) -> bool:
        """Whether the P-DATA-TF PDU at `start` begins a pending response to the C-FIND being read
        here (`find_id`) whose command set is whole in it; if so it is consumed, and the response,
        once its identifier is whole, goes on the DIMSE queue as a `FindPending` with the
        identifier's bytes: no PDU objects, no state machine turn, no pydicom decoding of the
        command set, no fragments joined twice. One arrives per match: 5,000 for a broad query."""
        if self.find_id is None or self.acceptor or not self._between_messages():
            return False
        found = self._command_in(start + 6, start + size)
        if found is None:
            return False
        command, context_id, pos = found
        end = start + size
        response = decode_find_pending(command)
        if response is None or response.message_id != self.find_id:
            return False
        data = bytearray()
        whole = self._find_fragments(pos, end, context_id, data)
        if whole is None:
            return False  # malformed: pynetdicom's reading decides
        self.lo = end
        if whole:
            self._found(context_id, response, data)
        else:
            self.find_message = (context_id, response, data)
        return True

    def _find_fragments(self, pos: int, end: int, context_id: int, data: bytearray) -> bool | None:
        """The data fragments from `pos` to the PDU's `end` appended to `data`: whether the last one
        was among them (nothing may follow it), None for a malformed PDU (a command fragment,
        another context, a fragment past the PDU)."""
        buf = self.buf
        while pos < end:
            if pos + 6 > end:
                return None
            length, cid, control = _PDV_HEADER.unpack_from(buf, pos)
            if length < 2 or pos + 4 + length > end or control & 1 or cid != context_id:
                return None
            data += buf[pos + 6:pos + 4 + length]
            pos += 4 + length
            if control & 2:
                return True if pos == end else None
        return False

    def _find_continued(self, start: int, size: int) -> bool:
        """The P-DATA-TF PDU at `start` continues the identifier of `find_message`; False when it
        is malformed (the caller raises Evt19)."""
        assert self.find_message is not None
        context_id, response, data = self.find_message
        whole = self._find_fragments(start + 6, start + size, context_id, data)
        if whole is None:
            log.warning("a malformed P-DATA-TF arrived in the middle of a C-FIND response")
            return False
        self.lo = start + size
        if whole:
            self.find_message = None
            self._found(context_id, response, data)
        return True

    def _found(self, context_id: int, response: FindPending, data: bytearray) -> None:
        self.find_taken += 1
        taken = FindPending(response.message_id, response.status, response.sop_class_uid, bytes(data))
        self.assoc.dimse.msg_queue.put((context_id, taken))  # type: ignore[arg-type]  # read by core.dicom.find

    def _handler(self) -> ReceiveHandler | None:
        try:
            bound = self.assoc.get_handlers(evt.EVT_C_STORE)
        except Exception:  # noqa: BLE001 - pynetdicom's business then
            return None
        if isinstance(bound, tuple) and len(bound) == 2 and isinstance(bound[0], ReceiveHandler) and not bound[1]:
            return bound[0]
        return None

    def _storage_syntax(self, context_id: int, sop_class: str) -> str | None:
        """The transfer syntax of the context pynetdicom would store this C-STORE on with our
        handler; None when it would do anything else with it (a refusal 0x0122, an abort...)."""
        key = (context_id, sop_class)
        if key in self._contexts:
            return self._contexts[key]
        found: str | None = None
        assoc = self.assoc
        try:
            if assoc.is_requestor:  # Association._c_store_scp
                context = assoc._get_valid_context(sop_class, "", "scp", context_id=context_id)
                found = str(context.transfer_syntax[0])
            else:  # Association._serve_request, StorageServiceClass
                class_uid = sop_class
                try:
                    class_uid = assoc.acceptor.accepted_common_extended[UID(sop_class)][0]
                except KeyError:
                    pass
                storage = pynetdicom_config.UNRESTRICTED_STORAGE_SERVICE or \
                    uid_to_service_class(class_uid) is StorageServiceClass
                accepted = assoc._accepted_cx.get(context_id)
                if storage and accepted is not None:
                    found = str(accepted.transfer_syntax[0])
        except Exception:  # noqa: BLE001 - no such context, or not ours: pynetdicom answers it
            found = None
        self._contexts[key] = found
        return found

    # ---- the data set

    def _data(self, message: _Message, segments: list[memoryview], start: int, n: int) -> None:
        message.nbytes += n
        if message.error is not None:
            return
        if message.stream is not None:
            segments.append(self.view[start:start + n])
            return
        head = message.head
        assert head is not None
        head += self.view[start:start + n]
        if not message.walk:
            return
        implicit = message.transfer_syntax == _IMPLICIT_LE
        try:
            end, message.scan = header_end(head, message.scan, implicit, message.values)
        except Unwalkable:
            message.walk = False  # kept whole: `store` reads it (or refuses it) as it does today
            return
        if end is None:
            return
        try:
            message.stream = message.handler.archive.open_stream(
                head, end, message.transfer_syntax, sop_class_uid=message.request.sop_class_uid,
                sop_instance_uid=message.request.sop_instance_uid, source_ae=message.sender_ae,
                received_at=message.received_at,
                on_indexed=message.handler.indexed_callback(message.sender_ae, message.peer),
                header=RawHeader(message.values))
        except Exception as exc:  # noqa: BLE001 - refused once the data set is read (ReceiveHandler.refused)
            message.error = exc
        message.head = None

    def _flush(self, message: _Message, segments: list[memoryview]) -> None:
        """Write the fragments gathered from the buffer before it moves."""
        if not segments:
            return
        stream = message.stream
        if stream is not None and message.error is None:
            try:
                stream.write(segments)
            except Exception as exc:  # noqa: BLE001 - a full disk: refused at the end (ReceiveHandler.refused)
                message.error = exc
                message.stream = None
                stream.abandon()
        segments.clear()

    def _complete(self, message: _Message, segments: list[memoryview]) -> None:
        """The last fragment is in: store, reply, and pass over what follows it in this PDU."""
        self._flush(message, segments)
        self.message = None
        self.skip, self.pdu_left, self.pdv_left = self.pdu_left, 0, 0
        stream, message.stream = message.stream, None
        after: Callable[[], None] | None = None
        try:
            status, after = self._store(message, stream)
        except Exception:  # noqa: BLE001 - as pynetdicom answers a handler that raised: 0xC211
            log.exception("error in the C-STORE handler of the lean path")
            if stream is not None:
                stream.abandon()
            status = _HANDLER_FAILED
        try:
            self._reply(message, status)
        finally:
            if after is not None:
                after()

    def _store(self, message: _Message, stream: ArchiveStream | None
               ) -> tuple[int | Dataset, Callable[[], None] | None]:
        """Commit what was streamed (or store what was kept whole): the status ReceiveHandler
        gives, and what is left to do once the reply is out (batched: the hand-over to the
        committer and the counting, so that the threads they wake do not take the GIL from the
        reply)."""
        handler = message.handler
        request = message.request
        if message.error is not None:
            return handler.refused(message.error, message.sender_ae, request.sop_instance_uid), None
        batched = handler.batched_for(message.sender_ae, request.move_originator, request.move_message_id)
        if stream is not None:
            try:
                if not batched:
                    stored = stream.commit()
                    return handler.accepted(stored, message.nbytes, message.sender_ae), None
                stored, hand_over = stream.commit_later()  # a C-GET, our own C-MOVE: reply once written
            except Exception as exc:  # noqa: BLE001 - refused (ReceiveHandler.refused)
                return handler.refused(exc, message.sender_ae, request.sop_instance_uid), None

            def after() -> None:
                try:
                    hand_over()
                finally:
                    handler.accepted(stored, message.nbytes, message.sender_ae)

            return SUCCESS, after
        assert message.head is not None
        return handler.store_bytes(self.assoc, bytes(message.head), message.transfer_syntax,
                                   request.sop_class_uid, request.sop_instance_uid, batched=batched), None

    def _drop(self, why: str) -> None:
        message, self.message = self.message, None
        self.pdu_left = self.pdv_left = self.skip = 0
        if message is None:
            return
        stream, message.stream = message.stream, None
        if stream is not None:
            stream.abandon()
        log.info("a C-STORE from %s was dropped: %s", message.sender_ae, why)

    def _reply(self, message: _Message, status: int | Dataset) -> None:
        if isinstance(status, Dataset):
            code, comment = int(status.Status), str(status.get("ErrorComment", "") or "")
        else:
            code, comment = int(status), ""
        assoc, dul = self.assoc, self.dul
        if not assoc.is_established:  # pynetdicom's storage SCP sends nothing then either
            return
        limit = assoc.acceptor.maximum_length if assoc.is_requestor else assoc.requestor.maximum_length
        try:
            command = encode_store_response(message.request, code, comment)
        except UnicodeEncodeError:
            command = b""
        pdu = p_data_tf(message.context_id, command) if command else b""
        sock = dul.socket
        if pdu and sock is not None and (not limit or len(pdu) - 6 <= limit) and not dul.to_provider_queue.queue:
            sock.send(pdu)  # what DT-1 would send; nothing else is queued to go before it
            return
        # behind what is queued, or fragmented for a small PDU limit: pynetdicom sends it
        rsp = C_STORE()
        rsp.MessageIDBeingRespondedTo = message.request.message_id
        rsp.AffectedSOPClassUID = message.request.sop_class_uid
        rsp.AffectedSOPInstanceUID = message.request.sop_instance_uid
        rsp.Status = code
        if comment:
            rsp.ErrorComment = comment  # type: ignore[assignment]  # pynetdicom's property takes str (typed None)
        assoc.dimse.send_msg(rsp, message.context_id)

    def close(self) -> None:
        """The DUL thread ends: drop an unfinished C-STORE."""
        self._drop("the association ended")


class BulkDUL(ResponsiveDUL):
    """A ResponsiveDUL whose socket reads, once the association is established, go through a
    BulkReader (the module doc)."""

    _bulk: BulkReader

    def run(self) -> None:
        try:
            super().run()
        finally:
            reader = self._bulk
            if reader.wake_pending:
                reader.wake_pending = False
                self.assoc.dimse.msg_queue.put((None, None))
            reader.close()

    def _read_pdu_data(self) -> None:
        reader = self._bulk
        if not reader.active:
            if self.state_machine.current_state != "Sta6" or not reader.activate():
                super()._read_pdu_data()
                return
        reader.pump()

    def _is_transport_event(self) -> bool:
        reader = self._bulk
        if reader.wake_pending:
            reader.wake_after_abort()
        if reader.more:
            reader.pump()
            return True
        return super()._is_transport_event()

    def _idle_wait(self) -> None:
        reader = self._bulk
        if reader.more:
            return
        if reader.gathering:  # a pending response went to the sink: let the next ones gather
            reader.gathering = False
            self._pause(reader.gather)
        super()._idle_wait()


class _DULTime:
    """What pynetdicom.dul sees as its `time` module (installed below): the same, but for one call.
    Its DUL loop calls `time.sleep(self._run_loop_delay)` at the top of every turn that found no
    event; responsive.ResponsiveDUL sets that delay to 0, which makes it a GIL yield. On a thread
    reading on the lean path that yield handed the GIL to whichever thread was waiting for it at
    every PDU, and taking it back cost more than the PDU: a quarter of the receiving thread's time
    in a C-GET of 500 images was spent on that line (py-spy, wall samples). There the yield is
    skipped; the thread still lets go of the GIL in every read, write and select(), and after the
    interpreter's switch interval. Every other caller sleeps as before."""

    _sleep = staticmethod(time.sleep)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        if seconds == 0:
            thread = threading.current_thread()
            if isinstance(thread, BulkDUL) and thread._bulk.active:
                return
        self._sleep(seconds)


pynetdicom_dul.time = _DULTime()  # type: ignore[assignment]  # a module stand-in (see _DULTime)


def enable(assoc: Any) -> Any:
    """Give `assoc` the lean receive path: call after `responsive.make_responsive`, before its
    threads start. Does nothing when the lean path is off, or to an association that is not
    responsive (a C-FIND's, a test double)."""
    if not ENABLED:
        return assoc
    dul = getattr(assoc, "dul", None)
    if type(dul) is not ResponsiveDUL or dul.is_alive():
        return assoc
    dul.__class__ = BulkDUL
    reader = BulkReader(dul)  # type: ignore[arg-type]  # its class was just swapped (above)
    dul._bulk = reader  # type: ignore[attr-defined]  # set on the swapped instance
    _time_dimse_from_last_byte(assoc, reader)
    return assoc


def _time_dimse_from_last_byte(assoc: Any, reader: BulkReader) -> None:
    """pynetdicom waits `dimse_timeout` for the next DIMSE message on its queue; C-STOREs the
    lean path takes never reach it, so a C-GET whose PACS sends no pending responses would time
    out while images arrive. The wait is counted from the last byte read instead."""
    dimse = assoc.dimse
    messages = dimse.msg_queue
    original = dimse.get_msg

    def get_msg(block: bool = False) -> Any:
        timeout = dimse.dimse_timeout
        if not block or timeout is None or not reader.active:
            return original(block)
        wait = timeout
        while True:
            try:
                return messages.get(block=True, timeout=wait)
            except queue.Empty:
                pass
            idle = time.monotonic() - reader.last_data
            if idle >= timeout:
                return None, None
            wait = timeout - idle

    dimse.get_msg = get_msg


def _reader_of(assoc: Any) -> BulkReader | None:
    """The lean reader of `assoc`, None when the lean path is not on it."""
    reader = getattr(getattr(assoc, "dul", None), "_bulk", None)
    return reader if isinstance(reader, BulkReader) else None


def sink_pending(assoc: Any, message_id: int, sink: Callable[[PendingResponse], bool], *,
                 gather: float = 0.0) -> Callable[[], None]:
    """Hand the pending responses to request `message_id` on `assoc` to `sink(response)`, called
    on the association's DUL thread as each arrives, instead of queueing them for pynetdicom's
    response generator (which then sees only the final response); a response the sink refuses
    (returns False) is queued as before. Without the lean path, does nothing. Returns the function
    that stops it (call before reading the final status).

    The requestor thread then sleeps through the transfer instead of waking for every
    sub-operation: one thread less contending for the GIL with the one receiving the images.

    `gather`: after a response went to the sink, the DUL thread waits that long before it reads
    again (unless something is to be sent, a C-CANCEL, or it is told to end), so that the next
    ones come in one read: for a C-MOVE, whose association carries nothing but these responses
    while our listener's thread receives the images, one wake-up per few dozen sub-operations
    instead of one per sub-operation. Never for a C-GET: its images come on the same association."""
    reader = _reader_of(assoc)
    if reader is None:
        return lambda: None
    entry = (message_id, sink)
    reader.pending_sink = entry
    reader.gather = max(0.0, gather)

    def stop() -> None:
        if reader.pending_sink is entry:
            reader.pending_sink = None
            reader.gather, reader.gathering = 0.0, False

    return stop


def take_find_responses(assoc: Any, message_id: int) -> Callable[[], None]:
    """Read the pending responses to C-FIND `message_id` on `assoc` on the lean path: each goes
    on the DIMSE queue as a `FindPending` (its identifier as bytes) in place of pynetdicom's
    C_FIND primitive; final responses, and anything the lean path does not take, are pynetdicom's
    as before. Without the lean path, does nothing. Returns the function that stops it."""
    reader = _reader_of(assoc)
    if reader is None:
        return lambda: None
    reader.find_id = message_id

    def stop() -> None:
        if reader.find_id == message_id:
            reader.find_id = None

    return stop


def taken(assoc: Any) -> int:
    """How many C-STOREs the lean path took on `assoc` (0 when it is not on)."""
    reader = _reader_of(assoc)
    return reader.taken if reader is not None else 0


__all__ = [
    "ENABLED",
    "BulkDUL",
    "BulkReader",
    "FindPending",
    "StoreRequest",
    "Unwalkable",
    "PendingResponse",
    "decode_find_pending",
    "decode_retrieve_pending",
    "decode_store_request",
    "enable",
    "encode_store_response",
    "header_end",
    "lean_find",
    "p_data_tf",
    "sink_pending",
    "take_find_responses",
    "taken",
]
