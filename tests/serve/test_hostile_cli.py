"""`pacsbrowser listen` and `pacsbrowser serve` as a user runs them (a child process, default
timeouts) under a round of hostile peers: garbage, a 2 GB PDU, PDUs cut short, associations
aborted mid C-STORE and mid C-FIND, and a flood of connections that never speak, while DCMTK's
storescu keeps storing. The process never prints a traceback, stores every good image and nothing
else, and stops at once on Ctrl-C (SIGINT) with its summary.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from pacsbrowser.core.archive import Archive
from tests.archive.helpers import ListenerProcess, make_dataset, save
from tests.lab import rawpdu
from tests.lab.peers import dcmtk

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

AET = "PBCLIHOSTILE"
SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
FIND = str(StudyRootQueryRetrieveInformationModelFind)


def _storescu(port: int, folder: Path, stored: list[str]) -> None:
    uid = generate_uid()
    path = save(make_dataset(sop=uid, patient_id="CLIHOST", name="CLI^GOOD"), folder / f"{uid}.dcm")
    result = dcmtk("storescu", "-aet", "GOODSCU", "-aec", AET, "127.0.0.1", str(port), path, timeout=60)
    assert result.returncode == 0, f"storescu failed: {result.stdout}{result.stderr}"
    stored.append(uid)


def _hostile_round(port: int, query_retrieve: bool) -> list[str]:
    """Every hostile act once; returns what each did, for the message of a failure."""
    done = []

    def connect() -> rawpdu.RawPeer:
        return rawpdu.RawPeer.connect("127.0.0.1", port, timeout=10)

    with connect() as peer:  # garbage
        peer.send(b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n")
        assert peer.closed_by_peer(10)
    done.append("garbage")
    with connect() as peer:  # a PDU header announcing 2 GB, then data
        peer.send(rawpdu.header(0x01, 0x7FFFFFF0))
        sent = 0
        try:
            while sent < (256 << 20):
                peer.send(b"\0" * (1 << 20))
                sent += 1 << 20
        except OSError:
            pass
        assert sent < (64 << 20), f"the server read {sent >> 20} MB of one PDU"
    done.append("2 GB PDU")
    with connect() as peer:  # a header cut short, then gone
        peer.send(b"\x01\x00\x00")
    done.append("cut header")
    ds = make_dataset(extra_bytes=200_000, patient_id="CLIHOST", name="CLI^HALF")
    with connect() as peer:  # A-ABORT mid C-STORE
        peer.associate(AET, [(1, ds.SOPClassUID, SYNTAXES)])
        pdus = rawpdu.command_pdus(rawpdu.c_store(ds), 1)
        for item in pdus[:4]:
            peer.send(item)
        peer.send(rawpdu.abort())
    done.append("abort mid C-STORE")
    if query_retrieve:
        with connect() as peer:  # reset mid C-FIND answers
            peer.associate(AET, [(1, FIND, SYNTAXES)])
            query = rawpdu.c_find(FIND, _identifier())
            peer.send_message(query, 1)
            first = peer.read_message()
            assert first is not None and first.status == 0xFF00
            peer.reset()
        done.append("reset mid C-FIND")
    with connect() as peer:  # mangled A-ASSOCIATE-RQ
        data = bytearray(rawpdu.associate_rq(AET, "HOSTILE", [(1, FIND, SYNTAXES)]))
        data[80:90] = b"\xff" * 10
        peer.send(bytes(data))
        peer.closed_by_peer(10)
    done.append("mangled request")
    return done


def _identifier():
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    return ds


@pytest.mark.parametrize("command", ["listen", "serve"])
def test_the_command_line_listener_under_hostile_peers(command: str, workdir: Path):
    archive_dir = workdir / "archive"
    env = {"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin", "PACSBROWSER_CONFIG_DIR": str(workdir / "config"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = ListenerProcess([sys.executable, "-m", "pacsbrowser", command, "--host", "127.0.0.1", "--port", "0",
                               "--aet", AET, "--archive", str(archive_dir), "--max-associations", "4"], env=env)
    stored: list[str] = []
    flood: list[rawpdu.RawPeer] = []
    try:
        port = process.wait_ready(60)
        _storescu(port, workdir / "files", stored)
        if command == "serve":  # something to find
            _storescu(port, workdir / "files", stored)
        flood = [rawpdu.RawPeer.connect("127.0.0.1", port) for _ in range(40)]  # silent, held open
        stop = threading.Event()
        errors: list[BaseException] = []

        def keep_storing() -> None:
            try:
                while not stop.is_set():
                    _storescu(port, workdir / "files", stored)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        sender = threading.Thread(target=keep_storing, name="cli-storescu", daemon=True)
        sender.start()
        try:
            done = _hostile_round(port, query_retrieve=command == "serve")
        finally:
            stop.set()
            sender.join(60)
        assert not errors, f"storescu failed during the hostile round: {errors[0]}"
        _storescu(port, workdir / "files", stored)
        print(f"\n{command}: {len(stored)} images stored by storescu during {', '.join(done)} and a flood of "
              f"{len(flood)} silent connections", end="")
    finally:
        started = time.monotonic()
        code = process.stop(signal.SIGINT)
        stopped_in = time.monotonic() - started
        for peer in flood:
            peer.close()
    stderr = "\n".join(process.stderr)
    print(f"; stopped in {stopped_in:.2f} s", end="")
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "Exception in thread" not in stderr, stderr[-3000:]
    assert f"stopped: {len(stored)} instances stored, 0 refused" in stderr, stderr[-2000:]
    assert stopped_in < 10, "the listener took too long to stop"  # grace 5 s; the silent ones go at once
    archive = Archive(archive_dir, readonly=True)
    try:
        assert {row.sop_instance_uid for row in archive.instances()} == set(stored)
        report = archive.verify(deep=True)
        assert report.ok, report.problems
    finally:
        archive.close()
    assert sorted(p.name for p in workdir.iterdir()) == ["archive", "files"]
