"""QIDO-RS against Orthanc's DICOMweb plugin holding the lab data: the query cases of
tests/query/test_peers.py (C-FIND) give the same answers over DICOMweb, non-Latin names included."""

from __future__ import annotations

from datetime import date

import pytest

from pacsbrowser.core.records import (
    Completeness,
    InstanceResult,
    PatientResult,
    QueryKeys,
    SeriesResult,
    StudyResult,
)
from pacsbrowser.core.web import WebQueryService
from tests.lab.client import run
from tests.lab.data import Catalog
from tests.lab.query_cases import (
    GERMAN_NAME_TYPED,
    JAPANESE_NAME_TYPED,
    PATIENT_CASES,
    PHYSICIAN_CASES,
    STUDY_CASES,
    study_case,
)

from .conftest import web_profile

pytestmark = pytest.mark.timeout(180)


def find(peer, keys, **kw):
    service = WebQueryService(web_profile(peer, **kw.pop("endpoint", {})))
    job = service.find(keys, **kw)
    results = run(job.collect())
    assert job.outcome is not None and job.outcome.count == len(results)
    return results, job.outcome


def uids(results) -> set[str]:
    return {r.key for r in results}


@pytest.mark.parametrize("case", STUDY_CASES)
def test_study_cases_of_c_find_give_the_same_over_qido(web_orthanc, lab_data: Catalog, case):
    keys, expected = study_case(lab_data, case)
    results, outcome = find(web_orthanc, keys)
    assert uids(results) == {s.uid for s in expected}
    assert len(results) == len(expected)
    assert all(isinstance(r, StudyResult) for r in results)
    assert outcome.completeness is Completeness.COMPLETE, outcome.reasons
    by_uid = {s.uid: s for s in lab_data.studies}
    for result in results:
        study = by_uid[result.study_instance_uid]
        assert result.patient_id == study.patient_id
        assert result.patient_name.dicom == study.patient_name
        assert result.accession_number == study.accession
        assert result.study_date == date.fromisoformat(f"{study.date[:4]}-{study.date[4:6]}-{study.date[6:]}")
        assert result.study_time is not None and result.study_time.strftime("%H%M%S") == study.time
        assert result.study_description == study.description
        assert result.referring_physician.dicom == study.referring_physician
        assert result.number_of_series == study.series_count
        assert result.number_of_instances == study.instance_count
        assert result.modalities == study.modalities


@pytest.mark.parametrize("keys, expected_ids", PATIENT_CASES)
def test_patients_are_found_through_their_studies(web_orthanc, lab_data, keys, expected_ids):
    results, _ = find(web_orthanc, keys)
    assert {r.patient_id for r in results} == expected_ids and len(results) == len(expected_ids)
    for result in results:
        assert isinstance(result, PatientResult)
        patient = lab_data.patient(result.patient_id)
        assert result.patient_name.dicom == patient.name
        assert result.birth_date is not None and result.birth_date.strftime("%Y%m%d") == patient.birth_date
        assert result.sex == patient.sex


def test_series_and_instances_of_every_study(web_orthanc, lab_data):
    for study in lab_data.studies:
        series, outcome = find(web_orthanc, QueryKeys.series(study.uid))
        assert uids(series) == {s.uid for s in lab_data.series_of(study.uid)}, study.accession
        assert outcome.complete
        for result in series:
            assert isinstance(result, SeriesResult)
            spec = lab_data.get_series(result.series_instance_uid)
            assert (result.modality, result.series_number) == (spec.modality, spec.number)
            assert result.study_instance_uid == study.uid
            assert result.number_of_instances == spec.instance_count
            instances, _ = find(web_orthanc, QueryKeys.instances(study.uid, spec.uid))
            assert uids(instances) == {i.sop_instance_uid for i in lab_data.instances_of_series(spec.uid)}
            assert sorted(i.instance_number for i in instances) == list(range(1, spec.instance_count + 1))
            assert all(isinstance(i, InstanceResult) and i.sop_class_uid == spec.sop_class_uid for i in instances)


def test_series_filtered_by_modality(web_orthanc, lab_data):
    study = lab_data.study_by_accession("ACC2020008")
    results, _ = find(web_orthanc, QueryKeys.series(study.uid, modality="cr"))
    assert [r.modality for r in results] == ["CR"]


@pytest.mark.parametrize("typed", GERMAN_NAME_TYPED)
def test_a_german_name_is_found(web_orthanc, lab_data, typed):
    patients, _ = find(web_orthanc, QueryKeys.patients(patient_name=typed))
    assert [p.patient_id for p in patients] == ["LAB0004"]
    assert patients[0].patient_name.display == "Müller, Jürgen"
    (study,), _ = find(web_orthanc, QueryKeys.studies(patient_name=typed))
    assert study.study_instance_uid == lab_data.studies_of("LAB0004")[0].uid
    assert (study.study_description, study.referring_physician.dicom) == ("CT SCHÄDEL NATIV", "Schäfer^Anna")


@pytest.mark.parametrize("typed", JAPANESE_NAME_TYPED)
def test_a_japanese_name_is_found_with_its_ideographic_group(web_orthanc, typed):
    patients, _ = find(web_orthanc, QueryKeys.patients(patient_name=typed))
    assert [p.patient_id for p in patients] == ["LAB0005"]
    name = patients[0].patient_name
    assert (name.alphabetic, name.ideographic) == ("Yamada^Tarou", "山田^太郎")
    (study,), _ = find(web_orthanc, QueryKeys.studies(patient_name=typed))
    assert study.referring_physician.ideographic == "鈴木^一郎"


@pytest.mark.parametrize("typed, accessions", PHYSICIAN_CASES)
def test_referring_physician(web_orthanc, typed, accessions):
    results, _ = find(web_orthanc, QueryKeys.studies(referring_physician=typed))
    assert {r.accession_number for r in results} == accessions


def test_a_non_ascii_description_is_found(web_orthanc, lab_data):
    results, _ = find(web_orthanc, QueryKeys.studies(study_description="schädel"))
    assert [r.patient_id for r in results] == ["LAB0004"]


def test_pages_are_streamed_and_the_limit_holds(web_orthanc, lab_data):
    """page_size 3: the ten studies come in four pages, each handed over as it arrives."""
    service = WebQueryService(web_profile(web_orthanc, page_size=3))

    async def pages():
        job = service.find(QueryKeys.studies())
        sizes = [len(batch) async for batch in job.batches()]
        return sizes, job

    sizes, job = run(pages())
    assert sizes == [3, 3, 3, 1] and job.count == len(lab_data.studies)
    assert len(job.queries) == 1  # one request; its pages differ by offset only
    results, outcome = find(web_orthanc, QueryKeys.studies(), limit=4, endpoint={"page_size": 3})
    assert len(results) == 4 and outcome.limit_reached and outcome.incomplete
    print(f"first page after {outcome.first_result_after * 1000:.0f} ms")


def test_the_query_as_sent_is_described_without_patient_data(web_orthanc):
    service = WebQueryService(web_profile(web_orthanc))
    text = service.prepare(QueryKeys.studies(patient_name="müller", study_date="20200101-")).describe()
    assert text.startswith("STUDY level, QIDO-RS; matching")
    assert "MÜLLER" not in text and "StudyDate = 20200101-" in text


def test_cancel_stops_after_the_page_under_way(web_orthanc, lab_data):
    service = WebQueryService(web_profile(web_orthanc, page_size=2))

    async def cancelled():
        job = service.find(QueryKeys.studies())
        async for batch in job.batches():
            assert len(batch) == 2
            job.cancel()
        return job

    job = run(cancelled())
    assert job.count == 2 < len(lab_data.studies)
    assert job.outcome.cancelled and job.outcome.incomplete and "cancelled" in job.outcome.reasons


def test_a_wrong_root_is_a_404_in_words(web_orthanc):
    from pacsbrowser.core.web import NotFoundAtURL

    service = WebQueryService(web_profile(web_orthanc, url=web_orthanc.url + "/nothing"))
    with pytest.raises(NotFoundAtURL, match="check the DICOMweb root"):
        run(service.find(QueryKeys.studies()).collect())
