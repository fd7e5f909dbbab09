"""Character sets on the wire: the query carries (0008,0005); responses without one, with a wrong one,
or with bytes nothing can read give readable names where possible and never an exception.

FaultSCP's ``find_charset`` is what a response says, ``find_encoding`` what its bytes really are.
"""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from pacsbrowser.core.records import QueryKeys
from tests.lab.client import run
from tests.lab.fault_scp import study_dataset

from .conftest import collect, service_for

pytestmark = pytest.mark.timeout(60)

NAMES = {
    "LAB0004": "Müller^Jürgen",
    "LAB0005": "Yamada^Tarou=山田^太郎",
    "CN0001": "Wang^XiaoDong=王^小東",
    "GR0001": "Παπαδόπουλος^Νίκος",
}
REFERRING = {"GR0001": "Οικονόμου^Άννα", "CN0001": "Li^Na=李^娜"}  # each writable in its own charset


def dataset(patient_id: str, charset: str = "ISO_IR 192") -> Dataset:
    ds = study_dataset(PatientName=NAMES[patient_id], PatientID=patient_id, StudyInstanceUID=f"1.2.3.{len(patient_id)}"
                       f"{sum(map(ord, patient_id))}", StudyDescription="ÄRZTLICHE ÜBERWEISUNG"
                       if patient_id == "LAB0004" else "STUDY",
                       ReferringPhysicianName=REFERRING.get(patient_id, "Schäfer^Anna"))
    ds.SpecificCharacterSet = charset
    return ds


def find_one(scp, patient_id: str, **profile) -> object:
    results, outcome = run(collect(service_for(scp, **profile), QueryKeys.studies(patient_id=patient_id)))
    assert len(results) == 1 and outcome.complete
    return results[0]


@pytest.mark.parametrize("patient_id", ["LAB0004", "LAB0005", "CN0001", "GR0001"])
def test_utf8_without_specific_character_set_is_read_as_utf8(fault_scp, patient_id):
    scp = fault_scp("ok", datasets=[dataset(patient_id)], find_charset=None, find_encoding="ISO_IR 192")
    result = find_one(scp, patient_id)
    assert result.patient_name.dicom == NAMES[patient_id]
    assert result.referring_physician.dicom == REFERRING.get(patient_id, "Schäfer^Anna")
    assert result.charset_received == ()
    assert "no Specific Character Set" in result.charset_note and result.charset_used == "ISO_IR 192"


def test_utf8_labelled_latin1_is_read_as_utf8(fault_scp):
    scp = fault_scp("ok", datasets=[dataset("LAB0004")], find_charset="ISO_IR 100", find_encoding="ISO_IR 192")
    result = find_one(scp, "LAB0004")
    assert result.patient_name.dicom == "Müller^Jürgen" and result.study_description == "ÄRZTLICHE ÜBERWEISUNG"
    assert result.charset_received == ("ISO_IR 100",) and "sent UTF-8" in result.charset_note


def test_latin1_without_label_uses_the_profiles_fallback(fault_scp):
    scp = fault_scp("ok", datasets=[dataset("LAB0004")], find_charset=None, find_encoding="ISO_IR 100")
    result = find_one(scp, "LAB0004")
    assert result.patient_name.dicom == "Müller^Jürgen" and "fallback" in result.charset_note


def test_latin1_labelled_utf8_uses_the_profiles_fallback(fault_scp):
    scp = fault_scp("ok", datasets=[dataset("LAB0004")], find_charset="ISO_IR 192", find_encoding="ISO_IR 100")
    result = find_one(scp, "LAB0004")
    assert result.patient_name.dicom == "Müller^Jürgen" and "not valid ISO_IR 192" in result.charset_note


def test_unlabelled_greek_and_chinese_are_read_with_a_matching_fallback(fault_scp):
    greek = fault_scp("ok", datasets=[dataset("GR0001")], find_charset=None, find_encoding="ISO_IR 126")
    assert find_one(greek, "GR0001", fallback_charset="ISO_IR 126").patient_name.dicom == NAMES["GR0001"]
    chinese = fault_scp("ok", datasets=[dataset("CN0001")], find_charset=None, find_encoding="GB18030")
    assert find_one(chinese, "CN0001", fallback_charset="GB18030").patient_name.dicom == NAMES["CN0001"]
    # with the wrong fallback: no exception, the ASCII part is intact
    wrong = find_one(chinese, "CN0001")
    assert wrong.patient_name.alphabetic == "Wang^XiaoDong"


def test_the_declared_charset_is_used_when_it_is_right(fault_scp):
    scp = fault_scp("ok", datasets=[dataset("GR0001", "ISO_IR 126")])
    result = find_one(scp, "GR0001")
    assert result.patient_name.dicom == NAMES["GR0001"]
    assert result.charset_received == ("ISO_IR 126",) and result.charset_note == ""


def test_bytes_nothing_can_read_are_replaced_never_raised(scripted_scp):
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.add_new("PatientName", "PN", b"M\xff\xfeller^J\x80rgen")
    ds.add_new("StudyDescription", "LO", b"\xc3(")
    ds.StudyInstanceUID = "1.2.3"
    scp = scripted_scp([(0xFF00, ds), (0x0000, None)])
    results, outcome = run(collect(service_for(scp, fallback_charset="ISO_IR 6"), QueryKeys.studies()))
    (result,) = results
    assert result.patient_name.family == "M\ufffd\ufffdller" and result.patient_name.given == "J\ufffdrgen"
    assert "replaced" in result.charset_note and outcome.complete
    # with a Latin-1 fallback the same bytes are at least readable characters
    results, _ = run(collect(service_for(scp), QueryKeys.studies()))
    assert results[0].patient_name.family == "Mÿþller"


def test_the_query_carries_the_profiles_charset(fault_scp):
    scp = fault_scp("ok", datasets=[dataset("LAB0004", "ISO_IR 100")], case_insensitive=True)
    run(collect(service_for(scp), QueryKeys.studies(patient_name="müller")))
    first = scp.find_requests[0]
    assert first.SpecificCharacterSet == "ISO_IR 192" and first.PatientName == "MÜLLER*"
    latin1 = fault_scp("ok", datasets=[dataset("LAB0004", "ISO_IR 100")])
    results, _ = run(collect(service_for(latin1, query_charset="ISO_IR 100"), QueryKeys.studies(patient_name="Müller")))
    assert [r.patient_id for r in results] == ["LAB0004"]
    request = latin1.find_requests[0]
    assert request.SpecificCharacterSet == "ISO_IR 100" and request.PatientName == "MÜLLER*"
    with pytest.raises(ValueError, match="cannot be written in ISO_IR 100"):
        service_for(latin1, query_charset="ISO_IR 100").find_studies(patient_name="山田")
