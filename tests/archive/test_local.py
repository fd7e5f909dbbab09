"""The archive as the window's "This computer": searching it with the query form's keys, and
deleting studies and series (files first, then rows)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pacsbrowser.core.archive.search import (
    instances_of_series,
    search,
    series_of_study,
    studies_of_patient,
)
from pacsbrowser.core.records import QueryKeys

from .helpers import our_files


@pytest.fixture
def filled(archive, lab_data):
    for instance in lab_data.instances:
        archive.import_file(instance.path)
    return archive


def test_search_by_name_id_date_and_modality(filled, lab_data):
    def uids(**keys) -> set[str]:
        return {s.study_instance_uid for s in search(filled, QueryKeys.studies(**keys))}

    everything = {s.uid for s in lab_data.studies}
    assert uids() == everything
    smi = {s.uid for s in lab_data.studies if s.patient_name.upper().startswith("SMI")}
    assert smi and uids(patient_name="smi") == smi  # the form's rule: from the start, any case
    patient = lab_data.studies[0].patient_id
    assert uids(patient_id=patient) == {s.uid for s in lab_data.studies_of(patient)}
    one = lab_data.studies[0]
    dated = {s.uid for s in lab_data.studies_between(one.date, one.date)}
    assert one.uid in dated and uids(study_date=one.date) == dated
    day = date(int(one.date[:4]), int(one.date[4:6]), int(one.date[6:]))
    assert uids(study_date=(day, day)) == dated
    assert uids(study_date=f"{one.date}-") == {s.uid for s in lab_data.studies_between(one.date, "")}
    ct = {s.uid for s in lab_data.studies if "CT" in s.modalities}
    assert uids(modalities=["CT"]) == ct
    assert uids(patient_name="nobody-by-this-name") == set()


def test_patients_and_children_as_find_results(filled, lab_data):
    patients = search(filled, QueryKeys.patients())
    assert {p.patient_id for p in patients} == {s.patient_id for s in lab_data.studies}
    first = patients[0]
    studies = studies_of_patient(filled, first)
    assert {s.study_instance_uid for s in studies} == {s.uid for s in lab_data.studies_of(first.patient_id)}
    study = studies[0]
    series = series_of_study(filled, study.study_instance_uid)
    assert {s.series_instance_uid for s in series} == {s.uid for s in lab_data.series_of(study.study_instance_uid)}
    instances = instances_of_series(filled, series[0].series_instance_uid)
    assert len(instances) == len(lab_data.instances_of_series(series[0].series_instance_uid)) == \
        series[0].number_of_instances


def test_delete_a_series_then_the_study(filled, lab_data):
    study = next(s for s in lab_data.studies if len(lab_data.series_of(s.uid)) > 1)
    first, *others = lab_data.series_of(study.uid)
    files_before = len(our_files(filled.root))
    report = filled.delete_series(first.uid)
    assert report.instances == len(lab_data.instances_of_series(first.uid)) and report.bytes > 0 and not report.kept
    assert filled.instances(first.uid) == []
    assert {s.series_uid for s in filled.series(study.uid)} == {s.uid for s in others}
    assert len(our_files(filled.root)) == files_before - report.instances
    report = filled.delete_study(study.uid)
    assert report.instances == sum(len(lab_data.instances_of_series(s.uid)) for s in others)
    assert study.uid not in {s.study_uid for s in filled.studies()}
    assert not any(p.name == study.uid for p in filled.root.iterdir())  # its folder is gone too
    assert len(our_files(filled.root)) == files_before - len(lab_data.instances_of_study(study.uid))
    report = filled.verify(deep=True)
    assert report.ok, report.problems


def test_a_file_that_cannot_be_removed_keeps_its_row(filled, lab_data, monkeypatch):
    series = lab_data.series_of(lab_data.studies[0].uid)[0]
    stuck = filled.instances(series.uid)[0].path
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        if self == stuck:
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    report = filled.delete_series(series.uid)
    assert report.instances == len(lab_data.instances_of_series(series.uid)) - 1
    assert len(report.kept) == 1 and "Permission denied" in report.kept[0]
    assert [i.path for i in filled.instances(series.uid)] == [stuck] and stuck.exists()
    assert filled.verify().ok
