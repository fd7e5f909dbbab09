"""The command line: `pacsbrowser listen` and `pacsbrowser archive list|rebuild|verify`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess

import pytest

from pacsbrowser.cli import main as cli_main
from pacsbrowser.core.archive import Archive

from .helpers import LOOPBACK, ListenerProcess, lab_files, run_storescu, wait_for


def _listen(pacsbrowser_cmd, archive_dir, *extra):
    return [*pacsbrowser_cmd, "listen", "--host", LOOPBACK, "--port", "0", "--aet", "PBTEST",
            "--archive", str(archive_dir), *extra]


@pytest.mark.interop  # DCMTK storescu sends
def test_listen_prints_a_line_per_instance_and_no_patient_data(pacsbrowser_cmd, child_env, workdir, lab_data):
    files = lab_files(lab_data)[:12]
    names = {p.name for p in lab_data.patients} | {p.patient_id for p in lab_data.patients}
    with ListenerProcess(_listen(pacsbrowser_cmd, workdir / "archive"), child_env) as listener:
        port = listener.wait_ready()
        result = run_storescu(port, files, calling="MODALITY1")
        assert result.returncode == 0, result.stdout + result.stderr
        wait_for(lambda: sum("MODALITY1" in line for line in listener.stdout) == len(files), 20,
                 "a line per instance")
        assert listener.stop(signal.SIGINT) == 0
    lines = [line for line in listener.stdout if "MODALITY1" in line]
    for instance in lab_data.instances[:12]:
        assert sum(instance.sop_instance_uid in line for line in lines) == 1
    output = "\n".join(listener.stdout + listener.stderr)
    assert not [name for name in names if name in output]
    assert f"stopped: {len(files)} instances stored, 0 refused" in output
    with Archive(workdir / "archive") as arc:
        assert arc.last_repair is None  # closed cleanly by the interrupt
        assert arc.counts()["instances"] == len(files)

    # With --verbose, names and IDs are what the user asked to see.
    with ListenerProcess(_listen(pacsbrowser_cmd, workdir / "archive", "--verbose"), child_env) as listener:
        port = listener.wait_ready()
        assert run_storescu(port, files[:1], calling="MODALITY1").returncode == 0
        wait_for(lambda: any("MODALITY1" in line for line in listener.stdout), 20, "the instance line")
        assert listener.stop(signal.SIGTERM) == 0
    patient = lab_data.patient(lab_data.instances[0].patient_id)
    assert any(patient.name in line and patient.patient_id in line for line in listener.stdout)
    assert any("replaced an earlier copy" in line for line in listener.stdout)


def test_listen_on_a_port_in_use_says_so(pacsbrowser_cmd, child_env, workdir):
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [*pacsbrowser_cmd, "listen", "--host", LOOPBACK, "--port", str(port), "--archive",
                   str(workdir / "archive")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=child_env)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: Cannot listen on 127.0.0.1:{port}: the port is already in use by "
                                     "another program (choose another port, or stop the program using it)")
    assert "Traceback" not in result.stderr


def _can_drop_privileges() -> bool:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return False
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as handle:
            return int(handle.read()) > 104
    except OSError:
        return False


@pytest.mark.skipif(not _can_drop_privileges(), reason="needs root (to become nobody) and setpriv")
def test_a_privileged_port_without_privilege_says_so(pacsbrowser_cmd, child_env, workdir):
    os.chmod(workdir, 0o777)
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *pacsbrowser_cmd, "listen",
               "--host", LOOPBACK, "--port", "104", "--archive", str(workdir / "archive")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=child_env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == ("error: Cannot listen on 127.0.0.1:104: ports below 1024 need administrator "
                                     "privileges (use a port from 1024 up, such as 11112, DICOM's usual)")


def test_archive_list_verify_rebuild(workdir, lab_data, capsys):
    root = workdir / "archive"
    with Archive(root) as arc:
        for path in lab_files(lab_data):
            arc.import_file(path)
    assert cli_main(["archive", "list", "--archive", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{len(lab_data.studies)} studies, {len(lab_data.series)} series, {len(lab_data.instances)} instances" in out
    for study in lab_data.studies:
        assert study.uid in out and study.accession not in out
    assert not [p for p in lab_data.patients if p.name in out or p.patient_id in out]
    assert cli_main(["archive", "list", "--archive", str(root), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert all(p.name in out for p in lab_data.patients)
    study = lab_data.studies[2]
    assert cli_main(["archive", "list", "--archive", str(root), "--study", study.uid]) == 0
    out = capsys.readouterr().out
    assert all(s.uid in out for s in lab_data.series_of(study.uid))

    assert cli_main(["archive", "verify", "--deep", "--archive", str(root)]) == 0
    assert "consistent" in capsys.readouterr().out
    victim = lab_data.instances[5]
    with Archive(root, readonly=True) as arc:
        arc.path_of(victim.sop_instance_uid).unlink()
    assert cli_main(["archive", "verify", "--archive", str(root)]) == 1
    out = capsys.readouterr().out
    assert "indexed but the file is missing" in out and "1 problems" in out
    assert cli_main(["archive", "rebuild", "--archive", str(root)]) == 0
    assert f"index rebuilt: {len(lab_data.instances) - 1} instances" in capsys.readouterr().out
    assert cli_main(["archive", "verify", "--archive", str(root)]) == 0
    assert cli_main(["archive", "list", "--archive", str(workdir / "none")]) == 1
    assert "not a pacsbrowser archive" in capsys.readouterr().err
