"""An archive for the thumbnails and preview tests: the lab's 66 instances (CT, MR, CR
MONOCHROME1, US RGB, a 4-frame US, RLE files) plus, in the CT chest study, a structured report, an
encapsulated PDF and a CT slice whose pixel data is cut short."""

from __future__ import annotations

import gc
from pathlib import Path

import shiboken6
from pydicom import dcmread
from pydicom.uid import generate_uid

from pacsbrowser.core.archive import Archive
from tests.imaging.samples import make_samples
from tests.lab.data import Catalog

EXTRA_STUDY = "ACC2015001"  # CT CHEST W/O CONTRAST: 8 slices


def _retarget(src: Path, dst: Path, catalog: Catalog, series_uid: str, number: int) -> Path:
    study = catalog.study_by_accession(EXTRA_STUDY)
    ds = dcmread(src)
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID, ds.PatientName = study.patient_id, study.patient_name
    ds.AccessionNumber = EXTRA_STUDY
    ds.StudyDate, ds.StudyTime, ds.StudyDescription = study.date, study.time, study.description
    ds.SeriesNumber = number
    ds.InstanceNumber = 1
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(dst, enforce_file_format=True)
    return dst


def damaged_copy(src: Path, dst: Path) -> Path:
    """A copy of `src` under a new SOP Instance UID, its pixel data cut in half."""
    ds = dcmread(src)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = 99
    ds.save_as(dst, enforce_file_format=True)
    data = dst.read_bytes()
    dst.write_bytes(data[: len(data) - len(ds.PixelData) // 2])
    return dst


def extras(root: Path, catalog: Catalog) -> dict[str, Path]:
    """The SR, the PDF and the damaged slice, ready to import."""
    root.mkdir(parents=True, exist_ok=True)
    samples = make_samples(root / "samples")
    study = catalog.study_by_accession(EXTRA_STUDY)
    ct = catalog.instances_of_study(study.uid)[0]
    return {
        "sr": _retarget(samples["sr"].path, root / "sr.dcm", catalog, generate_uid(), 90),
        "pdf": _retarget(samples["pdf"].path, root / "pdf.dcm", catalog, generate_uid(), 91),
        "damaged": damaged_copy(ct.path, root / "damaged.dcm"),
    }


def fill(archive: Archive, paths: list[Path]) -> None:
    for path in paths:
        archive.import_file(path)
    archive.flush()


def dispose(widget) -> None:
    """Close and delete a top-level widget now, at a known point: left to the garbage collector,
    its deletion can come in the middle of a later test's event handling."""
    if shiboken6.isValid(widget):
        widget.close()
        shiboken6.delete(widget)
    gc.collect()  # what it leaves in reference cycles goes now, on the GUI thread
