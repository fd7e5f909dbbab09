"""The demo studies: generated with pydicom and numpy (no downloads), clearly demo data.

Six patients named DEMO^..., studies over several years: CT (chest, abdomen, a follow-up; anatomy-
like shapes in Hounsfield units with soft-tissue and lung windows), an MR head series, a CR chest,
a colour ultrasound with a multi-frame clip, one CT series RLE Lossless, a patient with a Japanese
name (ISO_IR 192). Pixel content is deterministic; everything is written as it would be received.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
CR = "1.2.840.10008.5.1.4.1.1.1"
US = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
UID_ROOT = "2.25."


def demo_uid(*parts: object) -> str:
    """A stable UID for a demo object (2.25 + a hash of its name)."""
    digest = hashlib.sha256("/".join(map(str, ("pacsbrowser-demo", *parts))).encode()).digest()
    return UID_ROOT + str(int.from_bytes(digest[:15], "big"))


@dataclass(frozen=True)
class DemoPatient:
    patient_id: str
    name: str
    birth_date: str
    sex: str


@dataclass(frozen=True)
class DemoSeries:
    modality: str
    description: str
    body_part: str
    count: int
    make: str  # which pixel maker
    compressed: bool = False


@dataclass(frozen=True)
class DemoStudy:
    patient: DemoPatient
    date: str
    time: str
    description: str
    series: tuple[DemoSeries, ...]
    referring: str = "DEMO^REFERRER"


ANNA = DemoPatient("DEMO0001", "DEMO^ANNA", "19640212", "F")
BRUNO = DemoPatient("DEMO0002", "DEMO^BRUNO", "19780930", "M")
HANAKO = DemoPatient("DEMO0003", "DEMO^HANAKO=デモ^花子", "19850517", "F")
DAVID = DemoPatient("DEMO0004", "DEMO^DAVID", "19920104", "M")
ELENA = DemoPatient("DEMO0005", "DEMO^ELENA", "19510722", "F")
FRANK = DemoPatient("DEMO0006", "DEMO^FRANK", "20010311", "M")

STUDIES: tuple[DemoStudy, ...] = (
    DemoStudy(ANNA, "20190314", "091500", "DEMO CT CHEST", (
        DemoSeries("CT", "Chest 5 mm", "CHEST", 60, "chest"),
        DemoSeries("CT", "Chest 5 mm (RLE)", "CHEST", 24, "chest", compressed=True),
    )),
    DemoStudy(ANNA, "20240205", "141000", "DEMO CT CHEST FOLLOW-UP", (
        DemoSeries("CT", "Chest 5 mm", "CHEST", 48, "chest"),
    )),
    DemoStudy(BRUNO, "20210611", "103000", "DEMO MR HEAD", (
        DemoSeries("MR", "T1 axial", "HEAD", 32, "head"),
    )),
    DemoStudy(HANAKO, "20230120", "080500", "DEMO CR CHEST", (
        DemoSeries("CR", "Chest PA", "CHEST", 1, "radiograph"),
    )),
    DemoStudy(DAVID, "20240918", "160000", "DEMO US ABDOMEN", (
        DemoSeries("US", "Liver clip", "ABDOMEN", 1, "clip"),
        DemoSeries("US", "Liver stills", "ABDOMEN", 4, "still"),
    )),
    DemoStudy(ELENA, "20220803", "113000", "DEMO CT ABDOMEN", (
        DemoSeries("CT", "Abdomen 5 mm", "ABDOMEN", 56, "abdomen"),
    )),
    DemoStudy(FRANK, "20200429", "094500", "DEMO CR HAND", (
        DemoSeries("CR", "Hand PA", "HAND", 1, "radiograph"),
    )),
)


# --------------------------------------------------------------------------------------------
# Pixels


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    return (y - rows / 2) / (rows / 2), (x - cols / 2) / (cols / 2)


def _ellipse(y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _noise(seed: int, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, shape).astype(np.float32)


def ct_chest(z: float, seed: int, size: int = 256) -> np.ndarray:
    """HU of an axial chest slice at z in [0, 1] (apex to base)."""
    y, x = _grid(size, size)
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    body = _ellipse(y, x, 0.05, 0, 0.62, 0.88)
    hu[body] = -90  # subcutaneous fat
    hu[_ellipse(y, x, 0.05, 0, 0.56, 0.82)] = 40  # muscle and mediastinum
    lung = 0.35 + 0.12 * np.sin(np.pi * z)
    for side in (-1, 1):
        hu[_ellipse(y, x, 0.0, side * 0.4, lung + 0.1, 0.3)] = -820
    heart = 0.26 * max(0.0, np.sin(np.pi * (z - 0.2) / 0.8)) if z > 0.2 else 0.0
    if heart:
        hu[_ellipse(y, x, 0.12, 0.08, heart, heart * 1.2)] = 45
    hu[_ellipse(y, x, -0.12, -0.05, 0.07, 0.07)] = 180  # aorta with contrast
    hu[_ellipse(y, x, 0.45, 0, 0.1, 0.09)] = 650  # vertebral body
    hu[_ellipse(y, x, 0.45, 0, 0.05, 0.04)] = 30  # spinal canal
    hu[_ellipse(y, x, -0.5, 0, 0.04, 0.12)] = 500  # sternum
    for angle in np.linspace(0.35, 2.8, 7):  # ribs
        for side in (-1, 1):
            cy, cx = 0.05 - 0.55 * np.cos(angle), side * 0.8 * np.sin(angle)
            hu[_ellipse(y, x, cy, cx, 0.03, 0.03)] = 700
    vessels = _noise(seed + 1, (size, size), 1.0) > 2.6
    hu[vessels & (hu < -700)] = -400
    return hu + _noise(seed, (size, size), 12.0)


def ct_abdomen(z: float, seed: int, size: int = 256) -> np.ndarray:
    y, x = _grid(size, size)
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    hu[_ellipse(y, x, 0.05, 0, 0.66, 0.86)] = -100
    hu[_ellipse(y, x, 0.05, 0, 0.58, 0.78)] = 35
    hu[_ellipse(y, x, -0.05, -0.35, 0.38 * (1.1 - z), 0.36)] = 60  # liver
    hu[_ellipse(y, x, 0.0, 0.5, 0.18 * (1.1 - z), 0.14)] = 50  # spleen
    for side in (-1, 1):
        if 0.3 < z < 0.85:
            hu[_ellipse(y, x, 0.3, side * 0.3, 0.12, 0.08)] = 150  # kidneys, enhancing
    hu[_ellipse(y, x, 0.2, 0.05, 0.05, 0.05)] = 170  # aorta
    hu[_ellipse(y, x, 0.45, 0, 0.1, 0.1)] = 600
    hu[_ellipse(y, x, -0.15, 0.2, 0.12, 0.18)] = -950  # gas in the bowel
    return hu + _noise(seed, (size, size), 10.0)


def mr_head(z: float, seed: int, size: int = 192) -> np.ndarray:
    y, x = _grid(size, size)
    scale = np.sqrt(max(0.05, 1 - (2 * z - 1.0) ** 2))
    signal = np.zeros((size, size), dtype=np.float32)
    signal[_ellipse(y, x, 0, 0, 0.85 * scale + 0.05, 0.7 * scale + 0.05)] = 900  # scalp fat
    signal[_ellipse(y, x, 0, 0, 0.8 * scale, 0.65 * scale)] = 80  # skull
    signal[_ellipse(y, x, 0, 0, 0.74 * scale, 0.59 * scale)] = 550  # grey matter
    signal[_ellipse(y, x, 0, 0, 0.6 * scale, 0.45 * scale)] = 760  # white matter
    if 0.35 < z < 0.7:
        for side in (-1, 1):
            signal[_ellipse(y, x, -0.05, side * 0.1, 0.25 * scale, 0.06)] = 150  # ventricles
    return np.clip(signal + _noise(seed, (size, size), 25.0), 0, None)


def radiograph(seed: int, rows: int = 640, cols: int = 512, hand: bool = False) -> np.ndarray:
    """Attenuation as a 12-bit image (bright = dense), MONOCHROME2."""
    y, x = _grid(rows, cols)
    image = np.full((rows, cols), 300.0, dtype=np.float32)
    if hand:
        image[_ellipse(y, x, 0.45, 0, 0.45, 0.5)] = 1500
        for finger in range(5):
            cx = -0.55 + finger * 0.27
            image[_ellipse(y, x, -0.3, cx, 0.45 if finger else 0.3, 0.08)] = 1500
            image[_ellipse(y, x, -0.3, cx, 0.42 if finger else 0.27, 0.035)] = 3000
    else:
        image[_ellipse(y, x, 0.05, 0, 0.9, 0.85)] = 1800
        for side in (-1, 1):
            image[_ellipse(y, x, -0.05, side * 0.4, 0.62, 0.3)] = 700
        image[_ellipse(y, x, 0.2, 0.1, 0.35, 0.3)] = 2300
        image[np.abs(x) < 0.07] = 2600
        for rib in range(9):
            band = np.abs(y + 0.55 - rib * 0.13 - 0.08 * x ** 2) < 0.015
            image[band & (np.abs(x) < 0.75)] += 600
    image += _noise(seed, (rows, cols), 40.0)
    return np.clip(image, 0, 4095)


def ultrasound(frame: int, seed: int, rows: int = 240, cols: int = 320) -> np.ndarray:
    """An RGB sector scan: speckle, a vessel that pulses with the frame, a little colour flow."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    dy, dx = yy + 10, xx - cols / 2
    radius, angle = np.hypot(dy, dx), np.arctan2(dx, dy)
    sector = (radius < rows * 0.95) & (np.abs(angle) < 0.6)
    speckle = np.abs(np.random.default_rng(seed).normal(90, 35, (rows, cols)))
    gray = np.where(sector, speckle * (1.1 - radius / rows * 0.6), 0)
    pulse = 1 + 0.25 * np.sin(2 * np.pi * frame / 12)
    vessel = ((yy - rows * 0.55) / (14 * pulse)) ** 2 + ((xx - cols * 0.5) / 40) ** 2 <= 1
    gray[vessel & sector] *= 0.1
    rgb = np.repeat(np.clip(gray, 0, 255)[..., None], 3, axis=2)
    flow = vessel & sector & (np.abs(xx - cols * 0.5) < 25)
    red = flow & (frame % 12 < 6)
    rgb[red] = (200, 30, 30)
    rgb[flow & ~red] = (30, 60, 210)
    return rgb.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Data sets


def _base(study: DemoStudy, series: DemoSeries, s_index: int, number: int, sop_class: str) -> Dataset:
    study_uid = demo_uid(study.patient.patient_id, study.date, study.description)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = demo_uid(study_uid, s_index, number)
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.time
    ds.AccessionNumber = f"DEMO{study.date[2:]}{s_index}"[:16]
    ds.Modality = series.modality
    ds.Manufacturer = "pacsbrowser demo"
    ds.InstitutionName = "DEMO HOSPITAL"
    ds.ReferringPhysicianName = study.referring
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    ds.PatientName = study.patient.name
    ds.PatientID = study.patient.patient_id
    ds.PatientBirthDate = study.patient.birth_date
    ds.PatientSex = study.patient.sex
    ds.BodyPartExamined = series.body_part
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = demo_uid(study_uid, s_index)
    ds.StudyID = study.date[2:]
    ds.SeriesNumber = s_index + 1
    ds.InstanceNumber = number + 1
    ds.PatientOrientation = ""
    return ds


def _grey(ds: Dataset, pixels: np.ndarray, bits: int, signed: bool = False) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()


def _slice(ds: Dataset, number: int, spacing: float, thickness: float = 5.0) -> None:
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-ds.Columns * spacing / 2, -ds.Rows * spacing / 2, -number * thickness]
    ds.SliceLocation = -number * thickness
    ds.SliceThickness = thickness
    ds.PixelSpacing = [spacing, spacing]


def _ct(study: DemoStudy, series: DemoSeries, s_index: int, number: int) -> Dataset:
    ds = _base(study, series, s_index, number, CT)
    maker = ct_chest if series.make == "chest" else ct_abdomen
    hu = maker(number / max(1, series.count - 1), seed=s_index * 1000 + number)
    _grey(ds, np.clip(hu + 1024, 0, 4095), 12)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    if series.make == "chest":
        ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
        ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
    else:
        ds.WindowCenter, ds.WindowWidth = [50, 400], [350, 1800]
        ds.WindowCenterWidthExplanation = ["ABDOMEN", "BONE"]
    ds.KVP, ds.ImageType = 120, ["ORIGINAL", "PRIMARY", "AXIAL"]
    _slice(ds, number, 1.4)
    return ds


def _mr(study: DemoStudy, series: DemoSeries, s_index: int, number: int) -> Dataset:
    ds = _base(study, series, s_index, number, MR)
    _grey(ds, mr_head(number / max(1, series.count - 1), seed=s_index * 1000 + number), 12)
    ds.WindowCenter, ds.WindowWidth = 500, 1000
    ds.ScanningSequence, ds.SequenceVariant, ds.MagneticFieldStrength = "SE", "NONE", 1.5
    ds.EchoTime, ds.RepetitionTime, ds.ImageType = 12, 500, ["ORIGINAL", "PRIMARY", "M"]
    _slice(ds, number, 1.2, 4.0)
    return ds


def _cr(study: DemoStudy, series: DemoSeries, s_index: int, number: int) -> Dataset:
    ds = _base(study, series, s_index, number, CR)
    _grey(ds, radiograph(seed=s_index + number, hand=series.body_part == "HAND"), 12)
    ds.WindowCenter, ds.WindowWidth = 1600, 3000
    ds.ViewPosition, ds.ImagerPixelSpacing = "PA", [0.35, 0.35]
    return ds


def _us(study: DemoStudy, series: DemoSeries, s_index: int, number: int) -> Dataset:
    clip = series.make == "clip"
    ds = _base(study, series, s_index, number, US_MULTIFRAME if clip else US)
    frames = [ultrasound(f, seed=f + 7 * number) for f in range(24 if clip else 1)]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = frames[0].shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if clip:
        ds.NumberOfFrames = len(frames)
        ds.FrameTime, ds.CineRate = 40.0, 25
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.PixelData = np.stack(frames).tobytes()
    return ds


_MAKERS: dict[str, Callable[[DemoStudy, DemoSeries, int, int], Dataset]] = {
    "chest": _ct, "abdomen": _ct, "head": _mr, "radiograph": _cr, "clip": _us, "still": _us,
}


def encode(ds: Dataset, syntax: str) -> bytes:
    """The data set's bytes in `syntax` (explicit VR little endian, encapsulated when compressed)."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def datasets() -> Iterator[tuple[Dataset, str]]:
    """Every demo instance, with its transfer syntax."""
    for study in STUDIES:
        for s_index, series in enumerate(study.series):
            for number in range(series.count):
                ds = _MAKERS[series.make](study, series, s_index, number)
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                syntax: UID = ExplicitVRLittleEndian
                if series.compressed:
                    ds.compress(RLELossless, generate_instance_uid=False)
                    syntax = RLELossless
                yield ds, str(syntax)


def instance_count() -> int:
    return sum(series.count for study in STUDIES for series in study.series)


__all__ = ["STUDIES", "DemoPatient", "DemoSeries", "DemoStudy", "datasets", "demo_uid", "encode", "instance_count"]
