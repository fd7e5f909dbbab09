"""The window's first job: pick a saved server and echo it, without freezing."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import NO_RETRY, ServerProfile, Timeouts
from pacsbrowser.ui.main_window import MainWindow

from .conftest import run_until

pytestmark = pytest.mark.interop


def test_echo_button_reports_success_and_failure(qtbot, qloop, orthanc, tmp_path, unused_port, archive):
    store = ProfileStore(tmp_path / "profiles")
    store.add(ServerProfile(name="Lab Orthanc", host=orthanc.host, port=orthanc.port, called_ae=orthanc.aet))
    store.add(ServerProfile(name="Nobody home", host="127.0.0.1", port=unused_port, called_ae="X",
                            retry=NO_RETRY, timeouts=Timeouts.uniform(2)))
    window = MainWindow(store, archive=archive)
    qtbot.addWidget(window)
    window.show()
    assert window.profiles.list.count() == 2

    window.profiles.list.setCurrentRow(0)
    qtbot.mouseClick(window.profiles.echo_button, Qt.MouseButton.LeftButton)
    run_until(qloop, lambda: "answered" in window.profiles.status.text())
    assert "Lab Orthanc answered the C-ECHO" in window.log.toPlainText()

    window.profiles.list.setCurrentRow(1)
    qtbot.mouseClick(window.profiles.echo_button, Qt.MouseButton.LeftButton)
    run_until(qloop, lambda: "refused" in window.profiles.status.text())
    assert "connection refused" in window.statusBar().currentMessage()
    window.grab().save(str(tmp_path / "echo.png"))


def test_geometry_and_layout_are_remembered_between_runs(qtbot, qloop, tmp_path, archive):
    store = ProfileStore(tmp_path / "profiles")
    first = MainWindow(store, archive=archive)
    qtbot.addWidget(first)
    first.show()
    first.resize(700, 520)  # within the offscreen screen, so nothing is clamped
    first.log_dock.hide()
    size = (first.width(), first.height())
    first.close()
    second = MainWindow(store, archive=archive)
    qtbot.addWidget(second)
    second.show()
    assert (second.width(), second.height()) == size != (1200, 800)  # not the first-run default
    assert not second.log_dock.isVisible()
