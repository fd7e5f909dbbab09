"""`pacsbrowser echo` and `pacsbrowser profile`: one line, the right exit status, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_cli(*args: str, config_dir=None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if config_dir is not None:
        env["PACSBROWSER_CONFIG_DIR"] = str(config_dir)
    return subprocess.run([sys.executable, "-m", "pacsbrowser", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_echo_success_prints_one_line_with_the_round_trip(orthanc):
    result = run_cli("echo", "--host", orthanc.host, "--port", str(orthanc.port), "--called-ae", orthanc.aet)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "succeeded" in lines[0] and " ms" in lines[0]


def test_echo_over_tls_with_client_certificate(orthanc_tls, certs):
    result = run_cli("echo", "--host", orthanc_tls.host, "--port", str(orthanc_tls.port), "--called-ae",
                     orthanc_tls.aet, "--tls", "--tls-ca", str(certs.ca_cert), "--tls-cert", str(certs.client_cert),
                     "--tls-key", str(certs.client_key))
    assert result.returncode == 0, result.stderr
    assert "(TLS)" in result.stdout


@pytest.mark.parametrize(
    "case, status, words",
    [
        ("refused", 3, "connection refused"),
        ("rejected", 5, "called AE title not recognised"),
        ("tls-no-cert", 6, "requires a client certificate"),
        ("tls-on-plain", 6, "does not speak TLS"),
        ("silent", 4, "Timed out"),
    ],
)
def test_echo_failures_print_one_clear_line(case, status, words, orthanc, orthanc_tls, dcmqrscp, certs, fault_scp,
                                            unused_port):
    if case == "refused":
        args = ["--host", "127.0.0.1", "--port", str(unused_port), "--called-ae", "X"]
    elif case == "rejected":
        args = ["--host", dcmqrscp.host, "--port", str(dcmqrscp.port), "--called-ae", "WRONG"]
    elif case == "tls-no-cert":
        args = ["--host", orthanc_tls.host, "--port", str(orthanc_tls.port), "--called-ae", orthanc_tls.aet,
                "--tls", "--tls-ca", str(certs.ca_cert)]
    elif case == "tls-on-plain":
        args = ["--host", orthanc.host, "--port", str(orthanc.port), "--called-ae", orthanc.aet, "--tls",
                "--tls-ca", str(certs.ca_cert), "--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]
    else:
        args = ["--host", "127.0.0.1", "--port", str(fault_scp(mode="silent").port), "--called-ae", "X",
                "--timeout", "1"]
    result = run_cli("echo", *args)
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert "Traceback" not in result.stderr


def test_profiles_for_scripts(orthanc, tmp_path):
    added = run_cli("profile", "add", "lab", "--host", orthanc.host, "--port", str(orthanc.port), "--called-ae",
                    orthanc.aet, config_dir=tmp_path)
    assert added.returncode == 0, added.stderr
    listed = run_cli("profile", "list", config_dir=tmp_path)
    assert listed.stdout.startswith("lab\t")
    shown = run_cli("profile", "show", "lab", config_dir=tmp_path)
    assert f"port = {orthanc.port}" in shown.stdout
    echoed = run_cli("echo", "--profile", "lab", config_dir=tmp_path)
    assert echoed.returncode == 0, echoed.stderr
    missing = run_cli("echo", "--profile", "nope", config_dir=tmp_path)
    assert missing.returncode == 1 and "no profile named 'nope'" in missing.stderr
    removed = run_cli("profile", "remove", "lab", config_dir=tmp_path)
    assert removed.returncode == 0
    assert run_cli("profile", "list", config_dir=tmp_path).stdout == ""


def test_missing_connection_options_are_named():
    result = run_cli("echo", "--host", "127.0.0.1")
    assert result.returncode == 1
    assert "--port" in result.stderr and "--called-ae" in result.stderr
