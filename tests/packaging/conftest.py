"""Packaging tests: the files in resources/ and packaging/, the wheel, and (on request) the bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.ui.conftest import qloop  # noqa: F401 - the window tests' fixture, for Help → About

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources"
PACKAGING = ROOT / "packaging"


def tool(name: str) -> str:
    """The path of a validator, or skip with the reason (`make test` installs them)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: make test installs it via packaging/debian-deps.sh)")
    return path
