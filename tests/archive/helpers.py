"""Helpers of the archive and Storage SCP tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import re
import subprocess
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pacsbrowser.core.archive import split_part10

STORESCU = Path("/usr/bin/storescu")
LOOPBACK = "127.0.0.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def dcmtk_env() -> dict[str, str]:
    """What a DCMTK client needs: TCP_NODELAY (FIELD-NOTES), the lab's loopback shim when it is
    available (storescu only connects, to 127.0.0.1, but the lab runs every DCMTK tool that way)."""
    try:
        from tests.lab.peers import peer_env

        return peer_env()
    except Exception:  # noqa: BLE001 - the shim is a belt for servers; a client does without
        return {"PATH": "/usr/bin:/bin", "TCP_NODELAY": "1", "LANG": "C.UTF-8"}


def storescu_command(port: int, files: Iterable[Path], *, calling: str = "SENDER", called: str = "PBTEST",
                     config: Path | None = None, extra: Iterable[str] = ()) -> list[str]:
    if not STORESCU.is_file():
        pytest.fail(f"{STORESCU} not found: install the Debian package 'dcmtk'", pytrace=False)
    proposal = ["-xf", str(config), "Lab"] if config else ["-R", "-xr"]
    return [str(STORESCU), "-v", *proposal, *extra, "-aet", calling, "-aec", called, LOOPBACK, str(port),
            *map(str, files)]


def run_storescu(port: int, files: Iterable[Path], *, timeout: float = 60.0, **options) -> subprocess.CompletedProcess:
    return subprocess.run(storescu_command(port, files, **options), capture_output=True, text=True,
                          timeout=timeout, env=dcmtk_env(), stdin=subprocess.DEVNULL, check=False)


def start_storescu(port: int, files: Iterable[Path], **options) -> subprocess.Popen:
    """storescu in the background, its -v log (stdout and stderr) on `stdout`."""
    return subprocess.Popen(storescu_command(port, files, **options), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dcmtk_env(), stdin=subprocess.DEVNULL)


def acknowledged(storescu_output: str) -> tuple[list[str], list[str], list[str]]:
    """(files storescu got a Success response for, files it got a refusal for, files it began to
    send and got no response for), from its -v log."""
    ok, refused, unanswered, current = [], [], [], None
    for line in storescu_output.splitlines():
        sending = re.match(r"I: Sending file: (.*)$", line)
        if sending:
            if current:
                unanswered.append(current)
            current = sending.group(1).strip()
        elif "Received Store Response (Success)" in line and current:
            ok.append(current)
            current = None
        elif "Received Store Response" in line and current:
            refused.append(current)
            current = None
    if current:
        unanswered.append(current)
    return ok, refused, unanswered


def write_storescu_config(files: Iterable[Path], path: Path) -> Path:
    """A storescu profile "Lab" proposing each (SOP class, transfer syntax) of `files` in its own
    context, so every file goes as it is (storescu cannot transcode compressed data)."""
    pairs = set()
    for f in files:
        meta = pydicom.dcmread(f, stop_before_pixels=True).file_meta
        pairs.add((str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)))
    syntaxes = sorted({ts for _, ts in pairs})
    lines = ["[[TransferSyntaxes]]"]
    for i, ts in enumerate(syntaxes):
        lines += [f"[TS{i}]", f"TransferSyntax1 = {ts}"]
    lines += ["[[PresentationContexts]]", "[Lab]"]
    for n, (sop_class, ts) in enumerate(sorted(pairs), 1):
        lines.append(f"PresentationContext{n} = {sop_class}\\TS{syntaxes.index(ts)}")
    lines += ["[[Profiles]]", "[Lab]", "PresentationContexts = Lab"]
    path.write_text("\n".join(lines) + "\n")
    return path


def dataset_bytes(path: Path) -> tuple[str, bytes]:
    """(transfer syntax, the encoded data set after the File Meta Information) of a Part 10 file."""
    data = path.read_bytes()
    ts, offset, _ = split_part10(data)
    return ts, data[offset:]


def make_dataset(study: str | None = None, series: str | None = None, sop: str | None = None, *,
                 patient_id: str = "SYN001", name: str = "SYNTHETIC^PATIENT", rows: int = 8,
                 fill: int = 0, extra_bytes: int = 0) -> Dataset:
    """A small CT instance (uint16 pixels), file meta included."""
    import numpy as np

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop or generate_uid()
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.StudyDate = "20240101"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    side = rows
    if extra_bytes:
        side = max(rows, int((extra_bytes // 2) ** 0.5))
    pixels = (np.arange(side * side, dtype=np.uint16).reshape(side, side) + fill).astype(np.uint16)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_pixel_data(pixels, "MONOCHROME2", 16, generate_instance_uid=False)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # crafted UIDs on purpose
        ds.save_as(path, enforce_file_format=True)
    return path


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def lab_files(lab_data) -> list[Path]:
    return [i.path for i in lab_data.instances]


def our_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".dcm")


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".tmp-*"))


class ListenerProcess:
    """`pacsbrowser listen` (or any command printing "listening on HOST:PORT") in a child process,
    its output read by two threads; killed and reaped on exit from the `with` block."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        import queue
        import threading

        self.command = command
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: "queue.Queue[str | None]" = queue.Queue()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.port = 0

    def _read(self, stream, into: list[str], tell: bool) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))
            if tell:
                self._lines.put(line)
        stream.close()
        if tell:
            self._lines.put(None)

    def wait_ready(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the listener did not start within {timeout:g} s: {self.stderr[-10:]}")
            try:
                line = self._lines.get(timeout=remaining)
            except Exception:  # noqa: BLE001 - queue.Empty
                continue
            if line is None:
                pytest.fail(f"the listener ended before listening: {' / '.join(self.stderr[-10:])}")
            match = re.search(r"listening on \S+:(\d+) ", line)
            if match:
                self.port = int(match.group(1))
                return self.port

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def wait_stopped(self, timeout: float = 10.0) -> None:
        """After SIGSTOP: wait until every thread of the process is stopped (state T in /proc)."""
        tasks = Path(f"/proc/{self.proc.pid}/task")

        def all_stopped() -> bool:
            states = []
            for task in tasks.iterdir():
                try:
                    states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
                except (OSError, IndexError):
                    continue
            return bool(states) and all(state in ("T", "t") for state in states)

        wait_for(all_stopped, timeout, "the listener to stop (SIGSTOP)")

    def stop(self, sig: int, timeout: float = 30.0) -> int:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    def __enter__(self) -> "ListenerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self.proc.poll() is None:
            self.stop(signal.SIGKILL)
        else:
            self.wait()
