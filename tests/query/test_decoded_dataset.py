"""A response decoded by `parse_result` keeps raw elements raw (re-encoded as UTF-8, the fast path of
core.dicom.charsets): reading the dataset afterwards (pydicom attribute access, our JSON, encoding it
again) gives the same text as the result record, whatever character set the response came in."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pynetdicom.dsutils import decode, encode

from pacsbrowser.core.dicom.identifiers import identifier_to_json, parse_result
from pacsbrowser.core.records import QueryLevel

NAMES = {
    None: ("M\xfcller^Hans".encode("latin-1"), "Müller^Hans"),  # no (0008,0005): the fallback, Latin-1
    "ISO_IR 100": ("M\xfcller^Hans".encode("latin-1"), "Müller^Hans"),
    "ISO_IR 192": ("Müller^Hans".encode(), "Müller^Hans"),
    "\\ISO 2022 IR 87": (None, "Yamada^Tarou=山田^太郎=やまだ^たろう"),
}


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize("charset", list(NAMES), ids=lambda c: str(c))
def test_the_dataset_reads_as_the_result_after_decoding(charset, implicit):
    raw_name, text = NAMES[charset]
    ds = Dataset()
    if charset == "\\ISO 2022 IR 87":
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        ds.PatientName = text
    else:
        if charset:
            ds.SpecificCharacterSet = charset
        ds.PatientName = raw_name
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = "1.2.3"
    ds.StudyDate = "20240101"
    ds.StudyDescription = "Kopf"
    received = decode(DicomBytesIO(encode(ds, implicit, True)), implicit, True)
    result = parse_result(QueryLevel.STUDY, received, "ISO_IR 100")
    assert result.patient_name.family == text.split("^")[0]
    assert str(received.PatientName) == text
    assert identifier_to_json(received)["PatientName"] == text
    assert received.SpecificCharacterSet == "ISO_IR 192"
    again = decode(DicomBytesIO(encode(received, implicit, True)), implicit, True)
    assert str(again.PatientName) == text and again.StudyDescription == "Kopf"
    assert result.study_date is not None and result.study_description == "Kopf"
