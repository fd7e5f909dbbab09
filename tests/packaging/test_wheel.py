"""`pip wheel` of the source tree: the wheel carries resources/ as pacsbrowser.resources, both scripts,
the SPDX license and the package's version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

import pacsbrowser

from .conftest import ROOT

# What a build needs from the tree (a copy, so the build's build/ and *.egg-info stay out of it).
SOURCES = ["pacsbrowser", "resources", "packaging", "docs", "pyproject.toml", "setup.py", "README.md", "LICENSE",
           "MANIFEST.in"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    # Build isolation fetches setuptools>=77 (pyproject.toml's build-system) from the package index.
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("pacsbrowser-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_carries_the_resources(wheel):
    names = set(wheel.namelist())
    for resource in (ROOT / "resources").rglob("*"):
        if resource.is_file() and "__pycache__" not in resource.parts:
            assert f"pacsbrowser/resources/{resource.relative_to(ROOT / 'resources').as_posix()}" in names
    assert "pacsbrowser/ui/resources.py" in names and "pacsbrowser/__main__.py" in names


def test_the_wheel_carries_every_package(wheel):
    from setuptools import find_packages

    names = set(wheel.namelist())
    for package in find_packages(str(ROOT), include=["pacsbrowser", "pacsbrowser.*"]):
        assert f"{package.replace('.', '/')}/__init__.py" in names, package


def test_the_wheel_metadata(wheel):
    dist_info = f"pacsbrowser-{pacsbrowser.__version__}.dist-info"
    metadata = wheel.read(f"{dist_info}/METADATA").decode()
    assert f"Version: {pacsbrowser.__version__}\n" in metadata
    assert "License-Expression: MIT\n" in metadata
    entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "[console_scripts]\npacsbrowser = pacsbrowser.__main__:main" in entry_points
    assert "[gui_scripts]\npacsbrowser-gui = pacsbrowser.__main__:main" in entry_points
    assert f"{dist_info}/licenses/LICENSE" in wheel.namelist()
