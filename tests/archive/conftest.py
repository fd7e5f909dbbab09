"""Fixtures for the archive and Storage SCP tests.

    workdir          a temporary folder of ours, removed after the test
    archive          an Archive in workdir/archive, closed after the test
    pacsbrowser_cmd  [python, -m, pacsbrowser]: our command line in a child process
    child_env        the environment for it
Helpers (storescu, synthetic datasets, polling) are in helpers.py.

Every test here also checks that it leaves no thread or child process of ours behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacsbrowser.core.archive import Archive


def _children() -> set[int]:
    """Our direct child processes (Linux /proc; empty elsewhere)."""
    found = set()
    me = str(os.getpid())
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry))
    return found


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """No thread or child process of ours outlives its test (bounded wait for those ending)."""
    before = set(threading.enumerate())
    children_before = _children()
    yield
    deadline = time.monotonic() + 10.0
    while _children() - children_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (_children() - children_before), "child processes left behind"
    deadline = time.monotonic() + 10.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        for thread in extra:
            thread.join(max(0.0, min(0.2, deadline - time.monotonic())))
    assert not extra, f"threads left behind: {[t.name for t in extra]}"


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pacsbrowser-archive-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def archive(workdir: Path) -> Iterator[Archive]:
    arc = Archive(workdir / "archive")
    try:
        yield arc
    finally:
        arc.close()


@pytest.fixture
def pacsbrowser_cmd() -> list[str]:
    """How to run our command line in a child process."""
    return [sys.executable, "-m", "pacsbrowser"]


@pytest.fixture
def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
