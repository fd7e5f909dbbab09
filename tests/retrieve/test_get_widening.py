"""Issue 15, item 8: a PACS whose instance query leaves out SOPClassUID. The C-GET then proposes a
common set of storage classes; instances of other classes used to be lost (the PACS could not send
them on any context). Now the study's SOP Classes in Study are asked for, and when the PACS does not
say those either, the remaining storage classes are proposed on further associations: those
instances arrive too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.dicom.contexts import DEFAULT_CLASSES
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.client import profile_for, run
from tests.lab.data import lab_uid

from .helpers import RetrieveSCP, whole_files_only

pytestmark = pytest.mark.timeout(120)

CT = "1.2.840.10008.5.1.4.1.1.2"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
OPHTHALMIC_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
ENCAPSULATED_STL = "1.2.840.10008.5.1.4.1.1.104.3"


class NoClassSCP(RetrieveSCP):
    """Answers IMAGE-level C-FIND without SOPClassUID (as some archives do)."""

    def _on_find(self, event: Any):
        for status, answer in super()._on_find(event):
            if answer is not None and "SOPClassUID" in answer:
                del answer.SOPClassUID
            yield status, answer


class ClassesInStudySCP(NoClassSCP):
    """Leaves SOPClassUID out of its instance answers but answers SOP Classes in Study at STUDY level."""

    def _on_find(self, event: Any):
        if event.identifier.QueryRetrieveLevel != "STUDY":
            yield from super()._on_find(event)
            return
        matches = self._matches(event.identifier)
        if matches:
            answer = Dataset()
            answer.QueryRetrieveLevel = "STUDY"
            answer.StudyInstanceUID = matches[0].StudyInstanceUID
            answer.SOPClassesInStudy = sorted({str(ds.SOPClassUID) for ds in matches})
            yield 0xFF00, answer


class Source:
    def __init__(self, path: Path, uid: str) -> None:
        self.path, self.sop_instance_uid = path, uid


def _make(root: Path) -> list[Source]:
    study, series = lab_uid("widen", "study"), lab_uid("widen", "series")
    out = []
    for n, sop_class in enumerate((CT, CT, VL_PHOTOGRAPHIC, VL_PHOTOGRAPHIC, OPHTHALMIC_8BIT, ENCAPSULATED_STL)):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, lab_uid("widen", n)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID, ds.StudyDate, ds.Modality = "WIDEN^TEST", "WIDEN", "20240101", "OT"
        ds.InstanceNumber = n + 1
        if sop_class != ENCAPSULATED_STL:
            ds.set_pixel_data(np.full((8, 8), n, dtype=np.uint8), "MONOCHROME2", 8, generate_instance_uid=False)
        else:
            ds.MIMETypeOfEncapsulatedDocument = "model/stl"
            ds.EncapsulatedDocument = b"solid x\nendsolid x\n"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = sop_class, ds.SOPInstanceUID
        path = root / f"{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(Source(path, str(ds.SOPInstanceUID)))
    return out


def _check(archive: Archive, sources: list[Source]) -> None:
    for source in sources:
        row = archive.instance(source.sop_instance_uid)
        assert row is not None
        got, want = pydicom.dcmread(row.path), pydicom.dcmread(source.path)
        assert got.SOPClassUID == want.SOPClassUID
        if "PixelData" in want:
            assert np.array_equal(got.pixel_array, want.pixel_array)
        else:
            assert got.EncapsulatedDocument == want.EncapsulatedDocument
    whole_files_only(archive)


def test_get_asks_sop_classes_in_study_when_the_instances_do_not_say(start_scp, archive: Archive, workdir: Path):
    sources = _make(workdir)
    scp = start_scp(ClassesInStudySCP, [s.path for s in sources])
    service = RetrieveService(profile_for(scp), archive, cancel_timeout=3.0)
    summary = run(service.get_study(lab_uid("widen", "study")).wait(), timeout=90)
    print(f"associations {summary.associations}, requests {summary.requests}, notes {summary.notes}")
    assert summary.complete, summary.reasons
    assert summary.received == 6 and summary.failed == 0
    # the study-level query of the shortcut (the classes, but no count: the listing is needed), the
    # instance listing (the classes not asked again), one C-GET
    assert summary.associations == 3
    assert any("SOP Classes in Study" in n for n in summary.notes), summary.notes
    _check(archive, sources)


def test_get_widens_its_classes_when_the_pacs_does_not_say_them(start_scp, archive: Archive, workdir: Path):
    assert VL_PHOTOGRAPHIC not in DEFAULT_CLASSES and OPHTHALMIC_8BIT not in DEFAULT_CLASSES
    sources = _make(workdir)
    scp = start_scp(NoClassSCP, [s.path for s in sources])
    service = RetrieveService(profile_for(scp), archive, cancel_timeout=3.0)
    summary = run(service.get_study(lab_uid("widen", "study")).wait(), timeout=90)
    print(f"associations {summary.associations}, requests {summary.requests}, received {summary.received}, "
          f"notes {summary.notes}")
    assert summary.complete, summary.reasons
    assert summary.received == 6 and summary.failed == 0 and not summary.missing
    assert any("other storage classes were proposed" in n for n in summary.notes), summary.notes
    assert summary.associations <= 4  # the queries, the default set, two groups of the others
    _check(archive, sources)
