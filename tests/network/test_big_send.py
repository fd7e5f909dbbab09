"""Sending a 1 GB file: the sending process's peak memory stays within 100 MB of the idle process
(measured in a child process, printed). Before the fix pynetdicom queued every PDU of the message at
once: the whole file in memory.

The file is generated sparse (a DICOM header, then 1 GB of pixel data that is a hole in the file:
it takes almost no disk), and DCMTK's storescp receives it with --ignore (nothing written), through
the test relay throttled to 40 MB/s: a link slower than the disk, as every real one is (straight
over loopback storescp reads as fast as the file is read, and nothing piles up either way).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.lab.peers import DCMTK_BIN, free_port, listening_sockets, peer_env
from tests.lab.relay import Relay

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
PIXELS = 1_000_000_000  # bytes
LIMIT_MB = 100
RATE = 40_000_000  # bytes per second through the relay


def sparse_gigabyte(path: Path) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "2.25.1000000001"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.1000000002", "2.25.1000000003"
    ds.PatientID, ds.PatientName, ds.Modality = "GIGA", "GIGA^BYTE", "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 20_000, 25_000, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.save_as(path, enforce_file_format=True)
    with open(path, "ab") as out:
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, PIXELS))
        out.truncate(out.tell() + PIXELS)  # a hole: zeros that take no disk
    return path


def test_sending_1_gb_keeps_memory_near_the_pdu_size(tmp_path: Path) -> None:
    big = sparse_gigabyte(tmp_path / "giga.dcm")
    used = os.stat(big).st_blocks * 512
    assert big.stat().st_size > PIXELS and used < 50_000_000, used
    port = free_port()
    storescp = subprocess.Popen([str(DCMTK_BIN / "storescp"), "--ignore", "-aet", "IGNORE", "-pm", "-pdu", "131072",
                                 str(port)],
                                env=peer_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not any(p == port for _, p in listening_sockets(storescp.pid)):
            assert storescp.poll() is None and time.monotonic() < deadline, "storescp did not start"
            time.sleep(0.05)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with Relay("127.0.0.1", port) as relay:
            relay.throttle(up=RATE)
            done = subprocess.run([sys.executable, "-m", "tests.network.send_memory", str(big), relay.host,
                                   str(relay.port), "IGNORE"], capture_output=True, text=True, timeout=240, env=env,
                                  cwd=REPO, stdin=subprocess.DEVNULL)
    finally:
        storescp.terminate()
        try:
            storescp.wait(10)
        except subprocess.TimeoutExpired:
            storescp.kill()
            storescp.wait(10)
        big.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    grew = figures["peak_mb"] - figures["idle_mb"]
    print(f"\n[links] sending 1 GB: idle {figures['idle_mb']:.0f} MB, peak {figures['peak_mb']:.0f} MB "
          f"(+{grew:.0f} MB), {figures['seconds']:.1f} s through a {RATE / 1e6:g} MB/s relay, {figures['outcome']}")
    assert figures["outcome"] == "success", figures
    assert grew < LIMIT_MB, figures
