"""Deterministic DICOM test data for the lab: ``generate(root) -> Catalog``.

Every run writes byte-for-byte the same files (fixed dates, UIDs derived from fixed strings,
pixel data from formulas, no randomness), one file per instance under ``root``::

    root/<PatientID>/<accession>/<series number>/<instance number>.dcm

Contents (see ``STUDY_SPECS``): 6 patients, 10 studies dated 2015..2025, 15 series, 66 instances:
CT 25, MR 30, CR 5, US 6 (one of them a 4-frame Ultrasound Multi-frame object); 14 instances are
RLE Lossless, the rest Explicit VR Little Endian. Two patients have non-ASCII names, written in
ISO_IR 192 (UTF-8): ``Müller^Jürgen`` and ``Yamada^Tarou=山田^太郎``.

The catalog describes what was written so tests can compare what a peer returns with what it
holds: ``catalog.studies_of("LAB0001")``, ``catalog.instances_of_study(uid)``...
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    RLELossless,
)

__all__ = [
    "Catalog",
    "Instance",
    "Patient",
    "Series",
    "Study",
    "generate",
    "CT_IMAGE_STORAGE",
    "MR_IMAGE_STORAGE",
    "CR_IMAGE_STORAGE",
    "US_IMAGE_STORAGE",
    "US_MULTIFRAME_IMAGE_STORAGE",
]

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")
US_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
US_MULTIFRAME_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.3.1")

UTF8 = "ISO_IR 192"


_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:pacsbrowser:test-lab:v1")


def lab_uid(*parts: object) -> str:
    """A deterministic UID for ``parts``: same parts, same UID, every run.

    A 2.25 UID from a name-based (version 5) UUID, as PS3.5 B.2 allows. (pydicom's
    ``generate_uid(prefix=None)`` ignores its entropy sources and is random.)
    """
    name = "/".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


# --------------------------------------------------------------------------------------------
# Catalog


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str  # DICOM PN as text, e.g. "Yamada^Tarou=山田^太郎"
    birth_date: str  # YYYYMMDD
    sex: str  # "M" / "F"
    charset: str | None  # (0008,0005) of this patient's files; None = default repertoire

    @property
    def is_ascii(self) -> bool:
        return self.name.isascii()


@dataclass(frozen=True)
class Study:
    uid: str
    patient_id: str
    patient_name: str
    date: str  # YYYYMMDD
    time: str  # HHMMSS
    accession: str
    description: str
    referring_physician: str
    study_id: str
    modalities: tuple[str, ...]  # sorted, like ModalitiesInStudy
    series_count: int
    instance_count: int
    charset: str | None


@dataclass(frozen=True)
class Series:
    uid: str
    study_uid: str
    patient_id: str
    modality: str
    number: int
    description: str
    body_part: str
    instance_count: int
    sop_class_uid: str
    photometric: str


@dataclass(frozen=True)
class Instance:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path
    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    number: int
    rows: int
    columns: int
    frames: int
    photometric: str
    samples_per_pixel: int
    bits_allocated: int
    pixel_representation: int

    @property
    def is_compressed(self) -> bool:
        return self.transfer_syntax_uid != ExplicitVRLittleEndian

    @property
    def is_rle(self) -> bool:
        return self.transfer_syntax_uid == RLELossless


@dataclass(frozen=True)
class Catalog:
    root: Path
    patients: tuple[Patient, ...]
    studies: tuple[Study, ...]
    series: tuple[Series, ...]
    instances: tuple[Instance, ...]
    _by_uid: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for p in self.patients:
            self._by_uid[p.patient_id] = p
        for item in (*self.studies, *self.series):
            self._by_uid[item.uid] = item
        for i in self.instances:
            self._by_uid[i.sop_instance_uid] = i

    # single objects
    def patient(self, patient_id: str) -> Patient:
        return self._get(patient_id, Patient)

    def study(self, study_uid: str) -> Study:
        return self._get(study_uid, Study)

    def get_series(self, series_uid: str) -> Series:
        return self._get(series_uid, Series)

    def instance(self, sop_instance_uid: str) -> Instance:
        return self._get(sop_instance_uid, Instance)

    def study_by_accession(self, accession: str) -> Study:
        for s in self.studies:
            if s.accession == accession:
                return s
        raise KeyError(accession)

    def _get(self, key: str, kind: type):
        item = self._by_uid.get(key)
        if not isinstance(item, kind):
            raise KeyError(key)
        return item

    # selections
    def studies_of(self, patient_id: str) -> list[Study]:
        return [s for s in self.studies if s.patient_id == patient_id]

    def series_of(self, study_uid: str) -> list[Series]:
        return [s for s in self.series if s.study_uid == study_uid]

    def instances_of_study(self, study_uid: str) -> list[Instance]:
        return [i for i in self.instances if i.study_uid == study_uid]

    def instances_of_series(self, series_uid: str) -> list[Instance]:
        return [i for i in self.instances if i.series_uid == series_uid]

    def instances_of_patient(self, patient_id: str) -> list[Instance]:
        return [i for i in self.instances if i.patient_id == patient_id]

    def instances_with_modality(self, modality: str) -> list[Instance]:
        return [i for i in self.instances if i.modality == modality]

    def studies_between(self, first: str = "", last: str = "") -> list[Study]:
        """Studies with first <= StudyDate <= last (YYYYMMDD, either end open if empty)."""
        return [
            s
            for s in self.studies
            if (not first or s.date >= first) and (not last or s.date <= last)
        ]

    def rle_instances(self) -> list[Instance]:
        return [i for i in self.instances if i.is_rle]

    def uncompressed_instances(self) -> list[Instance]:
        return [i for i in self.instances if not i.is_compressed]

    def paths(self) -> list[Path]:
        return [i.path for i in self.instances]

    def modality_counts(self) -> dict[str, int]:
        """Instances per modality, e.g. {"CT": 25, "MR": 30, "CR": 5, "US": 6}."""
        return dict(Counter(i.modality for i in self.instances))

    def sop_classes(self) -> set[str]:
        return {i.sop_class_uid for i in self.instances}

    def transfer_syntaxes(self) -> set[str]:
        return {i.transfer_syntax_uid for i in self.instances}


# --------------------------------------------------------------------------------------------
# What to generate

PATIENTS: tuple[Patient, ...] = (
    Patient("LAB0001", "SMITH^JOHN", "19560312", "M", None),
    Patient("LAB0002", "SMITH^JANE", "19610704", "F", None),
    Patient("LAB0003", "DOE^ALICE", "19850102", "F", None),
    Patient("LAB0004", "Müller^Jürgen", "19700815", "M", UTF8),
    Patient("LAB0005", "Yamada^Tarou=山田^太郎", "19790222", "M", UTF8),
    Patient("LAB0006", "O'NEIL^MARY ANN", "19921130", "F", None),
)


@dataclass(frozen=True)
class _SeriesSpec:
    modality: str
    description: str
    body_part: str
    count: int
    rle: tuple[int, ...] = ()  # instance numbers (1-based) written RLE Lossless
    kind: str = ""  # pixel recipe: "ct", "mr", "cr1", "cr2", "us", "us-cine"
    rescale: tuple[float, float] = (1.0, -1024.0)  # CT (slope, intercept)
    window: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    window_explanation: tuple[str, ...] = ()


@dataclass(frozen=True)
class _StudySpec:
    patient_id: str
    date: str
    time: str
    accession: str
    description: str
    referring: str
    series: tuple[_SeriesSpec, ...]


def _all(n: int) -> tuple[int, ...]:
    return tuple(range(1, n + 1))


STUDY_SPECS: tuple[_StudySpec, ...] = (
    _StudySpec("LAB0001", "20150314", "093012", "ACC2015001", "CT CHEST W/O CONTRAST",
               "HOUSE^GREGORY^^DR", (
                   _SeriesSpec("CT", "AXIAL 5MM", "CHEST", 8, kind="ct",
                               window=((40.0,), (400.0,))),
               )),
    _StudySpec("LAB0001", "20190602", "141500", "ACC2019002", "XR CHEST 2 VIEWS",
               "WILSON^JAMES", (
                   _SeriesSpec("CR", "CHEST PA/LAT", "CHEST", 2, rle=(2,), kind="cr1",
                               window=((2048.0,), (4096.0,))),
               )),
    _StudySpec("LAB0001", "20241120", "110000", "ACC2024003", "CT ABDOMEN PELVIS",
               "CUDDY^LISA", (
                   # stored values are HU themselves: negative numbers in the pixel data
                   _SeriesSpec("CT", "AXIAL 3MM", "ABDOMEN", 8, rle=_all(8), kind="ct",
                               rescale=(1.0, 0.0), window=((50.0,), (350.0,))),
                   _SeriesSpec("CT", "CORONAL MPR", "ABDOMEN", 4, kind="ct",
                               rescale=(2.0, -1024.0), window=((50.0,), (350.0,))),
               )),
    _StudySpec("LAB0002", "20160930", "080545", "ACC2016004", "MR BRAIN",
               "HOUSE^GREGORY^^DR", (
                   _SeriesSpec("MR", "T1 SAG", "HEAD", 5, kind="mr", window=((500.0,), (1000.0,))),
                   _SeriesSpec("MR", "T2 AX", "HEAD", 5, kind="mr", window=((700.0,), (1400.0,))),
               )),
    _StudySpec("LAB0002", "20230117", "153020", "ACC2023005", "US ABDOMEN",
               "WILSON^JAMES", (
                   _SeriesSpec("US", "ABDOMEN", "ABDOMEN", 3, kind="us"),
                   _SeriesSpec("US", "LIVER CINE", "ABDOMEN", 1, kind="us-cine"),
               )),
    _StudySpec("LAB0003", "20181205", "101010", "ACC2018006", "XR HAND LEFT", "", (
        _SeriesSpec("CR", "HAND PA", "HAND", 2, kind="cr2", window=((2048.0,), (4096.0,))),
    )),
    _StudySpec("LAB0003", "20250228", "164500", "ACC2025007", "MR KNEE RIGHT",
               "CUDDY^LISA", (
                   # no window: viewers must derive one from the pixel values
                   _SeriesSpec("MR", "PD FS COR", "KNEE", 8, rle=(2, 4, 6, 8), kind="mr"),
               )),
    _StudySpec("LAB0004", "20200709", "074500", "ACC2020008", "CT SCHÄDEL NATIV",
               "Schäfer^Anna", (
                   _SeriesSpec("CT", "AXIAL", "HEAD", 5, kind="ct",
                               window=((40.0, 600.0), (80.0, 2800.0)),
                               window_explanation=("BRAIN", "BONE")),
                   _SeriesSpec("CR", "SKULL AP", "SKULL", 1, kind="cr1",
                               window=((2048.0,), (4096.0,))),
               )),
    _StudySpec("LAB0005", "20210412", "120000", "ACC2021009", "MR L-SPINE",
               "Suzuki^Ichiro=鈴木^一郎", (
                   _SeriesSpec("MR", "T1 SAG", "LSPINE", 6, kind="mr", window=((500.0,), (1000.0,))),
                   _SeriesSpec("MR", "T2 SAG", "LSPINE", 6, kind="mr", window=((700.0,), (1400.0,))),
               )),
    _StudySpec("LAB0006", "20170821", "090000", "ACC2017010", "US THYROID",
               "HOUSE^GREGORY^^DR", (
                   _SeriesSpec("US", "THYROID", "NECK", 2, rle=(2,), kind="us"),
               )),
)


# --------------------------------------------------------------------------------------------
# Pixel recipes (formulas only, so the files are the same on every run)


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    return (x - (cols - 1) / 2) / (cols / 2), (y - (rows - 1) / 2) / (rows / 2)


def _ct_hu(index: int, count: int, size: int = 64) -> np.ndarray:
    """A body slice in Hounsfield units: air, soft tissue, lungs, spine, a growing lesion."""
    x, y = _grid(size, size)
    t = index / max(count - 1, 1)
    hu = np.full((size, size), -1000.0)
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1.0
    hu[body] = 20.0 + 40.0 * x[body]  # a gradient across the body, so windowing shows it
    for cx in (-0.4, 0.4):
        lung = ((x - cx) / 0.28) ** 2 + ((y + 0.05) / 0.4) ** 2 <= 1.0
        hu[lung] = -850.0
    spine = x**2 + (y - 0.45) ** 2 <= 0.12**2
    hu[spine] = 700.0 + 300.0 * t
    lesion = (x - 0.1) ** 2 + (y + 0.1) ** 2 <= (0.05 + 0.15 * t) ** 2
    hu[lesion] = 60.0 + 40.0 * t
    return hu


def _ct_pixels(index: int, count: int, slope: float, intercept: float) -> np.ndarray:
    stored = np.round((_ct_hu(index, count) - intercept) / slope)
    return stored.astype(np.int16)


def _mr_pixels(index: int, count: int, size: int = 64) -> np.ndarray:
    x, y = _grid(size, size)
    t = index / max(count - 1, 1)
    r2 = x**2 + (y / 0.9) ** 2
    img = np.where(r2 <= 0.8, 900.0 + 500.0 * (1.0 - r2), 0.0)
    img += np.where(r2 <= 0.8, 300.0 * np.cos(6.0 * x + 4.0 * t) ** 2, 0.0)
    ring = np.abs(np.sqrt(r2) - 0.85) < 0.05
    img[ring] = 1900.0  # bright fat ring: the maximum stays below 2**12
    return np.clip(np.round(img), 0, 4095).astype(np.uint16)


def _cr_pixels(index: int, monochrome1: bool, rows: int = 80, cols: int = 96) -> np.ndarray:
    """A radiograph: direct exposure, soft tissue, 'bones'. Non-square on purpose."""
    x, y = _grid(rows, cols)
    dense = np.full((rows, cols), 0.05)  # attenuation 0 (air) .. 1 (bone)
    body = (x / (0.7 + 0.05 * index)) ** 2 + (y / 0.9) ** 2 <= 1.0
    dense[body] = 0.45 + 0.1 * y[body]
    for cx in (-0.25, 0.25):
        bone = (np.abs(x - cx) < 0.06) & (np.abs(y) < 0.8)
        dense[bone] = 0.9
    if monochrome1:  # high values display dark: direct exposure (air) is high
        img = 4000.0 - 3600.0 * dense
    else:
        img = 100.0 + 3600.0 * dense
    return np.round(img).astype(np.uint16)


def _us_frame(index: int, rows: int = 48, cols: int = 64) -> np.ndarray:
    """An RGB sector with a red/blue 'Doppler' box that moves with ``index``."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    cx = (cols - 1) / 2
    r = np.hypot(x - cx, y)
    angle = np.arctan2(x - cx, y + 1e-9)
    sector = (r < rows - 2) & (np.abs(angle) < 0.7)
    gray = np.where(sector, 60.0 + 120.0 * np.abs(np.sin(r / 3.0 + index)), 0.0)
    rgb = np.stack([gray, gray, gray], axis=-1)
    x0 = 20 + 4 * index
    rgb[18:28, x0:x0 + 10, 0] = 200.0
    rgb[18:28, x0:x0 + 10, 1] = 30.0
    rgb[18:28, x0 + 5:x0 + 10, 2] = 220.0
    return np.round(rgb).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Writing


_SOP_CLASS = {"ct": CT_IMAGE_STORAGE, "mr": MR_IMAGE_STORAGE, "cr1": CR_IMAGE_STORAGE,
              "cr2": CR_IMAGE_STORAGE, "us": US_IMAGE_STORAGE,
              "us-cine": US_MULTIFRAME_IMAGE_STORAGE}


def _age(birth: str, on: str) -> str:
    years = int(on[:4]) - int(birth[:4]) - (1 if on[4:] < birth[4:] else 0)
    return f"{years:03d}Y"


def _ds_base(patient: Patient, study: _StudySpec, study_uid: str, study_id: str) -> Dataset:
    ds = Dataset()
    if patient.charset:
        ds.SpecificCharacterSet = patient.charset
    elif not (study.description + study.referring).isascii():
        ds.SpecificCharacterSet = UTF8
    ds.StudyDate = study.date
    ds.StudyTime = study.time
    ds.AccessionNumber = study.accession
    ds.Manufacturer = "PACSBROWSER TEST LAB"
    ds.InstitutionName = "Test Lab Hospital"
    ds.ReferringPhysicianName = study.referring
    ds.StudyDescription = study.description
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = _age(patient.birth_date, study.date)
    ds.StudyInstanceUID = study_uid
    ds.StudyID = study_id
    return ds


def generate(root: Path) -> Catalog:
    """Write the lab's DICOM files under ``root`` (created if needed) and describe them."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    patients = {p.patient_id: p for p in PATIENTS}
    studies: list[Study] = []
    all_series: list[Series] = []
    instances: list[Instance] = []

    for s_index, spec in enumerate(STUDY_SPECS, start=1):
        patient = patients[spec.patient_id]
        study_uid = lab_uid("study", spec.accession)
        study_id = f"S{s_index:02d}"
        study_instances = 0
        for se_number, se in enumerate(spec.series, start=1):
            series_uid = lab_uid("series", spec.accession, se_number)
            frame_of_reference = lab_uid("for", spec.accession, se_number)
            sop_class = _SOP_CLASS[se.kind]
            photometric = ""
            for number in range(1, se.count + 1):
                ds = _ds_base(patient, spec, study_uid, study_id)
                sop_uid = lab_uid("instance", spec.accession, se_number, number)
                ds.SOPClassUID = sop_class
                ds.SOPInstanceUID = sop_uid
                ds.SeriesDate = spec.date
                ds.SeriesTime = spec.time
                ds.ContentDate = spec.date
                ds.ContentTime = f"{spec.time[:4]}{(int(spec.time[4:6]) + number) % 60:02d}"
                ds.Modality = se.modality
                ds.SeriesDescription = se.description
                ds.BodyPartExamined = se.body_part
                ds.SeriesInstanceUID = series_uid
                ds.SeriesNumber = se_number
                ds.InstanceNumber = number
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                frames = 1
                if se.kind == "ct":
                    slope, intercept = se.rescale
                    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
                    ds.set_pixel_data(_ct_pixels(number - 1, se.count, slope, intercept),
                                      "MONOCHROME2", 16, generate_instance_uid=False)
                    ds.RescaleSlope = slope
                    ds.RescaleIntercept = intercept
                    ds.RescaleType = "HU"
                elif se.kind == "mr":
                    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
                    ds.ScanningSequence = "SE"
                    ds.SequenceVariant = "NONE"
                    ds.MagneticFieldStrength = 1.5
                    ds.set_pixel_data(_mr_pixels(number - 1, se.count), "MONOCHROME2", 12,
                                      generate_instance_uid=False)
                elif se.kind in ("cr1", "cr2"):
                    mono1 = se.kind == "cr1"
                    ds.ImageType = ["ORIGINAL", "PRIMARY"]
                    ds.ViewPosition = "PA" if number == 1 else "LL"
                    ds.ImagerPixelSpacing = [0.5, 0.5]
                    ds.set_pixel_data(_cr_pixels(number - 1, mono1),
                                      "MONOCHROME1" if mono1 else "MONOCHROME2", 12,
                                      generate_instance_uid=False)
                elif se.kind == "us":
                    ds.ImageType = ["ORIGINAL", "PRIMARY"]
                    ds.set_pixel_data(_us_frame(number - 1), "RGB", 8,
                                      generate_instance_uid=False)
                elif se.kind == "us-cine":
                    ds.ImageType = ["ORIGINAL", "PRIMARY"]
                    frames = 4
                    cine = np.stack([_us_frame(f) for f in range(frames)])
                    ds.set_pixel_data(cine, "RGB", 8, generate_instance_uid=False)
                    ds.FrameTime = 33.3
                    ds.FrameIncrementPointer = 0x00181063  # Frame Time
                    ds.CineRate = 30
                else:  # pragma: no cover - a typo in STUDY_SPECS
                    raise ValueError(se.kind)
                photometric = ds.PhotometricInterpretation
                if se.modality in ("CT", "MR"):
                    ds.PatientPosition = "HFS"
                    ds.FrameOfReferenceUID = frame_of_reference
                    ds.SliceThickness = 5.0
                    ds.PixelSpacing = [0.8, 0.8]
                    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                    z = -100.0 + 5.0 * (number - 1)
                    ds.ImagePositionPatient = [-25.6, -25.6, z]
                    ds.SliceLocation = z
                if se.window is not None:
                    centers, widths = se.window
                    ds.WindowCenter = list(centers) if len(centers) > 1 else centers[0]
                    ds.WindowWidth = list(widths) if len(widths) > 1 else widths[0]
                    if se.window_explanation:
                        ds.WindowCenterWidthExplanation = list(se.window_explanation)
                if number in se.rle:
                    ds.compress(RLELossless, generate_instance_uid=False)
                ds.file_meta.MediaStorageSOPClassUID = sop_class
                ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
                path = root / patient.patient_id / spec.accession / f"{se_number:02d}" / f"{number:03d}.dcm"
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
                instances.append(Instance(
                    sop_instance_uid=sop_uid,
                    sop_class_uid=str(sop_class),
                    transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                    path=path,
                    series_uid=series_uid,
                    study_uid=study_uid,
                    patient_id=patient.patient_id,
                    modality=se.modality,
                    number=number,
                    rows=int(ds.Rows),
                    columns=int(ds.Columns),
                    frames=frames,
                    photometric=str(photometric),
                    samples_per_pixel=int(ds.SamplesPerPixel),
                    bits_allocated=int(ds.BitsAllocated),
                    pixel_representation=int(ds.PixelRepresentation),
                ))
            study_instances += se.count
            all_series.append(Series(
                uid=series_uid,
                study_uid=study_uid,
                patient_id=patient.patient_id,
                modality=se.modality,
                number=se_number,
                description=se.description,
                body_part=se.body_part,
                instance_count=se.count,
                sop_class_uid=str(sop_class),
                photometric=str(photometric),
            ))
        charset = patient.charset or (
            UTF8 if not (spec.description + spec.referring).isascii() else None
        )
        studies.append(Study(
            uid=study_uid,
            patient_id=patient.patient_id,
            patient_name=patient.name,
            date=spec.date,
            time=spec.time,
            accession=spec.accession,
            description=spec.description,
            referring_physician=spec.referring,
            study_id=study_id,
            modalities=tuple(sorted({se.modality for se in spec.series})),
            series_count=len(spec.series),
            instance_count=study_instances,
            charset=charset,
        ))

    return Catalog(
        root=root,
        patients=PATIENTS,
        studies=tuple(studies),
        series=tuple(all_series),
        instances=tuple(instances),
    )
