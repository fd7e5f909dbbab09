"""Killed in the middle of receiving, and a real full disk: the archive loses nothing it acknowledged
and its index agrees with its files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from pacsbrowser.core.archive import Archive

from .helpers import (
    LOOPBACK,
    ListenerProcess,
    acknowledged,
    dataset_bytes,
    lab_files,
    make_dataset,
    our_files,
    run_storescu,
    save,
    start_storescu,
    temp_files,
    wait_for,
)


def check_archive_matches_sources(arc: Archive, sources: dict[str, Path]) -> None:
    """Every indexed instance is complete: the data set bytes of the file it came from."""
    for row in arc.instances():
        source = sources[row.sop_instance_uid]
        assert dataset_bytes(row.path) == dataset_bytes(source), row.path


def kill_while_writing(listener: ListenerProcess, folder: Path, sender: subprocess.Popen, *, finished: int = 3,
                       timeout: float = 30.0) -> dict[str, int]:
    """SIGKILL the listener at a moment it is writing a file into `folder` (after `finished` files
    there): seen writing, it is frozen (SIGSTOP, every thread stopped); killed if the temporary file
    is still there, let go on otherwise. Returns {temporary file: size} as they were at the kill;
    empty when no write was caught before the sender ended or `timeout` passed (killed anyway)."""
    deadline = time.monotonic() + timeout
    while sender.poll() is None and time.monotonic() < deadline:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        if sum(n.endswith(".dcm") for n in names) < finished or not any(n.startswith(".tmp-") for n in names):
            continue
        listener.signal(signal.SIGSTOP)
        listener.wait_stopped()
        frozen = {p.name: p.stat().st_size for p in temp_files(folder)}
        if frozen:
            listener.stop(signal.SIGKILL)
            return frozen
        listener.signal(signal.SIGCONT)  # the write ended before the freeze: try the next one
    listener.stop(signal.SIGKILL)
    return {}


@pytest.mark.interop  # DCMTK storescu sends
def test_killed_while_receiving_loses_nothing_it_acknowledged(pacsbrowser_cmd, child_env, workdir, lab_data):
    study, series = generate_uid(), generate_uid()
    big = [save(make_dataset(study, series, patient_id="BIG", extra_bytes=1_500_000, fill=n),
                        workdir / "big" / f"{n}.dcm") for n in range(24)]
    files = [*big, *lab_files(lab_data)]
    sources = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}
    root = workdir / "archive"
    command = [*pacsbrowser_cmd, "listen", "--host", LOOPBACK, "--port", "0", "--aet", "PBTEST", "--archive",
               str(root)]
    with ListenerProcess(command, child_env) as listener:
        port = listener.wait_ready()
        sender = start_storescu(port, files, extra=["-nh"])
        try:
            writing = kill_while_writing(listener, root / study / series, sender)
            out, _ = sender.communicate(timeout=60)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
    # The kill came in the middle of a write: a temporary file stood in the archive, and the
    # sender had sent an instance it got no answer for.
    assert writing, "no write under way was caught: the kill proves nothing"
    ok, refused, unanswered = acknowledged(out)
    assert ok and not refused, out[-3000:]
    assert unanswered, f"the sender was not waiting for an answer at the kill: {out[-3000:]}"
    assert len(ok) < len(files), "storescu finished before the kill: nothing was interrupted"
    assert {p.name for p in temp_files(root)} == set(writing)  # what the kill left is what was being written
    with Archive(root, readonly=True) as before:  # what the index said when the process died
        indexed_before = before.counts()["instances"]
    with Archive(root) as arc:
        assert arc.last_repair is not None  # it had not been closed: opening repaired it
        assert arc.last_repair.temp_files_removed == len(writing)
        report = arc.verify(deep=True)
        assert report.ok, report.problems
        assert temp_files(root) == []
        indexed = {row.sop_instance_uid for row in arc.instances()}
        assert len(indexed) == len(our_files(root)) >= len(ok)
        for path in ok:  # every instance the sender was told is stored, is
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            assert uid in indexed, f"{path} was acknowledged but is not in the archive"
        for path in unanswered:  # the one being written when the process died is not, not even in part
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            assert uid not in indexed, f"{path} was never acknowledged but is in the archive"
        check_archive_matches_sources(arc, sources)
    print(f"killed after {len(ok)} acknowledged of {len(files)}, writing {writing} (bytes so far); "
          f"{indexed_before} indexed at the kill, {len(indexed)} after the repair")


def _can_mount_tmpfs() -> bool:
    return os.geteuid() == 0 and all(shutil.which(tool) for tool in ("unshare", "nsenter", "mount"))


@pytest.mark.interop  # DCMTK storescu sends
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root for a private tmpfs (unshare -m)")
def test_a_really_full_disk(pacsbrowser_cmd, child_env, workdir, lab_data):
    """The listener in its own mount namespace, on a 640 KiB tmpfs: the lab set (about 600 KB) does
    not fit. What does not fit is refused (out of resources), what fits is whole and indexed."""
    mount_point = workdir / "small-disk"
    mount_point.mkdir()
    root = mount_point / "archive"
    listen = " ".join([*map(str, pacsbrowser_cmd), "listen", "--host", LOOPBACK, "--port", "0", "--aet",
                       "PBTEST", "--archive", str(root), "--reserve-mb", "0.1"])
    script = f"mount -t tmpfs -o size=640k pbtest {mount_point} && exec {listen}"
    files = lab_files(lab_data)
    sources = {i.sop_instance_uid: i.path for i in lab_data.instances}
    with ListenerProcess(["unshare", "-m", "--propagation", "private", "sh", "-c", script], child_env) as listener:
        port = listener.wait_ready()
        result = run_storescu(port, files, extra=["-nh"])
        ok, refused, _ = acknowledged(result.stdout + result.stderr)
        assert len(ok) + len(refused) == len(files)
        assert refused, "everything fitted: the disk was not full"
        assert ok, "nothing fitted"
        assert "Refused: OutOfResources" in result.stdout + result.stderr
        wait_for(lambda: sum("SENDER" in line for line in listener.stdout) == len(ok), 30,
                 "every stored instance indexed")
        # The archive as the listener sees it: its files through /proc/PID/root, its index with
        # `pacsbrowser archive verify` run inside the listener's mount namespace (SQLite resolves
        # /proc/PID/root to the host's view).
        inside = Path(f"/proc/{listener.proc.pid}/root") / root.relative_to("/")
        assert temp_files(inside) == []
        stored = our_files(inside)
        assert len(stored) == len(ok)
        for path in stored:
            meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
            assert dataset_bytes(path) == dataset_bytes(sources[meta.MediaStorageSOPInstanceUID])
        verify = subprocess.run(["nsenter", "-t", str(listener.proc.pid), "-m", *map(str, pacsbrowser_cmd),
                                 "archive", "verify", "--deep", "--archive", str(root)],
                                capture_output=True, text=True, timeout=60, env=child_env)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert f"{len(ok)} indexed instances, {len(ok)} files: consistent" in verify.stdout
        assert listener.stop(signal.SIGINT) == 0
    assert f"{len(ok)} instances stored, {len(refused)} refused" in "\n".join(listener.stderr)
    assert not any(mount_point.iterdir())  # the tmpfs went with its namespace; nothing landed here
