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
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacsbrowser.core.archive import Archive


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
