"""What our SCP reads from a peer at most, in one place for both readers of an accepted connection
(core.dicom.server's acceptor socket before the association is established, core.dicom.bulkreceive
after): a PDU longer than we accept is refused after its header, and a DIMSE command set whose
fragments go on without end is refused once it passes `MAX_COMMAND_SET`, so that a peer cannot make
us buffer gigabytes."""

from __future__ import annotations

import struct

MAX_CONTROL_PDU = 1 << 20  # bytes: any PDU but P-DATA-TF (an A-ASSOCIATE-RQ with 128 contexts is far below)
MAX_COMMAND_SET = 1 << 16  # bytes: a DIMSE command set is a few hundred
P_DATA_SLACK = 1024  # bytes over the announced maximum still read (a peer counting the header in)

# A-ABORT, source: service provider, reason: invalid PDU parameter value
ABORT_INVALID_PARAMETER = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x06])

_PDV_HEADER = struct.Struct(">LBB")  # item length, presentation context ID, message control header


def pdu_limit(pdu_type: int, announced: int) -> int | None:
    """The longest body of a PDU of `pdu_type` we read: a P-DATA-TF up to the maximum length we
    announced (PS3.8 D.1; none when we announced 0, unlimited) plus the slack; any other
    `MAX_CONTROL_PDU`."""
    if pdu_type == 0x04:
        return announced + P_DATA_SLACK if announced else None
    return MAX_CONTROL_PDU


class CommandSetBound:
    """Counts the command fragments of the P-DATA-TF bodies of one association: `fits(body)` is
    False once a command set goes past `MAX_COMMAND_SET` before a fragment says it is the last
    (pynetdicom would buffer them without end)."""

    def __init__(self) -> None:
        self.pending = 0  # command bytes since the last command set ended

    def fits(self, body: bytes | bytearray | memoryview) -> bool:
        offset = 0
        while offset + 6 <= len(body):
            length, _, control = _PDV_HEADER.unpack_from(body, offset)
            if control & 0x01:
                self.pending += max(0, length - 2)
                if self.pending > MAX_COMMAND_SET:
                    return False
                if control & 0x02:
                    self.pending = 0
            offset += 4 + length
        return True
