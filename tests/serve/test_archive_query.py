"""The archive answers C-FIND identifiers (PS3.4 C.2.2.2 matching) from its index."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from benchmarks.archive_query import fill_index, study_identifier
from pacsbrowser.core.archive import Archive
from pacsbrowser.core.archive.query import ArchiveQuery, QueryError


@pytest.fixture(scope="module")
def query(tmp_path_factory: pytest.TempPathFactory):
    root = Path(tmp_path_factory.mktemp("q")) / "archive"
    fill_index(root, studies=60, series=2, instances=3)
    archive = Archive(root, readonly=True)
    yield ArchiveQuery(archive)
    archive.close()


def uids(answers) -> set[str]:
    return {str(a.StudyInstanceUID) for a in answers}


def test_universal_match_returns_every_study_with_counts(query: ArchiveQuery) -> None:
    answers = list(query.find(study_identifier(), "STUDY"))
    assert len(answers) == 60
    first = answers[0]
    assert first.NumberOfStudyRelatedSeries == 2 and first.NumberOfStudyRelatedInstances == 6
    assert len(first.ModalitiesInStudy) == 2 and first.QueryRetrieveLevel == "STUDY"


@pytest.mark.parametrize(("keys", "expected"), [
    ({"StudyInstanceUID": "1.2.3.7"}, {"1.2.3.7"}),
    ({"StudyInstanceUID": "1.2.3.7\\1.2.3.8\\9.9"}, {"1.2.3.7", "1.2.3.8"}),
    ({"AccessionNumber": "ACC000001?"}, {f"1.2.3.{n}" for n in range(10, 20)}),
    ({"PatientName": "name001^given1"}, {"1.2.3.1", "1.2.3.21", "1.2.3.41"}),
    ({"PatientName": "NAME00*"}, {f"1.2.3.{n}" for n in range(60) if n % 20 < 10}),
    ({"StudyDate": "20010202"}, {"1.2.3.1"}),
    ({"StudyDate": "20230101-"}, {f"1.2.3.{n}" for n in range(60) if n % 25 >= 23}),
    ({"StudyDate": "-20001231"}, {f"1.2.3.{n}" for n in range(60) if n % 25 == 0}),
    ({"StudyTime": "0100-0200"}, {"1.2.3.1", "1.2.3.25", "1.2.3.49"}),  # 02:xx after 02:00 is out
])
def test_matching(query: ArchiveQuery, keys: dict, expected: set[str]) -> None:
    assert uids(query.find(study_identifier(**keys), "STUDY")) == expected


def test_modalities_in_study_any_of(query: ArchiveQuery) -> None:
    got = list(query.find(study_identifier(ModalitiesInStudy="CT\\MR"), "STUDY"))
    assert got and all({"CT", "MR"} & set(a.ModalitiesInStudy) for a in got)
    assert len(got) < 60


def test_levels(query: ArchiveQuery) -> None:
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = "P000001"
    ds.PatientName = ""
    ds.NumberOfPatientRelatedStudies = ""
    ds.NumberOfPatientRelatedInstances = ""
    (patient,) = query.find(ds, "PATIENT")
    assert patient.NumberOfPatientRelatedStudies == 3 and patient.NumberOfPatientRelatedInstances == 18
    with pytest.raises(QueryError):
        list(query.find(ds, "STUDY"))
    series = Dataset()
    series.QueryRetrieveLevel = "SERIES"
    series.StudyInstanceUID = "1.2.3.5"
    series.SeriesInstanceUID = ""
    series.Modality = ""
    series.NumberOfSeriesRelatedInstances = ""
    got = list(query.find(series, "STUDY"))
    assert [s.SeriesInstanceUID for s in got] == ["1.2.3.5.0", "1.2.3.5.1"]
    assert all(s.NumberOfSeriesRelatedInstances == 3 for s in got)
    image = Dataset()
    image.QueryRetrieveLevel = "IMAGE"
    image.SeriesInstanceUID = "1.2.3.5.1"
    image.SOPInstanceUID = ""
    image.InstanceNumber = "2"
    assert [i.SOPInstanceUID for i in query.find(image, "STUDY")] == ["1.2.3.5.1.1"]
    study = Dataset()
    study.QueryRetrieveLevel = "STUDY"
    study.StudyInstanceUID = "1.2.3.5"
    assert len(query.instances(study, "STUDY")) == 6
