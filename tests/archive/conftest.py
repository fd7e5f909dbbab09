"""Fixtures for the archive and Storage SCP tests.

    workdir, archive  (the root conftest) a temporary folder, and an empty Archive in it
    pacsbrowser_cmd  [python, -m, pacsbrowser]: our command line in a child process
    child_env        the environment for it
Helpers (storescu, synthetic datasets, polling) are in helpers.py.

Every test here also checks that it leaves no thread or child process of ours behind.
"""

from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture
def pacsbrowser_cmd() -> list[str]:
    """How to run our command line in a child process."""
    return [sys.executable, "-m", "pacsbrowser"]


@pytest.fixture
def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
