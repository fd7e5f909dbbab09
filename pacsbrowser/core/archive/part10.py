"""DICOM Part 10 bytes: the header we read for the index, and the File Meta we write before the data set."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import config
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import TEXT_VR_DELIMS, PersonName

from .paths import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION

log = logging.getLogger(__name__)

_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}

# The attributes the index keeps (read from the data set up to the pixel data).
_HEADER_TAGS = [
    0x00080005,  # SpecificCharacterSet
    0x00080016,  # SOPClassUID
    0x00080018,  # SOPInstanceUID
    0x00080020,  # StudyDate
    0x00080021,  # SeriesDate
    0x00080030,  # StudyTime
    0x00080050,  # AccessionNumber
    0x00080060,  # Modality
    0x00080090,  # ReferringPhysicianName
    0x00081030,  # StudyDescription
    0x0008103E,  # SeriesDescription
    0x00100010,  # PatientName
    0x00100020,  # PatientID
    0x00100021,  # IssuerOfPatientID
    0x00100030,  # PatientBirthDate
    0x00100040,  # PatientSex
    0x00180015,  # BodyPartExamined
    0x0020000D,  # StudyInstanceUID
    0x0020000E,  # SeriesInstanceUID
    0x00200010,  # StudyID
    0x00200011,  # SeriesNumber
    0x00200013,  # InstanceNumber
    0x00280008,  # NumberOfFrames
    0x00280010,  # Rows
    0x00280011,  # Columns
]


HEADER_TAGS = frozenset(_HEADER_TAGS)


class MalformedDataset(ValueError):
    """The bytes received are not a data set we can understand (or lack the UIDs we file by)."""


# --------------------------------------------------------------------------------------------
# Names


def _stop_at_pixels(tag: Any, vr: Any, length: int) -> bool:
    return int(tag) in _PIXEL_TAGS


class _Header:
    """The header elements the index keeps, decoded from their raw bytes.

    pydicom's own conversion validates each value and warns or logs the offending value when it is
    malformed (a birth date, a name): patient data in the log. Decoding the raw bytes ourselves
    keeps the log clean, and an undecodable value leaves that attribute empty, not the instance
    refused.
    """

    def __init__(self, ds: "Dataset | RawHeader", little_endian: bool = True) -> None:
        self.ds = ds
        self.little_endian = little_endian
        charset = self.ascii(0x00080005)
        try:
            self.encodings = convert_encodings([c.strip() for c in charset.split("\\")] if charset else None)
        except Exception:  # an unknown or damaged (0008,0005): read with the default repertoire
            self.encodings = convert_encodings(None)

    def raw(self, tag: int) -> Any:
        try:
            elem = self.ds.get_item(tag)
        except Exception:  # a damaged element reads as absent; the header read goes on
            return None
        return None if elem is None else elem.value

    def ascii(self, tag: int) -> str:
        value = self.raw(tag)
        if value is None:
            return ""
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("ascii", "replace").strip(" \x00")
        if isinstance(value, (list, tuple, MultiValue)):
            return "\\".join(str(v) for v in value)
        return str(value).strip(" \x00")

    def text(self, tag: int) -> str:
        value = self.raw(tag)
        if value is None:
            return ""
        if isinstance(value, (bytes, bytearray)):
            if _plain(value):
                return value.decode("ascii").strip(" \x00")
            try:
                return decode_bytes(bytes(value), self.encodings, TEXT_VR_DELIMS).strip(" \x00")
            except Exception:  # undecodable in its declared set: Latin-1 keeps every byte visible
                return bytes(value).decode("latin-1").strip(" \x00")
        return str(value).strip(" \x00")

    def person(self, tag: int) -> str:
        value = self.raw(tag)
        if value is None:
            return ""
        if isinstance(value, (bytes, bytearray)):
            if _plain(value) and 0x3D not in value:  # no "=": one component group, read as it is
                return value.decode("ascii").strip(" \x00")
            try:
                return str(PersonName(bytes(value), self.encodings, validation_mode=config.IGNORE)).strip(" \x00")
            except Exception:  # undecodable in its declared set: Latin-1 keeps every byte visible
                return bytes(value).decode("latin-1").strip(" \x00")
        return str(value).strip(" \x00")

    def integer(self, tag: int) -> int | None:
        """IS as text; US/UL as binary."""
        value = self.raw(tag)
        if value is None or value == b"":
            return None
        try:
            if isinstance(value, (bytes, bytearray)):
                if tag in (0x00280010, 0x00280011):  # Rows, Columns: US
                    return int.from_bytes(bytes(value[:2]), "little" if self.little_endian else "big")
                return int(float(bytes(value).decode("ascii").split("\\")[0].strip(" \x00")))
            if isinstance(value, (list, tuple, MultiValue)):
                value = value[0]
            return int(value)
        except (ValueError, TypeError, IndexError):
            return None


def _plain(value: bytes | bytearray) -> bool:
    """Bytes that read the same in every character set a data set may declare (7-bit, and no ESC:
    ISO 2022 code extensions switch sets with it): decoded as ASCII, without pydicom's codec
    look-ups, which cost more than the rest of a received image's header."""
    return value.isascii() and 0x1B not in value


def parse_dataset(data: bytes | BinaryIO, transfer_syntax: str) -> Dataset:
    """The header (everything before the pixel data) of an encoded data set without its File Meta
    Information, in `transfer_syntax`, from bytes or a binary stream: the elements the index
    keeps, raw (see _Header). Raises MalformedDataset."""
    ts = UID(transfer_syntax)
    try:
        if ts == DeflatedExplicitVRLittleEndian:
            raw = data if isinstance(data, (bytes, bytearray, memoryview)) else data.read()
            data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, 512 * 1024 * 1024)
        implicit = ts.is_implicit_VR if ts.is_transfer_syntax else False
        little = ts.is_little_endian if ts.is_transfer_syntax else True
        fp = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        ds = read_dataset(fp, implicit, little, stop_when=_stop_at_pixels, specific_tags=list(_HEADER_TAGS))
        ds._pb_little_endian = little  # for binary values (Rows, Columns)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on bad input
        raise MalformedDataset(f"the data set cannot be decoded ({exc.__class__.__name__})") from exc
    return ds


class _RawValue:
    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value


class RawHeader:
    """The header elements (HEADER_TAGS) as the raw bytes of their values, found by a walk of
    the top-level elements up to the pixel data (core.dicom.bulkreceive walks them as they
    arrive): read by `InstanceInfo.from_dataset` as it reads what `parse_dataset` returns, whose
    elements are just as raw."""

    def __init__(self, values: dict[int, bytes], little_endian: bool = True) -> None:
        self._values = values
        self._pb_little_endian = little_endian

    def get_item(self, tag: int) -> _RawValue | None:
        value = self._values.get(int(tag))
        return None if value is None else _RawValue(value)


@dataclass(frozen=True)
class InstanceInfo:
    """What the index keeps of one instance (read from its header)."""

    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    patient_id: str = ""
    issuer: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    series_date: str = ""
    body_part: str = ""
    instance_number: int | None = None
    rows: int | None = None
    columns: int | None = None
    frames: int | None = None
    charset: str = ""

    @classmethod
    def from_dataset(cls, ds: "Dataset | RawHeader", sop_class_uid: str = "", sop_instance_uid: str = "",
                     little_endian: bool = True) -> "InstanceInfo":
        h = _Header(ds, getattr(ds, "_pb_little_endian", little_endian))
        sop_uid = h.ascii(0x00080018) or sop_instance_uid
        study_uid = h.ascii(0x0020000D)
        series_uid = h.ascii(0x0020000E)
        missing = [name for name, value in (("SOP Instance UID", sop_uid), ("Study Instance UID", study_uid),
                                            ("Series Instance UID", series_uid)) if not value]
        if missing:
            raise MalformedDataset(f"the data set has no {', '.join(missing)}")
        return cls(
            sop_instance_uid=sop_uid,
            sop_class_uid=h.ascii(0x00080016) or sop_class_uid,
            study_uid=study_uid,
            series_uid=series_uid,
            patient_id=h.text(0x00100020),
            issuer=h.text(0x00100021),
            patient_name=h.person(0x00100010),
            birth_date=h.ascii(0x00100030),
            sex=h.ascii(0x00100040),
            study_date=h.ascii(0x00080020),
            study_time=h.ascii(0x00080030),
            accession_number=h.text(0x00080050),
            study_id=h.text(0x00200010),
            study_description=h.text(0x00081030),
            referring_physician=h.person(0x00080090),
            modality=h.ascii(0x00080060),
            series_number=h.integer(0x00200011),
            series_description=h.text(0x0008103E),
            series_date=h.ascii(0x00080021),
            body_part=h.ascii(0x00180015),
            instance_number=h.integer(0x00200013),
            rows=h.integer(0x00280010),
            columns=h.integer(0x00280011),
            frames=h.integer(0x00280008),
            charset=h.ascii(0x00080005),
        )

    @property
    def patient_key(self) -> str:
        return f"{self.issuer}\\{self.patient_id}"


@dataclass(frozen=True)
class StoredInstance:
    """A file written into the archive, not necessarily indexed yet."""

    info: InstanceInfo
    relative_path: str
    path: Path
    size: int
    mtime_ns: int
    transfer_syntax_uid: str
    received_at: float
    source_ae: str = ""


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    """One group 2 element, explicit VR little endian."""
    if vr in (b"OB",):
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    if len(value) > 0xFFFF:
        raise MalformedDataset("a UID is too long to be written")
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    value = text.encode("ascii", "replace")
    return value + pad if len(value) % 2 else value


def _file_meta_bytes(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae: str) -> bytes:
    """Preamble, DICM and the File Meta Information, encoded here byte by byte: pydicom would
    validate (and warn about, or one day refuse) the crafted UIDs a peer may send, which we still
    store, under a hashed name."""
    body = b"".join([
        _element(0x0001, b"OB", b"\x00\x01"),
        _element(0x0002, b"UI", _padded(sop_class_uid, b"\x00")),
        _element(0x0003, b"UI", _padded(sop_instance_uid, b"\x00")),
        _element(0x0010, b"UI", _padded(str(transfer_syntax), b"\x00")),
        _element(0x0012, b"UI", _padded(IMPLEMENTATION_CLASS_UID, b"\x00")),
        _element(0x0013, b"SH", _padded(IMPLEMENTATION_VERSION, b" ")),
    ])
    if source_ae and len(source_ae) <= 16 and source_ae.isascii() and "\\" not in source_ae:
        body += _element(0x0016, b"AE", _padded(source_ae, b" "))
    return b"\x00" * 128 + b"DICM" + _element(0x0000, b"UL", struct.pack("<I", len(body))) + body


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def split_part10(data: bytes) -> tuple[str, int, dict[int, str]]:
    """(transfer syntax, offset of the data set, {element: text} of the group 2 elements) of the
    start of a DICOM Part 10 file (the File Meta Information is always explicit VR little endian)."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise MalformedDataset("not a DICOM file (no DICM prefix)")
    pos = 132
    values: dict[int, str] = {}
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                break
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        if start + length > len(data):
            raise MalformedDataset("the file meta information is truncated")
        if vr in (b"UI", b"AE", b"SH", b"LO", b"CS"):
            values[element] = data[start : start + length].decode("ascii", "replace").strip("\x00 ")
        pos = start + length
    ts = values.get(0x0010, "")
    if not ts:
        raise MalformedDataset("the file meta information has no transfer syntax")
    return ts, pos, values


# --------------------------------------------------------------------------------------------
# Index rows


