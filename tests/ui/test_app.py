"""The application starts, shows its window, and shuts down cleanly when the window is closed."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from pacsbrowser.core import executor
from pacsbrowser.ui.app import run_gui
from pacsbrowser.ui.main_window import MainWindow


def test_run_gui_shows_the_window_and_exits_when_it_is_closed(qapp, tmp_path, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("PACSBROWSER_ARCHIVE_DIR", str(tmp_path / "archive"))
    seen = []

    def close_window() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen.extend(windows)
        for window in windows:
            window.close()

    QTimer.singleShot(200, close_window)
    assert run_gui() == 0
    assert len(seen) == 1
    assert "No server profiles yet" in seen[0].statusBar().currentMessage()
    assert executor.active_threads() == []
