"""C-FIND against real peers (Orthanc with Utf8 and Latin1, DCMTK's dcmqrscp) holding the lab data:
counts equal to what the generated data holds, non-ASCII names at every level."""

from __future__ import annotations

from datetime import date

import pytest

from pacsbrowser.core.records import (
    Completeness,
    InstanceResult,
    PatientResult,
    QueryKeys,
    QueryModel,
    SeriesResult,
    StudyResult,
)
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

from .conftest import collect, service_for

pytestmark = pytest.mark.timeout(120)

PEERS = ["orthanc", "dcmqrscp"]


@pytest.fixture(params=PEERS)
def peer(request):
    return request.getfixturevalue(request.param)


def uids(results) -> set[str]:
    return {r.key for r in results}


def find(peer, keys, **kw):
    results, outcome = run(collect(service_for(peer), keys, **kw))
    assert outcome is not None and outcome.count == len(results)
    return results, outcome


def study_uids(studies) -> set[str]:
    return {s.uid for s in studies}


@pytest.mark.parametrize("case", STUDY_CASES)
def test_study_counts_equal_the_generated_data(peer, lab_data: Catalog, case):
    keys, expected = study_case(lab_data, case)
    assert expected, "the case must select something"
    results, outcome = find(peer, keys)
    assert uids(results) == study_uids(expected)
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
        # Orthanc fills these; dcmqrscp leaves them empty (None, not a crash) unless we found out
        assert result.number_of_series in (None, study.series_count)
        assert result.number_of_instances in (None, study.instance_count)
        assert result.modalities in (None, study.modalities)
        if keys.modalities:  # checked series by series where the PACS does not say
            assert result.modalities == study.modalities


def test_dcmqrscp_leaves_modalities_and_counts_empty_and_we_cope(dcmqrscp, lab_data):
    results, outcome = find(dcmqrscp, QueryKeys.studies())
    assert len(results) == len(lab_data.studies)
    assert all(r.modalities is None and r.number_of_series is None and r.number_of_instances is None for r in results)
    ct, outcome = find(dcmqrscp, QueryKeys.studies(modalities="CT"))
    assert any("checked series by series" in note for note in outcome.notes)
    for result in ct:
        study = lab_data.study(result.study_instance_uid)
        assert result.modalities == study.modalities and result.number_of_series == study.series_count
        written = result.dataset.ModalitiesInStudy  # the dataset agrees with the record
        assert ([written] if isinstance(written, str) else list(written)) == list(study.modalities)


def test_orthanc_fills_modalities_and_counts(orthanc, lab_data):
    results, _ = find(orthanc, QueryKeys.studies(patient_id="LAB0004"))
    (result,) = results
    study = lab_data.studies_of("LAB0004")[0]
    assert result.modalities == study.modalities == ("CR", "CT")
    assert (result.number_of_series, result.number_of_instances) == (study.series_count, study.instance_count)


@pytest.mark.parametrize("keys, expected_ids", PATIENT_CASES)
def test_patient_counts_equal_the_generated_data(peer, lab_data, keys, expected_ids):
    results, outcome = find(peer, keys)
    assert {r.patient_id for r in results} == expected_ids and len(results) == len(expected_ids)
    assert outcome.query_model is QueryModel.PATIENT_ROOT
    for result in results:
        assert isinstance(result, PatientResult)
        patient = lab_data.patient(result.patient_id)
        assert result.patient_name.dicom == patient.name
        assert result.birth_date is not None and result.birth_date.strftime("%Y%m%d") == patient.birth_date
        assert result.sex == patient.sex
        assert result.number_of_studies in (None, len(lab_data.studies_of(patient.patient_id)))


def test_series_and_instances_of_every_study(peer, lab_data):
    """Series and instance listing of each study equals the catalog (one association per level)."""
    for study in lab_data.studies:
        series, outcome = find(peer, QueryKeys.series(study.uid))
        expected = lab_data.series_of(study.uid)
        assert uids(series) == {s.uid for s in expected}, study.accession
        assert outcome.complete
        for result in series:
            assert isinstance(result, SeriesResult)
            spec = lab_data.get_series(result.series_instance_uid)
            assert (result.modality, result.series_number) == (spec.modality, spec.number)
            assert result.study_instance_uid == study.uid
            assert result.series_description in ("", spec.description)  # dcmqrscp: not in its index
            assert result.number_of_instances in (None, spec.instance_count)
            instances, _ = find(peer, QueryKeys.instances(study.uid, spec.uid))
            assert uids(instances) == {i.sop_instance_uid for i in lab_data.instances_of_series(spec.uid)}
            assert sorted(i.instance_number for i in instances) == list(range(1, spec.instance_count + 1))
            assert all(isinstance(i, InstanceResult) and i.sop_class_uid in ("", spec.sop_class_uid)
                       for i in instances)


def test_series_filtered_by_modality(peer, lab_data):
    study = lab_data.study_by_accession("ACC2020008")  # CT and CR series
    results, _ = find(peer, QueryKeys.series(study.uid, modality="cr"))
    assert [r.modality for r in results] == ["CR"]


# ----------------------------------------------------------------------------- non-ASCII


@pytest.mark.parametrize("typed", GERMAN_NAME_TYPED)
def test_a_german_name_is_found_by_a_non_ascii_query_at_every_level(peer, lab_data, typed):
    patients, _ = find(peer, QueryKeys.patients(patient_name=typed))
    assert [p.patient_id for p in patients] == ["LAB0004"]
    assert patients[0].patient_name.dicom == "Müller^Jürgen"
    assert patients[0].patient_name.display == "Müller, Jürgen"
    studies, _ = find(peer, QueryKeys.studies(patient_name=typed))
    (study,) = studies
    expected = lab_data.studies_of("LAB0004")[0]
    assert study.study_instance_uid == expected.uid
    assert (study.study_description, study.referring_physician.dicom) == ("CT SCHÄDEL NATIV", "Schäfer^Anna")
    _names_below_the_study_level(peer, lab_data, expected.uid, "Müller^Jürgen")


@pytest.mark.parametrize("typed", JAPANESE_NAME_TYPED)
def test_a_japanese_name_is_found_and_shown_with_its_ideographic_group(peer, lab_data, typed):
    patients, _ = find(peer, QueryKeys.patients(patient_name=typed))
    assert [p.patient_id for p in patients] == ["LAB0005"]
    name = patients[0].patient_name
    assert (name.alphabetic, name.ideographic) == ("Yamada^Tarou", "山田^太郎")
    studies, _ = find(peer, QueryKeys.studies(patient_name=typed))
    (study,) = studies
    assert study.referring_physician.ideographic == "鈴木^一郎"
    _names_below_the_study_level(peer, lab_data, study.study_instance_uid, "Yamada^Tarou=山田^太郎")


def _names_below_the_study_level(peer, lab_data, study_uid: str, name: str) -> None:
    """Series and instances asked with PatientName as an extra return key: the name is right."""
    series, _ = find(peer, QueryKeys.series(study_uid, extra={"PatientName": ""}))
    assert uids(series) == {s.uid for s in lab_data.series_of(study_uid)}
    for result in series:
        assert str(result.dataset.PatientName) == name
        instances, _ = find(peer, QueryKeys.instances(study_uid, result.series_instance_uid,
                                                      extra={"PatientName": ""}))
        assert len(instances) == lab_data.get_series(result.series_instance_uid).instance_count
        assert {str(i.dataset.PatientName) for i in instances} == {name}


@pytest.mark.parametrize("typed, accessions", PHYSICIAN_CASES)
def test_referring_physician(peer, typed, accessions):
    results, _ = find(peer, QueryKeys.studies(referring_physician=typed))
    assert {r.accession_number for r in results} == accessions


def test_a_non_ascii_description_is_found(peer, lab_data):
    results, _ = find(peer, QueryKeys.studies(study_description="schädel"))
    assert [r.accession_number for r in results] == ["ACC2020008"]


# ----------------------------------------------------------------------------- Latin-1 Orthanc


def test_latin1_orthanc_is_read_by_its_own_charset_and_never_garbled(orthanc_latin1, lab_data):
    """Orthanc answers in its DefaultEncoding (Latin1) whatever we ask in (UTF-8): names it can
    hold come back right, and what it dropped (Japanese) is missing, not garbled."""
    service = service_for(orthanc_latin1)
    patients, outcome = run(collect(service, QueryKeys.patients()))
    assert len(patients) == len(lab_data.patients) and outcome.complete
    by_id = {p.patient_id: p for p in patients}
    assert by_id["LAB0004"].patient_name.dicom == "Müller^Jürgen"
    assert by_id["LAB0004"].charset_received == ("ISO_IR 100",)
    assert by_id["LAB0005"].patient_name.alphabetic == "Yamada^Tarou"
    assert by_id["LAB0005"].patient_name.ideographic in ("", "山田^太郎")
    for patient in patients:
        assert "\ufffd" not in patient.patient_name.dicom and "Ã" not in patient.patient_name.dicom
    # a UTF-8 query with an umlaut finds the Latin-1 answer, and a mixed-case name is found too
    studies, _ = run(collect(service, QueryKeys.studies(patient_name="müller")))
    assert [s.accession_number for s in studies] == ["ACC2020008"]
    assert (studies[0].study_description, studies[0].referring_physician.dicom) == ("CT SCHÄDEL NATIV",
                                                                                    "Schäfer^Anna")
    smiths, _ = run(collect(service, QueryKeys.studies(patient_name="smith")))
    assert len(smiths) == 5


def test_a_patient_root_profile_queries_studies_of_one_patient_in_patient_root(peer, lab_data):
    service = service_for(peer, query_model=QueryModel.PATIENT_ROOT)
    results, outcome = run(collect(service, QueryKeys.studies(patient_id="LAB0002")))
    assert outcome.query_model is QueryModel.PATIENT_ROOT
    assert uids(results) == study_uids(lab_data.studies_of("LAB0002"))
    # by date across patients Patient Root cannot ask: Study Root is used
    results, outcome = run(collect(service, QueryKeys.studies(study_date="2015")))
    assert outcome.query_model is QueryModel.STUDY_ROOT
    assert uids(results) == study_uids(lab_data.studies_between("20150101", "20151231"))
