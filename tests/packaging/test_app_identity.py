"""The version in one place, `--version`, Help → About, and how desktop-passed files start the window."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import pacsbrowser
from pacsbrowser import __main__ as entry
from pacsbrowser.ui.about import component_versions, show_about

from .conftest import ROOT


def test_version_option_prints_the_package_version():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "pacsbrowser", "--version"], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pacsbrowser {pacsbrowser.__version__}"


def test_pyproject_reads_the_version_from_the_package():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pacsbrowser.__version__"}
    assert project["project"]["license"] == "MIT"  # an SPDX expression, not the deprecated table
    assert project["project"]["gui-scripts"]["pacsbrowser-gui"] == project["project"]["scripts"]["pacsbrowser"]


def test_about_names_the_versions(qloop, qtbot, tmp_path):
    from pacsbrowser.core.config import ProfileStore
    from pacsbrowser.ui.main_window import MainWindow

    window = MainWindow(ProfileStore(tmp_path / "profiles"))
    qtbot.addWidget(window)
    help_menu = [a for a in window.menuBar().actions() if a.text() == "&Help"]
    assert help_menu and [a.text() for a in help_menu[0].menu().actions()] == ["&About PACS Browser"]
    box = show_about(window)
    try:
        text = box.text()
        versions = component_versions()
        for name in ("Qt", "PySide6", "pydicom", "pynetdicom"):
            assert f"<td>{name}</td><td>&nbsp;{versions[name]}</td>" in text
        assert pacsbrowser.__version__ in text and "DICOM PS3.4" in text
        assert not box.iconPixmap().isNull()
    finally:
        box.close()


@pytest.mark.parametrize(("args", "gui"), [
    ([], True),
    (["--version"], False),
    (["echo", "--host", "127.0.0.1"], False),
    (["relative.dcm"], False),  # a desktop passes absolute paths; relative words are sub-commands
])
def test_which_arguments_start_the_window(args, gui):
    assert (not args or entry._desktop_paths(args)) is gui


def test_absolute_existing_paths_start_the_window(tmp_path):
    files = [tmp_path / "a.dcm", tmp_path / "b.dcm"]
    for path in files:
        path.write_bytes(b"")
    assert entry._desktop_paths([str(p) for p in files])
    assert not entry._desktop_paths([str(files[0]), str(tmp_path / "missing.dcm")])
