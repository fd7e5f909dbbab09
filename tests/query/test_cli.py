"""`pacsbrowser find`: the table, --json, --limit, the level's keys, and errors, against real peers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pacsbrowser.cli import main

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["orthanc", "dcmqrscp"])
def peer(request):
    return request.getfixturevalue(request.param)


def connection(peer) -> list[str]:
    return ["--host", peer.host, "--port", str(peer.port), "--called-ae", peer.aet, "--timeout", "10"]


def find(capsys, peer, *args: str) -> tuple[int, str, str]:
    status = main(["find", *connection(peer), *args])
    out, err = capsys.readouterr()
    return status, out, err


def json_rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_one_object_per_result_keyed_by_keyword(capsys, peer, lab_data):
    status, out, err = find(capsys, peer, "--level", "study", "--patient-name", "smith", "--json")
    assert status == 0, err
    rows = json_rows(out)
    smiths = [s for s in lab_data.studies if s.patient_name.startswith("SMITH^")]
    assert {r["StudyInstanceUID"] for r in rows} == {s.uid for s in smiths} and len(rows) == len(smiths)
    for row in rows:
        study = lab_data.study(row["StudyInstanceUID"])
        assert row["PatientName"] == study.patient_name and row["PatientID"] == study.patient_id
        assert row["StudyDate"] == study.date and row["AccessionNumber"] == study.accession
        assert row["QueryRetrieveLevel"] == "STUDY"
    assert "5 studies" in err  # the summary stays off stdout with --json
    assert "SMITH" not in err  # no patient data in log lines without --verbose


def test_table_shows_non_ascii_names_and_a_summary(capsys, peer):
    status, out, err = find(capsys, peer, "--level", "patient", "--patient-name", "müller")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Patient ID") and "Name" in lines[0]
    assert len(lines) == 3 and "LAB0004" in lines[1] and "Müller, Jürgen" in lines[1] and "1970-08-15" in lines[1]
    assert lines[2] == "1 patient"
    status, out, _ = find(capsys, peer, "--level", "study", "--patient-name", "山田")
    assert "Yamada, Tarou (山田 太郎)" in out and "ACC2021009" in out


@pytest.mark.parametrize("args, count", [
    (["--study-date", "20200101-"], 5),
    (["--study-date", "-20161231"], 2),
    (["--modality", "CT"], 3),
    (["--modality", "CR,US"], 5),
    (["--accession", "ACC2024003"], 1),
    (["--patient-id", "LAB0003"], 2),
    (["--description", "chest"], 2),
    (["--key", "ReferringPhysicianName=CUDDY*"], 2),
])
def test_study_keys(capsys, peer, lab_data, args, count):
    status, out, err = find(capsys, peer, *args, "--json")
    assert status == 0, err
    assert len(json_rows(out)) == count


def test_patient_key_by_tag_and_the_limit(capsys, peer):
    status, out, _ = find(capsys, peer, "--level", "patient", "--key", "00100040=F", "--json")
    assert status == 0 and {r["PatientID"] for r in json_rows(out)} == {"LAB0002", "LAB0003", "LAB0006"}
    status, out, err = find(capsys, peer, "--level", "study", "--limit", "2")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 4  # header, 2 rows, summary
    assert "incomplete" in lines[-1] and "limit of 2" in lines[-1]


def test_series_and_instances_of_a_study(capsys, peer, lab_data):
    study = lab_data.study_by_accession("ACC2024003")
    status, out, err = find(capsys, peer, "--level", "series", "--study-uid", study.uid, "--json")
    assert status == 0, err
    rows = json_rows(out)
    assert {r["SeriesInstanceUID"] for r in rows} == {s.uid for s in lab_data.series_of(study.uid)}
    series = lab_data.series_of(study.uid)[1]
    status, out, err = find(capsys, peer, "--level", "instance", "--study-uid", study.uid, "--series-uid", series.uid)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == series.instance_count + 2 and lines[-1] == f"{series.instance_count} instances"
    assert all(i.sop_instance_uid in out for i in lab_data.instances_of_series(series.uid))


def test_keys_that_do_not_fit_the_level_are_usage_errors(capsys, orthanc):
    status, _, err = find(capsys, orthanc, "--level", "series")
    assert status == 2 and "--study-uid" in err
    status, _, err = find(capsys, orthanc, "--level", "patient", "--study-date", "today")
    assert status == 2 and "--study-date cannot be used with --level patient" in err
    status, _, err = find(capsys, orthanc, "--study-date", "2020-13-01")  # refused by the flag's type
    assert status == 2 and "argument --study-date:" in err and "not a date" in err
    status, _, err = find(capsys, orthanc, "--key", "NoSuchThing=1")
    assert status == 2 and "argument --key:" in err and "not a DICOM keyword" in err


def test_verbose_shows_the_exact_query_sent(capsys, orthanc):
    status, out, err = find(capsys, orthanc, "--patient-name", "smith", "--verbose")
    assert status == 0
    assert "(0010,0010) PatientName = SMITH*" in err and "SpecificCharacterSet = ISO_IR 192" in err


def test_the_installed_command_prints_names_as_utf8_text(orthanc):
    """In a UTF-8 locale, as the user's terminal has it (no PYTHONIOENCODING of ours), the JSON
    carries the name as text, not as \\u escapes."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"} | {"LC_ALL": "C.UTF-8"}
    result = subprocess.run([sys.executable, "-m", "pacsbrowser", "find", *connection(orthanc), "--level", "patient",
                             "--patient-id", "LAB0005", "--json"], capture_output=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "Yamada^Tarou=山田^太郎".encode() in result.stdout
    (row,) = json_rows(result.stdout.decode("utf-8"))
    assert row["PatientName"] == "Yamada^Tarou=山田^太郎"
