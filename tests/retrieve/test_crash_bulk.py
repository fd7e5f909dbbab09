"""A `pacsbrowser get` killed with SIGKILL in the middle of a C-GET whose files are made durable in
batches (core.archive.committer): the files not yet renamed are temporary files, `archive verify`
reports them (and the repair on opening removes them), no half file is ever listed, and a second
`pacsbrowser get` fetches exactly what is missing.

(A SIGKILL of `pacsbrowser listen` while storescu sends, the durable-before-reply path: see
tests/archive/test_crash.py.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pacsbrowser.cli.common import EXIT_OK
from pacsbrowser.core.archive import Archive

from .helpers import GeneratedStudy, assert_same_as_source, whole_files_only

pytestmark = pytest.mark.timeout(180)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PACSBROWSER_ARCHIVE_DIR", None)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pacsbrowser", *args]


def _names(root: Path) -> tuple[int, list[Path]]:
    """Finished files and temporary files under the archive root."""
    done, temps = 0, []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".tmp-"):
                temps.append(Path(dirpath) / name)
            elif name.endswith(".dcm"):
                done += 1
    return done, temps


def test_get_killed_mid_transfer_then_completed(big_orthanc, big_study: GeneratedStudy, workdir: Path, capsys):
    out = workdir / "archive"
    connection = ["--host", big_orthanc.host, "--port", str(big_orthanc.port), "--called-ae", big_orthanc.aet,
                  "--timeout", "10"]
    get = _cli("get", *connection, "--study-uid", big_study.study_uid, "--out", str(out))
    caught: list[Path] = []
    done_at_kill = 0
    for _attempt in range(3):  # the transfer is quick: catch it with files renamed and files pending
        child = subprocess.Popen(get, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while child.poll() is None and time.monotonic() < deadline:
                done, temps = _names(out)
                if done >= 20 and temps:
                    os.kill(child.pid, signal.SIGSTOP)  # every thread stops: what is on disk stays
                    done_at_kill, caught = _names(out)
                    os.kill(child.pid, signal.SIGKILL)
                    break
                time.sleep(0.002)
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        if caught:
            break
        subprocess.run(["rm", "-rf", str(out)], check=True)
    assert caught, "no moment with renamed and pending files was caught in three tries"
    assert 20 <= done_at_kill < 400

    # `archive verify` on the next start: the repair on opening removes the unrenamed tail and says so.
    verify = subprocess.run(_cli("archive", "verify", "--archive", str(out)), env=_env(), capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert verify.returncode == EXIT_OK, verify.stdout + verify.stderr
    removed = re.search(r"(\d+) temporary files removed", verify.stdout)
    assert removed and int(removed.group(1)) >= 1, verify.stdout
    assert "consistent" in verify.stdout

    with Archive(out) as archive:
        held = {row.sop_instance_uid for row in archive.instances()}
        whole_files_only(archive)  # no half file, index and files agree
        assert done_at_kill <= len(held) < 400
        assert_same_as_source(archive, [i for i in big_study.instances if i.sop_instance_uid in held])

    again = subprocess.run(get, env=_env(), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert again.returncode == EXIT_OK, again.stderr
    assert f"{len(held)} already in the archive; complete" in again.stdout, again.stdout
    with Archive(out) as archive:
        assert archive.counts()["instances"] == 400
        assert_same_as_source(archive, big_study.instances)
        whole_files_only(archive)
    with capsys.disabled():
        print(f"\n[crash] get killed with {done_at_kill} files renamed and {len(caught)} pending; "
              f"{len(held)} kept after repair, the second get fetched {400 - len(held)}")
