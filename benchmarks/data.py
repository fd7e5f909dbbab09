"""The benchmark's data, generated at every run (deterministic, no randomness):

- ``tiny_studies(root, 5000)``: 5,000 studies of one 8x8 Secondary Capture image each (about 1 KiB a
  file), 1,000 patients with 5 studies each, dates spread over 2000..2024: what the find and GUI
  cases query.
- ``big_study(root, 500)``: one CT study of 500 images, 256x256 16-bit (128 KiB of pixels each,
  64 MB in all) in 2 series of 250, with a window in each file: what get, move, store, receive
  and thumbnails use.

Files are written with pydicom from one template data set whose UIDs and numbers change, so 5,000
files take about two seconds.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:pacsbrowser:benchmarks:v1")


def bench_uid(*parts: object) -> str:
    return f"2.25.{uuid.uuid5(_NAMESPACE, '/'.join(map(str, parts))).int}"


@dataclass(frozen=True)
class Generated:
    root: Path
    paths: list[Path]
    study_uids: list[str]
    bytes: int


_FAMILY = ["SMITH", "JONES", "TAYLOR", "BROWN", "WILSON", "DAVIES", "EVANS", "THOMAS", "JOHNSON", "ROBERTS",
           "WALKER", "WRIGHT", "THOMPSON", "WHITE", "HUGHES", "EDWARDS", "GREEN", "HALL", "WOOD", "HARRIS"]
_GIVEN = ["JOHN", "MARY", "PETER", "ANNA", "DAVID", "SARAH", "PAUL", "EMMA", "MARK", "LUCY"]
_MODALITIES = ["CT", "MR", "CR", "US", "DX", "MG", "NM", "PT", "XA", "OT"]


def _meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


_LONG_VRS = {"OB", "OW", "OF", "SQ", "UT", "UN"}


def _element(tag: int, vr: str, value: bytes | str) -> bytes:
    """One Explicit VR Little Endian element (values padded to even length)."""
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if len(raw) % 2:
        raw += b"\0" if vr in ("UI", "OB") else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in _LONG_VRS:
        return head + b"\0\0" + struct.pack("<I", len(raw)) + raw
    return head + struct.pack("<H", len(raw)) + raw


def _part10(sop_class: str, sop_instance: str, elements: list[tuple[int, str, bytes | str]]) -> bytes:
    """A DICOM file: preamble, File Meta Information, the data set (elements in tag order)."""
    meta_elements = b"".join([
        _element(0x00020001, "OB", b"\0\1"),
        _element(0x00020002, "UI", sop_class),
        _element(0x00020003, "UI", sop_instance),
        _element(0x00020010, "UI", ExplicitVRLittleEndian),
        _element(0x00020012, "UI", "1.2.826.0.1.3680043.8.498.1"),
        _element(0x00020013, "SH", "PACSBROWSER_BNCH"),
    ])
    group_length = _element(0x00020000, "UL", struct.pack("<I", len(meta_elements)))
    body = b"".join(_element(tag, vr, value) for tag, vr, value in sorted(elements))
    return b"\0" * 128 + b"DICM" + group_length + meta_elements + body


def tiny_studies(root: Path, count: int = 5000) -> Generated:
    """`count` studies of one 8x8 image each under root/<n // 1000>/<n>.dcm.

    Encoded directly (Explicit VR Little Endian, a dozen elements): pydicom's writer takes 1.5 ms a
    file, this 20 us."""
    root.mkdir(parents=True, exist_ok=True)
    pixels = (np.arange(64, dtype=np.uint8) * 4).tobytes()

    def us(v: int) -> bytes:
        return struct.pack("<H", v)

    fixed = [
        (0x00080005, "CS", "ISO_IR 100"),
        (0x00080016, "UI", SECONDARY_CAPTURE),
        (0x00080030, "TM", "101500"),
        (0x00080064, "CS", "WSD"),
        (0x00080090, "PN", "REFERRER^ANNE"),
        (0x0008103E, "LO", "tiny"),
        (0x00100030, "DA", "19600101"),
        (0x00100040, "CS", "O"),
        (0x00200011, "IS", "1"),
        (0x00200013, "IS", "1"),
        (0x00280002, "US", us(1)),
        (0x00280004, "CS", "MONOCHROME2"),
        (0x00280010, "US", us(8)),
        (0x00280011, "US", us(8)),
        (0x00280100, "US", us(8)),
        (0x00280101, "US", us(8)),
        (0x00280102, "US", us(7)),
        (0x00280103, "US", us(0)),
        (0x7FE00010, "OB", pixels),
    ]
    paths, studies, total = [], [], 0
    for n in range(count):
        patient = n // 5
        study_uid = bench_uid("tiny-study", n)
        sop = bench_uid("tiny-instance", n)
        date = f"{2000 + n % 25}{1 + n % 12:02d}{1 + n % 28:02d}"
        varying = [
            (0x00080018, "UI", sop),
            (0x00080020, "DA", date),
            (0x00080021, "DA", date),
            (0x00080050, "SH", f"ACC{n:06d}"),
            (0x00080060, "CS", _MODALITIES[n % 10]),
            (0x00081030, "LO", f"Study {n} of patient {patient}"),
            (0x00100010, "PN", f"{_FAMILY[patient % 20]}^{_GIVEN[(patient // 20) % 10]}^{patient}"),
            (0x00100020, "LO", f"BENCH{patient:05d}"),
            (0x0020000D, "UI", study_uid),
            (0x0020000E, "UI", bench_uid("tiny-series", n)),
            (0x00200010, "SH", f"S{n}"),
        ]
        data = _part10(SECONDARY_CAPTURE, sop, fixed + varying)
        folder = root / f"{n // 1000:02d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"{n:05d}.dcm"
        path.write_bytes(data)
        paths.append(path)
        studies.append(study_uid)
        total += len(data)
    return Generated(root, paths, studies, total)


def big_study(root: Path, count: int = 500, size: int = 256, series: int = 2) -> Generated:
    """One CT study of `count` images of size x size 16-bit, in `series` series."""
    root.mkdir(parents=True, exist_ok=True)
    study_uid = bench_uid("big-study", count, size)
    y, x = np.mgrid[0:size, 0:size]
    base = ((x - size / 2) ** 2 + (y - size / 2) ** 2) ** 0.5
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240611"
    ds.StudyTime = ds.SeriesTime = "093000"
    ds.AccessionNumber = "BIGSTUDY1"
    ds.Modality = "CT"
    ds.Manufacturer = "PACSBROWSER BENCHMARK"
    ds.ReferringPhysicianName = "REFERRER^ANNE"
    ds.StudyDescription = "CT chest abdomen pelvis"
    ds.PatientName = "BENCHMARK^BIG^STUDY"
    ds.PatientID = "BENCHBIG1"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.SliceThickness = 1.0
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.StudyID = "BIG1"
    ds.FrameOfReferenceUID = bench_uid("big-for", count, size)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.PixelSpacing = [0.7, 0.7]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    per_series = -(-count // series)
    paths, total = [], 0
    for n in range(count):
        s = n // per_series
        number = n % per_series + 1
        sop = bench_uid("big-instance", count, size, n)
        ds.file_meta = _meta(CT_IMAGE_STORAGE, sop)
        ds.SOPInstanceUID = sop
        ds.SeriesInstanceUID = bench_uid("big-series", count, size, s)
        ds.SeriesNumber = s + 1
        ds.SeriesDescription = f"Series {s + 1}"
        ds.InstanceNumber = number
        z = -250.0 + number
        ds.ImagePositionPatient = [-90.0, -90.0, z]
        ds.SliceLocation = z
        pixels = 1024 + 600 * np.cos(base / (6 + n % 17)) + (x * (n % 7)) % 300
        ds.PixelData = np.clip(pixels, 0, 4095).astype("<u2").tobytes()
        folder = root / f"{s + 1:02d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        total += path.stat().st_size
    return Generated(root, paths, [study_uid], total)
