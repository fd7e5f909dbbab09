"""Searching the local archive with the query form's keys, answered as C-FIND results are.

A simple matcher over the index until the archive has a query engine of its own: every key the
user gave must match; text keys follow the same rules as a search of a PACS (core.query's
`shape_keys`: a name matches from its start, descriptions anywhere, * and ? as wildcards), compared
without regard to case; dates and date ranges as DICOM range matching; modalities: any of them.
Blocking (reads the index): call it on a worker thread.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from functools import lru_cache

from ..query import shape_keys
from ..records import (
    InstanceResult,
    PatientResult,
    PersonName,
    QueryKeys,
    QueryLevel,
    SeriesResult,
    StudyResult,
)
from . import Archive
from .index import InstanceRow, PatientRow, SeriesRow, StudyRow


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    """DICOM wildcard matching (* any run, ? one character), whole value, any case."""
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def matches(pattern: str, value: str) -> bool:
    """True when `value` matches `pattern` ("" matches everything); several values split by '\\'
    in the pattern match any of them (DICOM list matching)."""
    if not pattern:
        return True
    return any(_pattern(p).fullmatch(value or "") for p in pattern.split("\\"))


def in_range(key: str, value: str) -> bool:
    """DICOM date range matching: 'A', 'A-B', 'A-', '-B' ("" matches everything)."""
    if not key:
        return True
    if not value:
        return False
    if "-" not in key:
        return value == key
    first, _, last = key.partition("-")
    return (not first or value >= first) and (not last or value <= last)


def _name_matches(pattern: str, value: str) -> bool:
    """A person name pattern against the name, or against any one of its groups (alphabetic,
    ideographic, phonetic)."""
    return matches(pattern, value) or any(matches(pattern, group) for group in value.split("=")[1:])


def search(archive: Archive, keys: QueryKeys, *, limit: int | None = None) -> list[PatientResult] | list[StudyResult]:
    """Patients or studies of the archive that match `keys` (QueryKeys.patients or .studies)."""
    shaped = shape_keys(keys)[0]  # the first shape: upper case, which matching ignores anyway
    if keys.level is QueryLevel.PATIENT:
        patients = [patient_result(p) for p in archive.patients() if _patient_matches(shaped, p)]
        return patients[:limit] if limit is not None else patients
    if keys.level is not QueryLevel.STUDY:
        raise ValueError("the local archive is searched for patients or studies")
    studies = [study_result(s) for s in archive.studies() if _study_matches(shaped, s)]
    return studies[:limit] if limit is not None else studies


def _patient_matches(keys: QueryKeys, row: PatientRow) -> bool:
    return (_name_matches(keys.patient_name, row.patient_name) and matches(keys.patient_id, row.patient_id)
            and in_range(keys.birth_date, row.birth_date) and matches(keys.sex, row.sex))


def _study_matches(keys: QueryKeys, row: StudyRow) -> bool:
    return (_name_matches(keys.patient_name, row.patient_name) and matches(keys.patient_id, row.patient_id)
            and in_range(keys.birth_date, row.birth_date) and in_range(keys.study_date, row.study_date)
            and matches(keys.accession_number, row.accession_number)
            and matches(keys.study_description, row.description)
            and _name_matches(keys.referring_physician, row.referring_physician)
            and matches(keys.study_id, row.study_id)
            and matches(keys.study_instance_uid, row.study_uid)
            and (not keys.modalities or bool(set(keys.modalities) & set(row.modalities))))


def studies_of_patient(archive: Archive, patient: PatientResult) -> list[StudyResult]:
    key = f"{patient.issuer_of_patient_id}\\{patient.patient_id}"  # the index's patient key
    return [study_result(s) for s in archive.studies(key)]


def series_of_study(archive: Archive, study_uid: str) -> list[SeriesResult]:
    return [series_result(s) for s in archive.series(study_uid)]


def instances_of_series(archive: Archive, series_uid: str) -> list[InstanceResult]:
    return [instance_result(i) for i in archive.instances(series_uid)]


# ---- index rows as the records a C-FIND brings


def _date(text: str) -> date | None:
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date() if text else None
    except ValueError:
        return None


def _time(text: str) -> time | None:
    digits = text.split(".")[0]
    try:
        return datetime.strptime(digits[:6].ljust(6, "0"), "%H%M%S").time() if digits else None
    except ValueError:
        return None


def patient_result(row: PatientRow) -> PatientResult:
    return PatientResult(patient_id=row.patient_id, patient_name=PersonName.from_dicom(row.patient_name),
                         birth_date=_date(row.birth_date), sex=row.sex, issuer_of_patient_id=row.issuer,
                         number_of_studies=row.study_count)


def study_result(row: StudyRow) -> StudyResult:
    return StudyResult(study_instance_uid=row.study_uid, patient_id=row.patient_id,
                       patient_name=PersonName.from_dicom(row.patient_name), birth_date=_date(row.birth_date),
                       sex=row.sex, study_date=_date(row.study_date), study_time=_time(row.study_time),
                       accession_number=row.accession_number, study_id=row.study_id,
                       study_description=row.description,
                       referring_physician=PersonName.from_dicom(row.referring_physician),
                       modalities=row.modalities, number_of_series=row.series_count,
                       number_of_instances=row.instance_count)


def series_result(row: SeriesRow) -> SeriesResult:
    return SeriesResult(series_instance_uid=row.series_uid, study_instance_uid=row.study_uid, modality=row.modality,
                        series_number=row.series_number, series_description=row.description,
                        body_part=row.body_part, number_of_instances=row.instance_count)


def instance_result(row: InstanceRow) -> InstanceResult:
    return InstanceResult(sop_instance_uid=row.sop_instance_uid, sop_class_uid=row.sop_class_uid,
                          series_instance_uid=row.series_uid, study_instance_uid=row.study_uid,
                          instance_number=row.instance_number, number_of_frames=row.frames)
