"""`pacsbrowser get` and `pacsbrowser move` in a child process against the lab's Orthanc and dcmqrscp:
the archive fills, the summary line says what happened, a second run fetches nothing, and an
unknown move destination exits with the words to give the PACS administrator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pacsbrowser.cli.common import EXIT_DIMSE, EXIT_OK, EXIT_PARTIAL
from pacsbrowser.core.archive import Archive
from tests.lab.data import Catalog
from tests.lab.peers import free_port

from .helpers import assert_same_as_source

pytestmark = pytest.mark.timeout(120)


def pacsbrowser(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PACSBROWSER_ARCHIVE_DIR", None)
    return subprocess.run([sys.executable, "-m", "pacsbrowser", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False)


def connection(peer) -> list[str]:
    return ["--host", peer.host, "--port", str(peer.port), "--called-ae", peer.aet, "--timeout", "10"]


def test_get_study_then_again(orthanc, lab_data: Catalog, workdir: Path):
    study = lab_data.study_by_accession("ACC2024003")
    out = workdir / "archive"
    first = pacsbrowser("get", *connection(orthanc), "--study-uid", study.uid, "--out", str(out))
    assert first.returncode == EXIT_OK, first.stderr
    assert re.match(r"C-GET: 12 instances, \d+ bytes, [\d.]+ s \([\d.]+ instances/s\), 0 failed, "
                    r"0 already in the archive; complete", first.stdout), first.stdout
    assert "the PACS listed 12 instances; 0 still missing" in first.stdout
    assert "C-GET from ORTHANC@127.0.0.1" in first.stderr and "12/12 instances" in first.stderr
    again = pacsbrowser("get", *connection(orthanc), "--study-uid", study.uid, "--out", str(out))
    assert again.returncode == EXIT_OK, again.stderr
    assert again.stdout.startswith("C-GET: 0 instances, 0 bytes") and "12 already in the archive" in again.stdout
    with Archive(out) as archive:
        assert archive.counts()["instances"] == 12
        assert_same_as_source(archive, lab_data.instances_of_study(study.uid))


def test_get_series_and_instance(orthanc, lab_data: Catalog, workdir: Path):
    study = lab_data.study_by_accession("ACC2016004")
    series = lab_data.series_of(study.uid)[1]
    one = lab_data.instances_of_series(lab_data.series_of(study.uid)[0].uid)[0]
    out = workdir / "archive"
    a = pacsbrowser("get", *connection(orthanc), "--study-uid", study.uid, "--series-uid", series.uid,
                    "--out", str(out))
    b = pacsbrowser("get", *connection(orthanc), "--study-uid", study.uid, "--series-uid", one.series_uid,
                    "--instance-uid", one.sop_instance_uid, "--out", str(out))
    assert (a.returncode, b.returncode) == (EXIT_OK, EXIT_OK), (a.stderr, b.stderr)
    assert a.stdout.startswith("C-GET: 5 instances") and b.stdout.startswith("C-GET: 1 instances")
    with Archive(out) as archive:
        assert archive.counts()["instances"] == 6


def test_get_partial_exits_partial(dcmqrscp, lab_data: Catalog, workdir: Path):
    study = lab_data.study_by_accession("ACC2024003")  # the stock dcmqrscp cannot send its RLE files
    run = pacsbrowser("get", *connection(dcmqrscp), "--study-uid", study.uid, "--out", str(workdir / "a"))
    assert run.returncode == EXIT_PARTIAL, run.stderr
    assert "4 instances" in run.stdout and "8 failed" in run.stdout and "8 still missing" in run.stdout


def test_move_study(dcmqrscp, lab_data: Catalog, workdir: Path, move_port: int):
    study = lab_data.study_by_accession("ACC2016004")
    out = workdir / "archive"
    run = pacsbrowser("move", *connection(dcmqrscp), "--study-uid", study.uid, "--dest", "PACSBROWSER",
                      "--listen-port", str(move_port), "--listen-host", "127.0.0.1", "--out", str(out))
    assert run.returncode == EXIT_OK, run.stderr
    assert run.stdout.startswith("C-MOVE: 10 instances") and "; complete" in run.stdout
    assert "C-MOVE from DCMQRSCP@127.0.0.1" in run.stderr and "to PACSBROWSER" in run.stderr
    with Archive(out) as archive:
        assert_same_as_source(archive, lab_data.instances_of_study(study.uid))


def test_move_to_unknown_destination(dcmqrscp, lab_data: Catalog, workdir: Path):
    port = free_port()
    run = pacsbrowser("move", *connection(dcmqrscp), "--calling-ae", "STRANGER", "--study-uid",
                      lab_data.studies[0].uid, "--listen-port", str(port), "--listen-host", "127.0.0.1",
                      "--out", str(workdir / "a"))
    assert run.returncode == EXIT_DIMSE, run.stderr
    assert "does not know the move destination STRANGER (0xA801)" in run.stderr
    assert f"register AE title STRANGER at host 127.0.0.1, port {port}" in run.stderr
    assert "C-GET" in run.stderr
