"""Matching rules, date presets, identifiers and response decoding, without a network."""

from __future__ import annotations

from datetime import date, time
from io import BytesIO

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pynetdicom.dsutils import decode, encode

from pacsbrowser.core.client import DICOMClient
from pacsbrowser.core.dicom.charsets import canonical_term, decode_response
from pacsbrowser.core.dicom.identifiers import (
    build_identifier,
    identifier_to_json,
    parse_da,
    parse_is,
    parse_result,
    parse_tm,
)
from pacsbrowser.core.matching import DatePreset, contains_pattern, date_range, name_patterns, time_range
from pacsbrowser.core.query import QueryService
from pacsbrowser.core.records import (
    PersonName,
    QueryKeys,
    QueryLevel,
    QueryModel,
    ServerProfile,
    StudyResult,
)

TODAY = date(2024, 3, 1)  # the day after a leap day


def wire(ds: Dataset) -> Dataset:
    """`ds` as a peer's response arrives: encoded, then decoded by pynetdicom (raw elements)."""
    return decode(BytesIO(encode(ds, True, True)), True, True)


def put_raw(ds: Dataset, keyword: str, vr: str, value: bytes) -> None:
    """Put bytes into `ds` unconverted (as a raw element), however invalid for the VR."""
    tag = Tag(tag_for_keyword(keyword))
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


def raw_response(**elements: bytes) -> Dataset:
    """A response with text elements given as raw bytes (keyword=bytes), as a PACS may send them."""
    ds = Dataset()
    for keyword, value in elements.items():
        if keyword == "SpecificCharacterSet" and not value:
            continue
        vr = {"PatientName": "PN", "ReferringPhysicianName": "PN", "SpecificCharacterSet": "CS"}.get(keyword, "LO")
        put_raw(ds, keyword, vr, value)
    return ds  # not through wire(): pydicom's writer would decode (and repair) the raw text first


# ------------------------------------------------------------------------------- dates


@pytest.mark.parametrize("typed, sent", [
    ("20150314", "20150314"),
    ("2015-03-14", "20150314"),
    ("20150101-20191231", "20150101-20191231"),
    ("20200101-", "20200101-"),
    ("-20191231", "-20191231"),
    ("2015-01-01..2016-06-30", "20150101-20160630"),
    ("2015-01-01/", "20150101-"),
    ("2019", "20190101-20191231"),
    ("202402", "20240201-20240229"),
    ("today", "20240301"),
    ("Yesterday", "20240229"),
    ("last 7 days", "20240224-20240301"),
    ("last_30_days", "20240201-20240301"),
    (DatePreset.LAST_7_DAYS, "20240224-20240301"),
    ((date(2020, 1, 1), None), "20200101-"),
    ((None, date(2020, 1, 1)), "-20200101"),
    ("", ""),
])
def test_dates_become_dicom_ranges(typed, sent):
    assert date_range(typed, TODAY) == sent


@pytest.mark.parametrize("typed", ["2015-13-01", "20150230", "yesterdayish", "2015-01-01-2016-01-01", "-",
                                   "20200101-20190101", "abc"])
def test_what_is_not_a_date_is_refused_in_words(typed):
    with pytest.raises(ValueError) as error:
        date_range(typed, TODAY)
    assert str(error.value)


def test_presets_are_resolved_when_the_query_is_sent():
    service = QueryService(DICOMClient("127.0.0.1", 1), today=lambda: TODAY)
    prepared = service.prepare(QueryKeys.studies(study_date="last 7 days"))
    assert prepared.identifiers[0].StudyDate == "20240224-20240301"
    assert time_range("08:00-12:30") == "0800-1230"
    with pytest.raises(ValueError):
        time_range("25:00")


# ------------------------------------------------------------------------------- names


def test_name_rule_prefix_upper_case_first_then_as_typed_then_capitalised():
    assert name_patterns("smith") == ["SMITH*", "smith*", "Smith*"]
    assert name_patterns("Smith") == ["SMITH*", "Smith*"]
    assert name_patterns("SMITH") == ["SMITH*", "Smith*"]
    assert name_patterns("smith, john") == ["SMITH^JOHN*", "smith^john*", "Smith^John*"]
    assert name_patterns("müller") == ["MÜLLER*", "müller*", "Müller*"]
    assert name_patterns("SM?TH*") == ["SM?TH*", "Sm?Th*"]  # the user's own wildcards: no extra *
    assert name_patterns("山田") == ["*山田*"]  # may sit after '=' in the ideographic group
    assert name_patterns("  ") == []
    assert contains_pattern("chest") == "*CHEST*"
    assert contains_pattern("Schädel") == "*Schädel*"
    assert contains_pattern("CT*") == "CT*"


def test_a_name_query_tries_the_next_case_only_when_nothing_was_found():
    service = QueryService(DICOMClient("127.0.0.1", 1))
    prepared = service.prepare(QueryKeys.studies(patient_name="müller"))
    assert [ds.PatientName for ds in prepared.identifiers] == ["MÜLLER*", "müller*", "Müller*"]
    both = service.prepare(QueryKeys.studies(patient_name="MÜLLER", referring_physician="schäfer"))
    assert [(ds.PatientName, ds.ReferringPhysicianName) for ds in both.identifiers] == [
        ("MÜLLER*", "SCHÄFER*"), ("Müller*", "schäfer*"), ("Müller*", "Schäfer*")]


# ------------------------------------------------------------------------------- identifiers


def test_each_level_asks_for_what_a_results_tree_needs():
    study = build_identifier(QueryKeys.studies(accession_number="ACC1", modalities="CT,MR"))
    assert study.QueryRetrieveLevel == "STUDY"
    assert study.SpecificCharacterSet == "ISO_IR 192"
    assert study.AccessionNumber == "ACC1" and list(study.ModalitiesInStudy) == ["CT", "MR"]
    for keyword in ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "StudyInstanceUID",
                    "PatientName", "PatientBirthDate", "StudyDate", "StudyTime", "ReferringPhysicianName"):
        assert keyword in study and not study[keyword].value
    patient = build_identifier(QueryKeys.patients(patient_id="LAB*", sex="f"), model=QueryModel.PATIENT_ROOT)
    assert patient.QueryRetrieveLevel == "PATIENT" and patient.PatientSex == "F" and patient.PatientID == "LAB*"
    assert "NumberOfPatientRelatedStudies" in patient
    series = build_identifier(QueryKeys.series("1.2.3", modality="mr", extra={"PatientName": ""}))
    assert series.QueryRetrieveLevel == "SERIES" and series.StudyInstanceUID == "1.2.3" and series.Modality == "MR"
    assert "NumberOfSeriesRelatedInstances" in series and "PatientName" in series
    image = build_identifier(QueryKeys.instances("1.2.3", "1.2.3.4", extra=[("00280008", ""), "Rows="]))
    assert image.QueryRetrieveLevel == "IMAGE" and image.SeriesInstanceUID == "1.2.3.4"
    assert "SOPClassUID" in image and "InstanceNumber" in image and "NumberOfFrames" in image and "Rows" in image


def test_keys_that_cannot_be_sent_are_refused_before_anything_is_sent():
    with pytest.raises(ValueError, match="Study Instance UID"):
        QueryKeys.series("")
    with pytest.raises(ValueError, match="Series Instance UID"):
        QueryKeys.instances("1.2", "")
    with pytest.raises(ValueError, match="unknown DICOM attribute"):
        build_identifier(QueryKeys.studies(extra={"NoSuchKeyword": "x"}))
    with pytest.raises(ValueError, match="ISO_IR 100"):
        build_identifier(QueryKeys.studies(patient_name="山田*"), charset="ISO_IR 100")
    assert build_identifier(QueryKeys.studies(patient_name="Müller*"), charset="ISO_IR 100").PatientName == "Müller*"


def test_a_prepared_query_describes_what_it_matches_and_asks_back():
    service = QueryService(DICOMClient("h", 1))
    prepared = service.prepare(QueryKeys.studies(patient_name="smith", modalities="CT"))
    matching, asks_back = prepared.describe().split("\n")
    assert matching.startswith("STUDY level, Study Root; matching ")
    assert "PatientName = <redacted>" in matching and "ModalitiesInStudy = CT" in matching
    assert "SMITH" not in prepared.describe()  # for a log: patient data stays out
    assert "PatientName = SMITH*" in prepared.describe(redact=False)
    assert asks_back.startswith("asks back ") and "StudyInstanceUID" in asks_back
    assert "PatientName" not in asks_back and "ModalitiesInStudy" not in asks_back
    patients = QueryService(DICOMClient("h", 1)).prepare(QueryKeys.patients()).describe()
    assert patients.startswith("PATIENT level, Patient Root; matching ") and "PatientID" in patients


def test_patient_root_is_used_for_patients_and_where_the_profile_asks_for_it():
    profile = ServerProfile(name="p", host="h", port=1, called_ae="A", query_model=QueryModel.PATIENT_ROOT)
    service = QueryService(DICOMClient("h", 1), profile)
    assert service.prepare(QueryKeys.patients()).model is QueryModel.PATIENT_ROOT
    assert service.prepare(QueryKeys.studies(patient_id="LAB0001")).model is QueryModel.PATIENT_ROOT
    assert "PatientName" not in service.prepare(QueryKeys.studies(patient_id="LAB0001")).identifiers[0]
    # no single patient: Patient Root cannot ask that; Study Root can
    assert service.prepare(QueryKeys.studies(study_date="2020")).model is QueryModel.STUDY_ROOT
    default = QueryService(DICOMClient("h", 1))
    assert default.prepare(QueryKeys.studies(patient_id="LAB0001")).model is QueryModel.STUDY_ROOT
    assert default.prepare(QueryKeys.patients()).model is QueryModel.PATIENT_ROOT


# ------------------------------------------------------------------------------- responses


def test_a_study_response_becomes_a_typed_record():
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = "Yamada^Tarou=山田^太郎"
    ds.PatientID = "LAB0005"
    ds.PatientBirthDate = "19790222"
    ds.StudyDate = "20210412"
    ds.StudyTime = "120000.5"
    ds.ModalitiesInStudy = ["MR", "SR"]
    ds.NumberOfStudyRelatedSeries = "2"
    ds.NumberOfStudyRelatedInstances = ""
    ds.ReferringPhysicianName = "Suzuki^Ichiro=鈴木^一郎"
    ds.StudyInstanceUID = "1.2.3"
    result = parse_result(QueryLevel.STUDY, wire(ds))
    assert isinstance(result, StudyResult)
    assert result.patient_name == PersonName("Yamada^Tarou", "山田^太郎", "")
    assert (result.patient_name.family, result.patient_name.given) == ("Yamada", "Tarou")
    assert result.patient_name.display == "Yamada, Tarou (山田 太郎)"
    assert result.referring_physician.ideographic == "鈴木^一郎"
    assert result.birth_date == date(1979, 2, 22)
    assert result.study_date == date(2021, 4, 12) and result.study_time == time(12, 0, 0, 500000)
    assert result.modalities == ("MR", "SR")
    assert result.number_of_series == 2 and result.number_of_instances is None
    assert result.charset_received == ("ISO_IR 192",) and result.charset_note == ""
    assert str(result.dataset.PatientName) == "Yamada^Tarou=山田^太郎"
    assert "LAB0005" not in repr(result) and "Yamada" not in repr(result)  # repr() leaks no patient data
    as_json = identifier_to_json(result.dataset)
    assert as_json["PatientName"] == "Yamada^Tarou=山田^太郎"
    assert as_json["ModalitiesInStudy"] == ["MR", "SR"]
    assert as_json["NumberOfStudyRelatedSeries"] == 2 and as_json["NumberOfStudyRelatedInstances"] is None


def test_empty_and_broken_values_become_none_not_exceptions():
    ds = Dataset()
    put_raw(ds, "StudyDate", "DA", b"2021-99-99")
    put_raw(ds, "StudyTime", "TM", b"noon")
    put_raw(ds, "NumberOfStudyRelatedSeries", "IS", b"")
    put_raw(ds, "NumberOfStudyRelatedInstances", "IS", b"many")
    put_raw(ds, "ModalitiesInStudy", "CS", b"")
    put_raw(ds, "StudyInstanceUID", "UI", b"1.2")
    put_raw(ds, "PatientName", "PN", b"\xff\xfe")  # no charset, not UTF-8: the fallback (Latin-1)
    result = parse_result(QueryLevel.STUDY, ds)
    assert result.patient_name.family == "\xff\xfe" and "fallback" in result.charset_note
    assert result.study_date is None and result.study_time is None
    assert result.number_of_series is None and result.number_of_instances is None
    assert result.modalities is None and result.study_instance_uid == "1.2"
    assert parse_da("2015.03.14") == date(2015, 3, 14) and parse_tm("0930") == time(9, 30)
    assert parse_is(" 12 ") == 12 and parse_is("1.0") == 1 and parse_is("x") is None


@pytest.mark.parametrize("label, raw, fallback, expected, note", [
    # the response's own (0008,0005)
    (b"ISO_IR 192", "Müller^Jürgen".encode(), "ISO_IR 100", "Müller^Jürgen", ""),
    (b"ISO_IR 100", "Müller^Jürgen".encode("latin-1"), "ISO_IR 100", "Müller^Jürgen", ""),
    (b"ISO_IR 144", "Иванов^Иван".encode("iso8859_5"), "ISO_IR 100", "Иванов^Иван", ""),
    (b"ISO_IR 126", "Παπαδόπουλος^Νίκος".encode("iso8859_7"), "ISO_IR 100", "Παπαδόπουλος^Νίκος", ""),
    (b"GB18030", "王^小明".encode("gb18030"), "ISO_IR 100", "王^小明", ""),
    (b"\\ISO 2022 IR 87", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", "ISO_IR 100",
     "Yamada^Tarou=山田^太郎", ""),
    # missing: UTF-8 when the bytes are UTF-8, else the profile's fallback
    (b"", "Müller^Jürgen".encode(), "ISO_IR 100", "Müller^Jürgen", "no Specific Character Set"),
    (b"", "Müller^Jürgen".encode("latin-1"), "ISO_IR 100", "Müller^Jürgen", "fallback"),
    (b"", "王^小明".encode("gb18030"), "GB18030", "王^小明", "fallback"),
    (b"", "Иванов".encode("iso8859_5"), "ISO_IR 144", "Иванов", "fallback"),
    # wrong: says Latin-1, sends UTF-8 (Orthanc with the wrong DefaultEncoding label, or a gateway)
    (b"ISO_IR 100", "Müller^Jürgen".encode(), "ISO_IR 100", "Müller^Jürgen", "sent UTF-8"),
    (b"ISO_IR 192", "Müller^Jürgen".encode("latin-1"), "ISO_IR 100", "Müller^Jürgen", "not valid"),
    (b"ISO_IR 6", "Müller".encode("latin-1"), "ISO_IR 100", "Müller", "not valid"),
    (b"KLINGON", "Müller".encode(), "ISO_IR 100", "Müller", "unknown"),
    (b"ISO-IR 100", "Müller".encode("latin-1"), "ISO_IR 100", "Müller", ""),  # a common misspelling
    # undecodable by anything: replacement characters, never an exception
    (b"ISO_IR 192", b"M\xff\xfeller", "ISO_IR 6", "M\ufffd\ufffdller", "replaced"),
])
def test_responses_are_read_by_their_own_charset_else_the_fallback(label, raw, fallback, expected, note):
    ds = raw_response(SpecificCharacterSet=label, PatientName=raw, PatientID=b"X1")
    decoded = decode_response(ds, fallback)
    assert str(ds.PatientName) == expected
    assert ds.PatientID == "X1"
    if note:
        assert note in decoded.note
    else:
        assert decoded.note == ""
    if label:
        assert decoded.received == tuple(label.decode().split("\\"))
    assert ds.SpecificCharacterSet == "ISO_IR 192"  # rewritten: the dataset re-encodes losslessly
    assert decode(BytesIO(encode(ds, True, True)), True, True).PatientName == expected


def test_charset_terms_are_recognised_with_common_misspellings():
    assert canonical_term("ISO_IR 100") == "ISO_IR 100"
    assert canonical_term("iso-ir 192") == "ISO_IR 192"
    assert canonical_term("UTF-8") == "ISO_IR 192"
    assert canonical_term("ISO 2022 IR 87") == "ISO 2022 IR 87"
    assert canonical_term("nonsense") is None


def test_person_names_split_into_groups_and_components():
    name = PersonName.from_dicom("Wang^XiaoDong=王^小東=")
    assert (name.alphabetic, name.ideographic, name.phonetic) == ("Wang^XiaoDong", "王^小東", "")
    assert name.dicom == "Wang^XiaoDong=王^小東"
    assert PersonName.from_dicom("SMITH^JOHN^^DR").display == "SMITH, JOHN"
    assert PersonName.from_dicom("SMITH^JOHN^^DR").prefix == "DR"
    assert not PersonName.from_dicom("")
