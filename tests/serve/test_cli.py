"""`pacsbrowser serve` in a child process: the lab's data stored into it with storescu, then found
with findscu; a caller outside --allow refused; a malformed --destination said in words."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from pacsbrowser.cli import main
from tests.archive.helpers import ListenerProcess, run_storescu
from tests.lab.data import Catalog
from tests.lab.peers import dcmtk

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def test_serve_stores_finds_and_guards(lab_data: Catalog, workdir: Path) -> None:
    command = [sys.executable, "-m", "pacsbrowser", "serve", "--host", "127.0.0.1", "--port", "0",
               "--aet", "PBCLI", "--archive", str(workdir / "archive"), "--allow", "SENDER", "--allow", "FINDSCU",
               "--destination", "STORESCP=127.0.0.1:4242"]
    env = {"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin", "PACSBROWSER_CONFIG_DIR": str(workdir / "config"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = ListenerProcess(command, env=env)
    try:
        port = process.wait_ready(60)
        paths = lab_data.paths()
        stored = run_storescu(port, paths, called="PBCLI")
        assert stored.returncode == 0, stored.stderr[-2000:]
        found = dcmtk("findscu", "-S", "-aet", "FINDSCU", "-aec", "PBCLI", "-X", "-od", str(workdir),
                      "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "127.0.0.1", str(port))
        assert found.returncode == 0, found.stderr[-2000:]
        assert len(list(workdir.glob("rsp*.dcm"))) == len(lab_data.studies)
        refused = dcmtk("echoscu", "-aet", "STRANGER", "-aec", "PBCLI", "127.0.0.1", str(port))
        assert refused.returncode != 0
    finally:
        assert process.stop(signal.SIGINT) == 0
    assert any("STORESCP=127.0.0.1:4242" in line for line in process.stdout)
    assert any(f"{len(lab_data.instances)} instances stored" in line for line in process.stderr)


def test_a_malformed_destination(capsys) -> None:
    assert main(["serve", "--port", "0", "--destination", "NOPORT"]) != 0
    assert "AE=HOST:PORT" in capsys.readouterr().err


def test_destinations_from_the_profiles_and_the_command_line(workdir: Path, monkeypatch) -> None:
    from pacsbrowser.cli import build_parser
    from pacsbrowser.cli.serve import destinations
    from pacsbrowser.core.config import ProfileStore
    from pacsbrowser.core.records import ServerProfile

    monkeypatch.setenv("PACSBROWSER_CONFIG_DIR", str(workdir / "config"))
    store = ProfileStore()
    store.add(ServerProfile(name="a", host="127.0.0.1", port=4242, called_ae="ORTHANC"))
    store.add(ServerProfile(name="b", host="127.0.0.1", port=5678, called_ae="DCMQRSCP"))
    args = build_parser().parse_args(["serve", "--profile-destinations", "--destination", "ORTHANC=127.0.0.1:1111"])
    assert destinations(args) == {"ORTHANC": ("127.0.0.1", 1111), "DCMQRSCP": ("127.0.0.1", 5678)}
    args.profile_destinations = False
    assert destinations(args) == {"ORTHANC": ("127.0.0.1", 1111)}
