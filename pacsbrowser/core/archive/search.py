"""Searching the local archive with the query form's keys, answered as C-FIND results are.

The keys are shaped as for a PACS (core.matching's `shape_keys`: a name matches from its start,
descriptions anywhere, * and ? as wildcards) and answered by the archive's query engine with the
PS3.4 C.2.2.2 rules (person names without regard to case). Series and instances of a row come
straight from the index. Blocking (reads the index): call it on a worker thread.
"""

from __future__ import annotations

from datetime import date, datetime, time

from ..dicom.identifiers import build_identifier, parse_result
from ..matching import shape_keys
from ..records import (
    InstanceResult,
    PatientResult,
    PersonName,
    QueryKeys,
    QueryLevel,
    QueryModel,
    SeriesResult,
    StudyResult,
)
from . import Archive
from .index import InstanceRow, PatientRow, SeriesRow, StudyRow
from .query import ArchiveQuery


def search(archive: Archive, keys: QueryKeys, *, limit: int | None = None) -> list[PatientResult] | list[StudyResult]:
    """Patients or studies of the archive that match `keys` (QueryKeys.patients or .studies): the
    identifier a C-FIND would send, answered by the archive's own query engine (core.archive.query,
    the one our server answers other workstations with), read back as C-FIND results."""
    if keys.level not in (QueryLevel.PATIENT, QueryLevel.STUDY):
        raise ValueError("the local archive is searched for patients or studies")
    shaped = shape_keys(keys)[0]  # the first shape: upper case, which person-name matching ignores
    patients = keys.level is QueryLevel.PATIENT
    identifier = build_identifier(shaped, model=QueryModel.PATIENT_ROOT if patients else QueryModel.STUDY_ROOT)
    found: list = []
    for answer in ArchiveQuery(archive).find(identifier, "PATIENT" if patients else "STUDY"):
        found.append(parse_result(keys.level, answer))
        if limit is not None and len(found) >= limit:
            break
    return found


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
