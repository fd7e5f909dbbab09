"""The lean receive path (core.dicom.bulkreceive) against pynetdicom's own: the same files, the
same statuses, the same answers to A-ABORT, A-RELEASE, a closed connection and malformed PDUs.

Our Storage SCP receives from a pynetdicom sender and from a raw socket speaking DICOM (so that a
transfer can be cut, split and broken anywhere); each file is compared byte for byte (File Meta
included) with what the same SCP writes with the lean path off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
import time
from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_fragmented_frames
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.pdu import P_DATA_TF

from pacsbrowser.core.archive import Archive, InstanceInfo, RawHeader, parse_dataset
from pacsbrowser.core.dicom import bulkreceive
from pacsbrowser.core.dicom.receive import ReceiveHandler
from pacsbrowser.core.server import ArchiveServer

from .helpers import CT_IMAGE_STORAGE, LOOPBACK, make_dataset, our_files, temp_files, wait_for

AET = "PBTEST"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def handler_calls(monkeypatch) -> list[str]:
    """SOP Instance UIDs pynetdicom handed to the EVT_C_STORE handler (the lean path hands none)."""
    calls: list[str] = []
    original = ReceiveHandler.__call__

    def counting(self, event):
        calls.append(str(event.request.AffectedSOPInstanceUID))
        return original(self, event)

    monkeypatch.setattr(ReceiveHandler, "__call__", counting)
    return calls


# ---- data sets of every shape the walk for the header meets


def _with_sequences(ds: Dataset) -> Dataset:
    """Sequences (undefined lengths, pydicom's default) and a nested one, before the pixel data."""
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "T-D1100", "SRT", "Head"
    item = Dataset()
    item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
    item.ReferencedSOPInstanceUID = generate_uid()
    item.PurposeOfReferenceCodeSequence = [inner]
    ds.ReferencedImageSequence = [item, Dataset()]
    ds.add_new(0x00091010, "LO", "private")
    return ds


def _multiframe(syntax: str, fragments_per_frame: int = 1) -> Dataset:
    """A 4-frame object in RLE, or its frames split over several fragments each (the bytes of an
    encapsulated multi-fragment multi-frame object: stored as they come, never decoded here)."""
    import numpy as np

    ds = make_dataset(rows=64)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    frames = np.stack([np.full((64, 64), 100 * n, dtype=np.uint16) + np.arange(64, dtype=np.uint16)
                       for n in range(4)])
    ds.set_pixel_data(frames, "MONOCHROME2", 16, generate_instance_uid=False)
    ds.compress(RLELossless, generate_instance_uid=False)
    if syntax != RLELossless:
        encoded = [b"".join(fragments) for fragments in generate_fragmented_frames(ds.PixelData, number_of_frames=4)]
        ds.PixelData = encapsulate(encoded, fragments_per_frame=fragments_per_frame)
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _text_sr() -> Dataset:
    ds = make_dataset()
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    ds.Modality = "SR"
    content = Dataset()
    content.ValueType, content.TextValue = "TEXT", "nothing to report " * 50
    ds.ContentSequence = [content]
    return ds


def _in_syntax(ds: Dataset, syntax: str) -> Dataset:
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _shapes() -> dict[str, Dataset]:
    return {
        "small": make_dataset(),
        "big (many PDUs)": make_dataset(extra_bytes=600_000),
        "implicit VR": _in_syntax(make_dataset(extra_bytes=40_000), ImplicitVRLittleEndian),
        "sequences before the pixels": _with_sequences(make_dataset(extra_bytes=20_000)),
        "implicit VR with sequences": _in_syntax(_with_sequences(make_dataset(extra_bytes=20_000)),
                                                  ImplicitVRLittleEndian),
        "RLE multi-frame": _multiframe(RLELossless),
        "multi-fragment multi-frame": _multiframe(JPEG2000Lossless, fragments_per_frame=3),
        "no pixel data": _text_sr(),
        "deflated": _in_syntax(make_dataset(extra_bytes=30_000), DeflatedExplicitVRLittleEndian),
    }


def _send(port: int, datasets: list[Dataset], max_pdu: int = 16382) -> list[int]:
    ae = AE(ae_title="SENDER")
    ae.maximum_pdu_size = max_pdu
    for syntax in {str(ds.file_meta.TransferSyntaxUID) for ds in datasets}:
        for sop_class in {str(ds.SOPClassUID) for ds in datasets}:
            ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(LOOPBACK, port, ae_title=AET)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def _receive(archive: Archive, datasets: list[Dataset], max_pdu: int) -> list[int]:
    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK, max_pdu=max_pdu) as scp:
            return await asyncio.to_thread(_send, scp.address[1], datasets)

    statuses = run(main())
    archive.flush()
    return statuses


def _files(archive: Archive) -> dict[str, bytes]:
    return {str(p.relative_to(archive.root)): p.read_bytes() for p in our_files(archive.root)}


def _index(archive: Archive) -> list[dict]:
    """Every row the index lists, without what depends on when or where it was written."""
    def plain(row) -> dict:
        return {k: v for k, v in dataclasses.asdict(row).items()
                if not any(word in k for word in ("received", "path", "mtime", "updated", "added"))}

    rows = [plain(p) for p in archive.patients()]
    for study in archive.studies():
        rows.append(plain(study))
        for series in archive.series(study.study_uid):
            rows.append(plain(series))
            rows += [plain(i) for i in archive.instances(series.series_uid)]
    return rows


@pytest.mark.parametrize("max_pdu", [16384, 4096, 0])
def test_the_lean_path_writes_the_files_pynetdicom_writes(workdir: Path, handler_calls, monkeypatch, max_pdu):
    shapes = _shapes()
    datasets = list(shapes.values())
    lean = Archive(workdir / "lean")
    try:
        assert _receive(lean, datasets, max_pdu) == [0] * len(datasets)
        # all taken by the lean path (deflated and no pixel data are kept whole in memory, as before)
        assert handler_calls == []
        got, got_index = _files(lean), _index(lean)
    finally:
        lean.close()
    monkeypatch.setattr(bulkreceive, "ENABLED", False)
    plain = Archive(workdir / "plain")
    try:
        assert _receive(plain, datasets, max_pdu) == [0] * len(datasets)
        assert len(handler_calls) == len(datasets)
        want, want_index = _files(plain), _index(plain)
    finally:
        plain.close()
    assert len(want) == len(datasets)
    assert got.keys() == want.keys()
    for rel, data in want.items():
        assert got[rel] == data, f"{rel} differs"
    assert got_index == want_index and len(want_index) > len(datasets)


def test_the_header_walk_stops_where_pydicom_stops():
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    for name, ds in _shapes().items():
        syntax = ds.file_meta.TransferSyntaxUID
        if syntax.is_deflated:
            continue
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, syntax.is_implicit_VR
        write_dataset(fp, ds)
        data = fp.getvalue()
        values: dict[int, bytes] = {}
        end, _ = bulkreceive.header_end(data, 0, syntax.is_implicit_VR, values)
        if "PixelData" in ds:
            assert end is not None and data[end:end + 4] == b"\xe0\x7f\x10\x00", name
            parsed = parse_dataset(data[:end], syntax)
            assert parsed.SOPInstanceUID == ds.SOPInstanceUID
            assert InstanceInfo.from_dataset(RawHeader(values)) == InstanceInfo.from_dataset(parsed), name
            for cut in range(0, end, max(1, end // 40)):  # any shorter start: more bytes needed
                assert bulkreceive.header_end(data[:cut], 0, syntax.is_implicit_VR)[0] is None, (name, cut)
        else:
            assert end is None, name


def test_commands_are_decoded_and_encoded_as_pynetdicom_does():
    request = C_STORE()
    request.MessageID, request.Priority = 7, 2
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = CT_IMAGE_STORAGE, "1.2.3.45"
    request.MoveOriginatorApplicationEntityTitle, request.MoveOriginatorMessageID = "MOVER", 3
    request.DataSet = BytesIO(b"\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    command = _command_bytes(message)
    decoded = bulkreceive.decode_store_request(command)
    assert decoded == bulkreceive.StoreRequest(7, CT_IMAGE_STORAGE, "1.2.3.45", "MOVER", 3)  # a C-MOVE sub-operation
    for status, comment in [(0x0000, ""), (0xA700, "Out of resources: the archive disk is full"),
                            (0xC000, "Cannot understand: odd"), (0x0110, "Processing failure: X")]:
        response = C_STORE()
        response.MessageIDBeingRespondedTo = 7
        response.AffectedSOPClassUID, response.AffectedSOPInstanceUID = CT_IMAGE_STORAGE, "1.2.3.45"
        response.Status = status
        if comment:
            response.ErrorComment = comment
        rsp = C_STORE_RSP()
        rsp.primitive_to_message(response)
        assert bulkreceive.encode_store_response(decoded, status, comment) == _command_bytes(rsp)
        pdu = P_DATA_TF()
        pdu.from_primitive(next(rsp.encode_msg(5, 16384)))
        assert bulkreceive.p_data_tf(5, _command_bytes(rsp)) == pdu.encode()
    echo = C_ECHO()
    echo.MessageID, echo.AffectedSOPClassUID = 1, "1.2.840.10008.1.1"
    from pynetdicom.dimse_messages import C_ECHO_RQ

    other = C_ECHO_RQ()
    other.primitive_to_message(echo)
    assert bulkreceive.decode_store_request(_command_bytes(other)) is None
    assert bulkreceive.decode_store_request(command[:-3]) is None


def _command_bytes(message) -> bytes:
    pdata = next(message.encode_msg(1, 0))
    return b"".join(data[1:] for _, data in pdata.presentation_data_value_list if data[0] & 1)


# ---- a raw peer: the transfer cut, split and broken where a real sender would not


class RawPeer:
    """A socket speaking DICOM by hand, after an association request recorded from pynetdicom."""

    def __init__(self, port: int, request: bytes) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(request)
        pdu_type, body = self.read_pdu()
        assert pdu_type == 0x02, f"association not accepted (PDU type {pdu_type})"

    def read_pdu(self, timeout: float = 10.0) -> tuple[int, bytes]:
        self.sock.settimeout(timeout)
        header = self._exactly(6)
        if not header:
            return -1, b""
        pdu_type, length = struct.unpack(">BxL", header)
        return pdu_type, self._exactly(length)

    def _exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                return out
            out += chunk
        return out

    def send(self, data: bytes, piece: int = 0) -> None:
        if not piece:
            self.sock.sendall(data)
            return
        for start in range(0, len(data), piece):
            self.sock.sendall(data[start:start + piece])

    def close(self) -> None:
        self.sock.close()


def _pdv_pdu(context_id: int, control: int, data: bytes) -> bytes:
    return struct.pack(">BxLLBB", 0x04, len(data) + 6, len(data) + 2, context_id, control) + data


def _store_pdus(ds: Dataset, context_id: int, message_id: int = 1, fragment: int = 4000) -> list[bytes]:
    """The P-DATA-TF PDUs pynetdicom's C-STORE-RQ would be, fragments of `fragment` bytes."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    request = C_STORE()
    request.MessageID, request.Priority = message_id, 0
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    data = fp.getvalue()
    request.DataSet = BytesIO(b"\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    pdus = [_pdv_pdu(context_id, 0x03, _command_bytes(message))]
    for start in range(0, len(data), fragment):
        last = start + fragment >= len(data)
        pdus.append(_pdv_pdu(context_id, 0x02 if last else 0x00, data[start:start + fragment]))
    return pdus


def _recorded_request(port: int) -> bytes:
    """The A-ASSOCIATE-RQ pynetdicom sends for CT Image Storage, Explicit VR Little Endian (context 1)."""
    sent: list[bytes] = []
    ae = AE(ae_title="RAWPEER")
    ae.add_requested_context(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)
    assoc = ae.associate(LOOPBACK, port, ae_title=AET,
                         evt_handlers=[(evt.EVT_DATA_SENT, lambda event: sent.append(bytes(event.data)))])
    assert assoc.is_established
    assoc.release()
    assert sent and sent[0][0] == 0x01
    return sent[0]


class _Server:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    async def __aenter__(self):
        self.scp = ArchiveServer(0, AET, self.archive, host=LOOPBACK)
        await self.scp.__aenter__()
        self.port = self.scp.address[1]
        self.request = await asyncio.to_thread(_recorded_request, self.port)
        return self

    async def __aexit__(self, *exc):
        await self.scp.__aexit__(*exc)


def _peer_case(archive: Archive, body) -> object:
    async def main():
        async with _Server(archive) as server:
            return await asyncio.to_thread(body, server)

    return run(main())


def _status_of(pdu: bytes) -> int:
    """The Status of the C-STORE-RSP in a P-DATA-TF body (one command fragment)."""
    command = pdu[6:]
    pos = 0
    while pos < len(command):
        group, element, length = struct.unpack_from("<HHL", command, pos)
        if (group, element) == (0, 0x0900):
            return struct.unpack_from("<H", command, pos + 8)[0]
        pos += 8 + length
    raise AssertionError("no Status in the response")


def test_a_transfer_split_into_tiny_pieces_is_stored_whole(archive: Archive, handler_calls):
    ds = make_dataset(extra_bytes=20_000)

    def body(server: _Server):
        peer = RawPeer(server.port, server.request)
        try:
            for pdu in _store_pdus(ds, 1, fragment=3000):
                peer.send(pdu, piece=7)  # PDU and fragment headers cut across reads
            pdu_type, response = peer.read_pdu()
            assert pdu_type == 0x04 and _status_of(response) == 0x0000
            peer.send(b"\x05\x00\x00\x00\x00\x04\x00\x01\x00\x00")  # A-RELEASE-RQ
            assert peer.read_pdu()[0] == 0x06
        finally:
            peer.close()

    _peer_case(archive, body)
    archive.flush()
    assert handler_calls == [] and archive.has_instance(str(ds.SOPInstanceUID))
    stored = archive.path_of(str(ds.SOPInstanceUID))
    assert stored is not None and stored.read_bytes().endswith(bytes(ds.PixelData))


@pytest.mark.parametrize("ending", ["A-ABORT", "A-RELEASE-RQ", "closed", "command fragment", "other context",
                                    "fragment longer than its PDU", "unknown PDU type", "PDU longer than announced"])
def test_a_transfer_ended_half_way_leaves_nothing(archive: Archive, handler_calls, ending: str):
    ds = make_dataset(extra_bytes=200_000)
    pdus = _store_pdus(ds, 1)
    endings = {
        "A-ABORT": (b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00", None),
        "A-RELEASE-RQ": (b"\x05\x00\x00\x00\x00\x04\x00\x01\x00\x00", 0x06),
        "closed": (b"", -1),
        "command fragment": (_pdv_pdu(1, 0x01, b"\x00" * 8), 0x07),
        "other context": (_pdv_pdu(3, 0x00, b"\x00" * 8), 0x07),
        "fragment longer than its PDU": (struct.pack(">BxLLBB", 0x04, 10, 50, 1, 0) + b"\x00" * 4, 0x07),
        "unknown PDU type": (b"\x09\x00\x00\x00\x00\x02\x00\x00", 0x07),
        "PDU longer than announced": (struct.pack(">BxL", 0x04, 1 << 30) + b"\x00" * 64, 0x07),
    }
    tail, answer = endings[ending]

    def body(server: _Server):
        peer = RawPeer(server.port, server.request)
        try:
            for pdu in pdus[:len(pdus) // 2]:
                peer.send(pdu)
            time.sleep(0.2)  # half the data set is on the lean path, in a temporary file
            if ending == "closed":
                peer.sock.shutdown(socket.SHUT_RDWR)
            else:
                peer.send(tail)
            if answer is not None and answer >= 0:
                assert peer.read_pdu()[0] == answer, ending
            elif answer == -1 or ending == "A-ABORT":
                time.sleep(0.2)
            dicom_server = server.scp._server  # core.dicom.server.DicomServer: its associations
            wait_for(lambda: not dicom_server.active_associations(), 10, "the association to end")
        finally:
            peer.close()

    _peer_case(archive, body)
    archive.flush()
    assert handler_calls == []
    assert not archive.has_instance(str(ds.SOPInstanceUID))
    assert our_files(archive.root) == [] and temp_files(archive.root) == []


def test_other_messages_still_go_to_pynetdicom(archive: Archive, handler_calls):
    """A C-ECHO between C-STOREs on one association: pynetdicom answers it, the lean path the rest."""
    datasets = [make_dataset() for _ in range(3)]

    def send(port: int):
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate(LOOPBACK, port, ae_title=AET)
        try:
            out = [int(assoc.send_c_store(datasets[0]).Status), int(assoc.send_c_echo().Status)]
            out += [int(assoc.send_c_store(ds).Status) for ds in datasets[1:]]
            return out
        finally:
            assoc.release()

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK) as scp:
            return await asyncio.to_thread(send, scp.address[1])

    assert run(main()) == [0, 0, 0, 0]
    archive.flush()
    assert handler_calls == [] and archive.counts()["instances"] == 3


def test_a_disk_that_fills_half_way_through_a_data_set_refuses_it_and_keeps_the_association(
        archive: Archive, handler_calls, monkeypatch):
    """ENOSPC while the fragments stream in: the rest is read and dropped, the reply is 0xA700 with
    the words ReceiveHandler uses, nothing is left; the next instance on the association is stored."""
    import errno

    import pacsbrowser.core.archive.writer as archive_writer

    real = archive_writer.os.writev
    full = {"on": True}

    def writev(fd, buffers):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, buffers)

    monkeypatch.setattr(archive_writer.os, "writev", writev)
    first, second = make_dataset(extra_bytes=300_000), make_dataset(extra_bytes=300_000)

    def send(port: int):
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)
        assoc = ae.associate(LOOPBACK, port, ae_title=AET)
        try:
            status = assoc.send_c_store(first)
            out = [(int(status.Status), str(status.get("ErrorComment", "")))]
            full["on"] = False
            status = assoc.send_c_store(second)
            return out + [(int(status.Status), str(status.get("ErrorComment", "")))]
        finally:
            assoc.release()

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK, max_pdu=16384) as scp:
            return await asyncio.to_thread(send, scp.address[1]), scp.stats

    statuses, stats = run(main())
    archive.flush()
    assert statuses == [(0xA700, "Out of resources: the archive disk is full"), (0x0000, "")]
    assert handler_calls == [] and stats.failed == 1 and stats.stored == 1
    assert not archive.has_instance(str(first.SOPInstanceUID)) and archive.has_instance(str(second.SOPInstanceUID))
    assert len(our_files(archive.root)) == 1 and temp_files(archive.root) == []


def test_the_dimse_wait_of_a_c_get_counts_from_the_last_byte():
    """pynetdicom waits `dimse_timeout` for the next message of a C-GET; C-STOREs taken by the lean
    path never reach its queue, so while bytes keep coming the wait goes on, and it ends
    `dimse_timeout` after the last one."""
    import queue
    import threading
    from types import SimpleNamespace

    messages: queue.Queue = queue.Queue()
    dimse = SimpleNamespace(msg_queue=messages, dimse_timeout=0.3,
                            get_msg=lambda block=False: (None, None))
    reader = SimpleNamespace(active=True, last_data=time.monotonic())
    bulkreceive._time_dimse_from_last_byte(SimpleNamespace(dimse=dimse), reader)
    stop = threading.Event()

    def bytes_arrive():
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not stop.is_set():
            reader.last_data = time.monotonic()
            time.sleep(0.05)

    feeder = threading.Thread(target=bytes_arrive)
    started = time.monotonic()
    feeder.start()
    try:
        assert dimse.get_msg(True) == (None, None)
        waited = time.monotonic() - started
    finally:
        stop.set()
        feeder.join(5)
    print(f"\ngave up after {waited:.2f} s (bytes for 1 s, timeout 0.3 s)", end="")
    assert 1.2 <= waited < 3.0
    messages.put((1, "a message"))
    assert dimse.get_msg(True) == (1, "a message")
    reader.active = False  # not on the lean path: pynetdicom's own get_msg
    assert dimse.get_msg(True) == (None, None)
