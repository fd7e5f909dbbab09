"""Issue 15, item 11: a TLS listener told to verify its callers but given no CA to verify them
against used to start and accept any client. It now refuses to start, in words; without
verification, or with a CA, it starts as before."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.dicom.server import DicomServer, ServerSettings, server_ssl_context
from pacsbrowser.core.errors import ListenerError
from pacsbrowser.core.records import TLSConfiguration
from pacsbrowser.core.server import ArchiveServer
from tests.lab.peers import free_port

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
RULE = "verifying callers' certificates needs the CA certificate"


def _cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PACSBROWSER_CONFIG_DIR=str(REPO / "tests" / ".no-config"))
    return subprocess.run([sys.executable, "-m", "pacsbrowser", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO, stdin=subprocess.DEVNULL)


def test_verification_without_a_ca_is_refused_by_every_way_in(certs, archive: Archive):
    tls = TLSConfiguration(certificate=certs.server_cert, key=certs.server_key, verify_peer=True)
    with pytest.raises(ValueError, match=RULE):
        ArchiveServer(0, "PBTLS", archive, tls=tls, host="127.0.0.1")
    with pytest.raises(ListenerError, match=RULE):
        server_ssl_context(tls, "127.0.0.1", 0)
    server = DicomServer(ServerSettings(host="127.0.0.1", port=0, ae_title="PBTLS", tls=tls), archive)
    with pytest.raises(ListenerError, match=RULE):
        server.start()
    assert not server.running


def test_without_verification_or_with_a_ca_it_starts(certs, archive: Archive):
    open_tls = TLSConfiguration(certificate=certs.server_cert, key=certs.server_key, verify_peer=False)
    assert server_ssl_context(open_tls, "127.0.0.1", 0).verify_mode == ssl.CERT_NONE
    checked = TLSConfiguration(certificate=certs.server_cert, key=certs.server_key, ca_certificate=certs.ca_cert)
    assert server_ssl_context(checked, "127.0.0.1", 0).verify_mode == ssl.CERT_REQUIRED

    async def main() -> None:
        for tls in (open_tls, checked):
            async with ArchiveServer(0, "PBTLS", archive, tls=tls, host="127.0.0.1") as scp:
                assert scp.is_running

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("command", ["listen", "serve"])
def test_cli_says_why_it_does_not_start(command: str, certs, workdir: Path):
    port = str(free_port())
    base = [command, "--host", "127.0.0.1", "--port", port, "--archive", str(workdir / "archive"),
            "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    result = _cli(*base, "--tls-verify-clients")
    assert result.returncode != 0
    print(result.stderr.strip())
    assert RULE in result.stderr and "Traceback" not in result.stderr
    assert "listening on" not in result.stdout
