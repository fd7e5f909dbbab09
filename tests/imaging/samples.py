"""Deterministic DICOM files for the imaging tests, beyond what the lab (tests/lab/data.py) makes.

`make_samples(root) -> dict[name, Sample]`: every case the display pipeline must get right that the
lab's 66 instances do not cover (VOI LUT sequence, modality LUT sequence, SIGMOID, a second
window, pixel aspect ratio, YBR_FULL and YBR_FULL_422 uncompressed, planar configuration 1, palette
colour, grey multi-frame, bits stored < bits allocated with junk in the unused bits, float pixel
data), each compressed transfer syntax (made with DCMTK's own encoders where it has one: dcmcjpeg,
dcmcjpls, dcmcrle; JPEG 2000 and deflate with pydicom), the objects without pixel data (SR, KOS,
presentation state, encapsulated PDF) and damaged files.

Formulas only, no randomness: the same files every run.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

DCMCJPEG = "/usr/bin/dcmcjpeg"
DCMCJPLS = "/usr/bin/dcmcjpls"
DCMCRLE = "/usr/bin/dcmcrle"

SC_IMAGE = UID("1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture
CT_IMAGE = UID("1.2.840.10008.5.1.4.1.1.2")
MR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.4")
CR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.1")
MULTIFRAME_GREY_SC = UID("1.2.840.10008.5.1.4.1.1.7.3")  # 16 bit
PARAMETRIC_MAP = UID("1.2.840.10008.5.1.4.1.1.30")
BASIC_TEXT_SR = UID("1.2.840.10008.5.1.4.1.1.88.11")
KEY_OBJECT_SELECTION = UID("1.2.840.10008.5.1.4.1.1.88.59")
GRAYSCALE_PR = UID("1.2.840.10008.5.1.4.1.1.11.1")
ENCAPSULATED_PDF = UID("1.2.840.10008.5.1.4.1.1.104.1")

_ROOT_UID = "2.25.4242"  # + a number per sample: deterministic


@dataclass(frozen=True)
class Sample:
    name: str
    path: Path
    what: str  # a few words for reports
    # the uncompressed file with the same pixels (lossless) or the source (lossy), if any
    twin: str | None = None
    lossy: bool = False
    placeholder: str | None = None  # expected Kind value for objects without a usable image
    label: str | None = None  # expected placeholder label
    extra: dict = field(default_factory=dict)


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    return (x - (cols - 1) / 2) / (cols / 2), (y - (rows - 1) / 2) / (rows / 2)


def phantom(rows: int = 96, cols: int = 112) -> np.ndarray:
    """0..1: a disc with a gradient, two inserts and fine bars (edges for the scaler to average)."""
    x, y = _grid(rows, cols)
    img = np.zeros((rows, cols))
    disc = x**2 + y**2 <= 0.8
    img[disc] = 0.35 + 0.25 * x[disc]
    img[(x + 0.35) ** 2 + y**2 <= 0.04] = 0.95
    img[(x - 0.35) ** 2 + (y - 0.2) ** 2 <= 0.02] = 0.05
    bars = (np.abs(y + 0.55) < 0.12) & (np.abs(x) < 0.5)
    img[bars] = np.where((np.floor((x[bars] + 0.5) * 20) % 2) == 0, 0.8, 0.2)
    return img


def color_phantom(rows: int = 72, cols: int = 96) -> np.ndarray:
    """uint8 RGB: colour ramps and patches."""
    x, y = _grid(rows, cols)
    r = 127.5 + 127.5 * x
    g = 127.5 + 127.5 * y
    b = 255.0 * np.clip(1.0 - (x**2 + y**2), 0, 1)
    rgb = np.stack([r, g, b], axis=-1)
    rgb[10:30, 10:30] = (230, 40, 40)
    rgb[40:60, 60:85] = (30, 200, 60)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _base(number: int, sop_class: UID, modality: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"{_ROOT_UID}.{number}"
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = f"{_ROOT_UID}.1000"
    ds.SeriesInstanceUID = f"{_ROOT_UID}.1001.{sum(map(ord, modality))}"
    ds.PatientName = "IMAGING^TEST"
    ds.PatientID = "IMG0001"
    ds.Modality = modality
    ds.StudyDate = "20240101"
    ds.InstanceNumber = number
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _dcmtk(tool: str, args: list[str], src: Path, dst: Path) -> Path:
    subprocess.run([tool, *args, str(src), str(dst)], check=True, capture_output=True, timeout=60)
    return dst


def make_samples(root: Path) -> dict[str, Sample]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Sample] = {}

    def add(name: str, path: Path, what: str, **kw) -> None:
        out[name] = Sample(name, path, what, **kw)

    img = phantom()

    # ---- grey, uncompressed ------------------------------------------------------------------
    # CT: signed 16 bit, stored values are HU (negative ones too: the compressed copies below
    # check the codecs' sign handling), identity rescale, two windows
    hu = -1000.0 + 2000.0 * img  # -1000 .. 1000
    ds = _base(1, CT_IMAGE, "CT")
    ds.set_pixel_data(np.rint(hu).astype(np.int16), "MONOCHROME2", 16, generate_instance_uid=False)
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "HU"
    ds.WindowCenter, ds.WindowWidth = [40, 300], [400, 1500]
    ds.WindowCenterWidthExplanation = ["SOFT", "BONE"]
    add("ct_two_windows", _save(ds, root / "ct_two_windows.dcm"), "CT int16, rescale, 2 windows")

    # the same with a modality LUT sequence instead of rescale: stored 0..255 -> 16 * v + 100
    ds = _base(2, CT_IMAGE, "CT")
    stored = np.rint(img * 255).astype(np.uint16)
    ds.set_pixel_data(stored, "MONOCHROME2", 8, generate_instance_uid=False)  # 8 of 16 bits
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 16])  # LUT Descriptor
    item.ModalityLUTType = "HU"
    item.add_new(0x00283006, "US", [16 * v + 100 for v in range(256)])  # LUT Data
    ds.ModalityLUTSequence = [item]
    ds.WindowCenter, ds.WindowWidth = 2000, 3000
    add("modality_lut", _save(ds, root / "modality_lut.dcm"), "Modality LUT Sequence + window")

    # VOI LUT sequence: 12-bit input, a gamma curve to 16-bit output
    ds = _base(3, MR_IMAGE, "MR")
    stored = np.rint(img * 4095).astype(np.uint16)
    ds.set_pixel_data(stored, "MONOCHROME2", 12, generate_instance_uid=False)
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 16])
    item.LUTExplanation = "GAMMA 0.5"
    item.add_new(0x00283006, "US", [int(round(65535 * (v / 4095) ** 0.5)) for v in range(4096)])
    ds.VOILUTSequence = [item]
    add("voi_lut", _save(ds, root / "voi_lut.dcm"), "VOI LUT Sequence (gamma, 16-bit entries)")

    # SIGMOID VOI LUT function
    ds = _base(4, MR_IMAGE, "MR")
    ds.set_pixel_data(stored, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.WindowCenter, ds.WindowWidth = 2048, 2000
    ds.VOILUTFunction = "SIGMOID"
    add("sigmoid", _save(ds, root / "sigmoid.dcm"), "VOI LUT Function SIGMOID")

    # no window at all, with a few hot pixels a min/max window would be ruined by
    ds = _base(5, MR_IMAGE, "MR")
    noisy = np.rint(200 + 1200 * img).astype(np.uint16)
    noisy[5, 5] = noisy[6, 90] = noisy[80, 40] = 65000
    ds.set_pixel_data(noisy, "MONOCHROME2", 16, generate_instance_uid=False)
    add("auto_window_hot_pixels", _save(ds, root / "auto_window_hot_pixels.dcm"),
        "no window, 3 hot pixels (robust auto window)")

    # bits stored 12 of 16, signed: a clean file (sign-extended words) and one with junk in the
    # 4 unused high bits, which a reader must ignore
    values = np.rint(-2000 + 4000 * img).astype(np.int16)  # within the 12-bit signed range
    for number, name, words, what in (
        (6, "signed_12_of_16", values.astype("<i2"), "int 12 of 16 bits, clean"),
        (12, "signed_12_of_16_junk", ((values.astype(np.uint16) & 0x0FFF) | 0xA000).astype("<u2"),
         "int 12 of 16 bits, junk in high bits"),
    ):
        ds = _base(number, CT_IMAGE, "CT")
        ds.set_pixel_data(values, "MONOCHROME2", 12, generate_instance_uid=False)
        ds.PixelData = words.tobytes()
        ds.WindowCenter, ds.WindowWidth = 0, 3000
        add(name, _save(ds, root / f"{name}.dcm"), what,
            twin="signed_12_of_16" if "junk" in name else None, extra={"values": values})

    # MONOCHROME1 and its MONOCHROME2 twin (same stored values, same window)
    cr = np.rint(100 + 3600 * img).astype(np.uint16)
    for number, name, pi in ((7, "mono1", "MONOCHROME1"), (8, "mono2_twin", "MONOCHROME2")):
        ds = _base(number, CR_IMAGE, "CR")
        ds.set_pixel_data(cr, pi, 12, generate_instance_uid=False)
        ds.WindowCenter, ds.WindowWidth = 1900, 3600
        add(name, _save(ds, root / f"{name}.dcm"), f"CR {pi} with window")

    # non-square pixels: rows 0.5 mm apart, columns 1 mm: the thumbnail is half as high
    ds = _base(9, MR_IMAGE, "MR")
    ds.set_pixel_data(np.rint(img * 1000).astype(np.uint16), "MONOCHROME2", 16, generate_instance_uid=False)
    ds.PixelSpacing = [0.5, 1.0]
    ds.WindowCenter, ds.WindowWidth = 500, 1000
    add("pixel_spacing_aspect", _save(ds, root / "pixel_spacing_aspect.dcm"), "PixelSpacing 0.5\\1.0")

    # grey multi-frame: 5 frames, frame k is the phantom times (k + 1) / 5
    ds = _base(10, MULTIFRAME_GREY_SC, "OT")
    frames = np.stack([np.rint(img * 800 * (k + 1)).astype(np.uint16) for k in range(5)])
    ds.set_pixel_data(frames, "MONOCHROME2", 16, generate_instance_uid=False)
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    add("multiframe_grey", _save(ds, root / "multiframe_grey.dcm"), "5 frames, grey")

    # float pixel data (a parametric map): no modality LUT, automatic window
    ds = _base(11, PARAMETRIC_MAP, "MR")
    fl = (img * 3.5 - 0.5).astype(np.float32)
    ds.Rows, ds.Columns = fl.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.NumberOfFrames = 32, 1
    ds.FloatPixelData = fl.tobytes()
    add("float_pixels", _save(ds, root / "float_pixels.dcm"), "Float Pixel Data, auto window",
        extra={"values": fl})

    # ---- colour, uncompressed ------------------------------------------------------------------
    rgb = color_phantom()
    ds = _base(20, SC_IMAGE, "OT")
    ds.set_pixel_data(rgb, "RGB", 8, generate_instance_uid=False)
    add("rgb", _save(ds, root / "rgb.dcm"), "RGB planar 0", extra={"rgb": rgb})
    ds = _base(21, SC_IMAGE, "OT")
    ds.set_pixel_data(rgb, "RGB", 8, generate_instance_uid=False)
    ds.PlanarConfiguration = 1
    ds.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    add("rgb_planar1", _save(ds, root / "rgb_planar1.dcm"), "RGB planar 1", twin="rgb")

    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    ds = _base(22, SC_IMAGE, "OT")
    ds.set_pixel_data(ybr, "YBR_FULL", 8, generate_instance_uid=False)
    add("ybr_full", _save(ds, root / "ybr_full.dcm"), "YBR_FULL uncompressed", twin="rgb", lossy=True)

    # YBR_FULL_422 (native encoding, PS3.5 8.2.1 / PS3.3 C.7.6.3.1.2): Y0 Y1 Cb Cr per 2 pixels
    ds = _base(23, SC_IMAGE, "OT")
    ds.set_pixel_data(ybr, "YBR_FULL", 8, generate_instance_uid=False)
    cb = ybr[:, 0::2, 1].astype(np.uint16) + ybr[:, 1::2, 1]
    cr_ = ybr[:, 0::2, 2].astype(np.uint16) + ybr[:, 1::2, 2]
    packed = np.stack([ybr[:, 0::2, 0], ybr[:, 1::2, 0], (cb + 1) // 2, (cr_ + 1) // 2],
                      axis=-1).astype(np.uint8)
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PixelData = packed.tobytes()
    add("ybr_full_422", _save(ds, root / "ybr_full_422.dcm"), "YBR_FULL_422 uncompressed", twin="rgb",
        lossy=True)

    # palette colour, 16-bit entries: index -> a colour map
    ds = _base(24, SC_IMAGE, "OT")
    index = np.rint(img * 255).astype(np.uint8)
    ds.set_pixel_data(index, "PALETTE COLOR", 8, generate_instance_uid=False)
    v = np.arange(256, dtype=np.float64) / 255
    lut = {"Red": 65535 * v, "Green": 65535 * (1 - np.abs(2 * v - 1)), "Blue": 65535 * (1 - v)}
    for colour, values in lut.items():
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.rint(values).astype("<u2").tobytes())
    add("palette16", _save(ds, root / "palette16.dcm"), "PALETTE COLOR, 16-bit LUT",
        extra={"index": index, "lut": {k: np.rint(v_).astype(np.uint16) for k, v_ in lut.items()}})

    # ---- compressed: each transfer syntax ---------------------------------------------------------
    def grey(name: str, number: int, sop_class: UID, modality: str, pixels: np.ndarray, bits: int,
             window: tuple[int, int], what: str) -> Path:
        """An uncompressed MONOCHROME2 source for the compressed twins below."""
        ds = _base(number, sop_class, modality)
        ds.set_pixel_data(pixels, "MONOCHROME2", bits, generate_instance_uid=False)
        ds.WindowCenter, ds.WindowWidth = window
        path = _save(ds, root / f"{name}.dcm")
        add(name, path, what)
        return path

    grey8_path = grey("grey8", 30, SC_IMAGE, "OT", np.rint(img * 255).astype(np.uint8), 8, (128, 256),
                      "8-bit grey, uncompressed")
    ct = out["ct_two_windows"].path
    mr12_path = grey("mr12", 31, MR_IMAGE, "MR", np.rint(img * 4000).astype(np.uint16), 12, (2000, 4000),
                     "12-bit grey, uncompressed")
    rgb_path = out["rgb"].path

    jobs = [
        # name, tool, args, source, twin, lossy, what
        ("jpeg_baseline_grey", DCMCJPEG, ["+eb", "+q", "95"], grey8_path, "grey8", True, "JPEG baseline (8-bit grey)"),
        ("jpeg_baseline_rgb", DCMCJPEG, ["+eb", "+q", "95"], rgb_path, "rgb", True, "JPEG baseline (YBR_FULL_422)"),
        ("jpeg_extended_12bit", DCMCJPEG, ["+ee", "+q", "95"], mr12_path, "mr12", True, "JPEG extended (12-bit)"),
        ("jpeg_lossless_sv1", DCMCJPEG, ["+e1"], ct, "ct_two_windows", False, "JPEG lossless SV1 (int16)"),
        ("jpeg_lossless_rgb", DCMCJPEG, ["+e1"], rgb_path, "rgb", False, "JPEG lossless SV1 (RGB)"),
        ("jpeg_lossless_p14", DCMCJPEG, ["+el", "+sv", "6"], mr12_path, "mr12", False, "JPEG lossless process 14"),
        ("jpegls_lossless", DCMCJPLS, ["+el"], ct, "ct_two_windows", False, "JPEG-LS lossless (int16)"),
        ("jpegls_near_lossless", DCMCJPLS, ["+en", "+md", "2"], mr12_path, "mr12", True, "JPEG-LS near-lossless"),
        ("jpegls_rgb", DCMCJPLS, ["+el"], rgb_path, "rgb", False, "JPEG-LS lossless (RGB)"),
        ("rle_ct", DCMCRLE, [], ct, "ct_two_windows", False, "RLE (int16)"),
        ("rle_rgb", DCMCRLE, [], rgb_path, "rgb", False, "RLE (RGB)"),
    ]
    for name, tool, args, source, twin, lossy, what in jobs:
        add(name, _dcmtk(tool, args, source, root / f"{name}.dcm"), what, twin=twin, lossy=lossy)
    # JPEG 2000 (DCMTK 3.6.7 has no JPEG 2000 codec): pydicom with pylibjpeg-openjpeg
    for name, source, twin in (("j2k_lossless_ct", ct, "ct_two_windows"), ("j2k_lossless_rgb", rgb_path, "rgb")):
        ds = dcmread(source)
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        add(name, _save(ds, root / f"{name}.dcm"), f"JPEG 2000 lossless ({'RGB' if 'rgb' in name else 'int16'})",
            twin=twin)
    ds = dcmread(ct)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    add("deflate_ct", _save(ds, root / "deflate_ct.dcm"), "Deflated Explicit VR LE", twin="ct_two_windows")

    # ---- objects without pixel data ------------------------------------------------------------
    ds = _base(40, BASIC_TEXT_SR, "SR")
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    add("sr", _save(ds, root / "sr.dcm"), "Basic Text SR", placeholder="no-pixels", label="Structured report")
    ds = _base(41, KEY_OBJECT_SELECTION, "KO")
    ds.ValueType = "CONTAINER"
    add("kos", _save(ds, root / "kos.dcm"), "Key Object Selection", placeholder="no-pixels", label="Key objects")
    ds = _base(42, GRAYSCALE_PR, "PR")
    ds.PresentationLUTShape = "IDENTITY"
    add("pr", _save(ds, root / "pr.dcm"), "Grayscale Softcopy Presentation State", placeholder="no-pixels",
        label="Presentation state")
    ds = _base(43, ENCAPSULATED_PDF, "DOC")
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    add("pdf", _save(ds, root / "pdf.dcm"), "Encapsulated PDF", placeholder="no-pixels", label="PDF document")

    # ---- damaged ------------------------------------------------------------------------------
    whole = out["ct_two_windows"].path.read_bytes()
    (root / "truncated_pixels.dcm").write_bytes(whole[: len(whole) - 5000])
    add("truncated_pixels", root / "truncated_pixels.dcm", "cut inside the pixel data", placeholder="damaged",
        label="Damaged file")
    (root / "truncated_header.dcm").write_bytes(whole[:300])
    add("truncated_header", root / "truncated_header.dcm", "cut inside the header", placeholder="damaged")
    (root / "not_dicom.dcm").write_bytes(b"This is not a DICOM file at all.\n" * 20)
    add("not_dicom", root / "not_dicom.dcm", "text file", placeholder="damaged", label="Not a DICOM file")
    (root / "empty.dcm").write_bytes(b"")
    add("empty", root / "empty.dcm", "empty file", placeholder="damaged")
    jpeg = out["jpeg_baseline_grey"].path.read_bytes()
    start = jpeg.find(b"\xff\xda")  # start of scan: keep the headers, ruin the entropy-coded data
    corrupt = bytearray(jpeg)
    corrupt[start + 20:start + 400] = b"\xff\xd9" * 190
    (root / "corrupt_jpeg.dcm").write_bytes(bytes(corrupt))
    add("corrupt_jpeg", root / "corrupt_jpeg.dcm", "JPEG with a ruined scan", placeholder="any")
    ds = _base(44, CT_IMAGE, "CT")
    ds.set_pixel_data(np.zeros((8, 8), np.int16), "MONOCHROME2", 16, generate_instance_uid=False)
    del ds.Rows
    add("no_rows", _save(ds, root / "no_rows.dcm"), "Rows missing", placeholder="damaged", label="Damaged file")
    return out


def make_series(root: Path, count: int, side: int = 128, rle_every: int = 0) -> list[Path]:
    """`count` CT slices of `side` x `side` (a phantom that changes along the series), one file
    each; every `rle_every`-th one RLE compressed by pydicom (0: none)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = phantom(side, side)
    paths = []
    for i in range(count):
        ds = _base(10_000 + i, CT_IMAGE, "CT")
        ds.SeriesInstanceUID = f"{_ROOT_UID}.2000"
        hu = -1000.0 + 2000.0 * base * (0.5 + 0.5 * i / max(count - 1, 1))
        ds.set_pixel_data(np.rint(hu).astype(np.int16), "MONOCHROME2", 16, generate_instance_uid=False)
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.WindowCenter, ds.WindowWidth = 40, 400
        if rle_every and i % rle_every == 0:
            ds.compress(RLELossless, generate_instance_uid=False)
        paths.append(_save(ds, root / f"CT{i + 1:04d}.dcm"))
    return paths
