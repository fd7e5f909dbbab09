"""A damaged profiles.toml does not stop the window: it says which line is wrong, keeps a copy of
the file, and starts with the profiles it could read."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import ServerProfile
from pacsbrowser.ui.main_window import MainWindow

GOOD = ServerProfile(name="Radiology", host="127.0.0.1", port=104, called_ae="PACS")


@pytest.fixture
def store(tmp_path):
    store = ProfileStore(tmp_path / "profiles")
    store.save([GOOD, ServerProfile(name="Second", host="127.0.0.1", port=105, called_ae="OTHER")])
    return store


def start(qtbot, qloop, store):
    win = MainWindow(store)
    qtbot.addWidget(win)
    win.show()
    return win


def damage(store: ProfileStore, old: str, new: str) -> int:
    """Replace text in the file; returns the (1-based) line that now holds the damage."""
    lines = store.path.read_text().splitlines(keepends=True)
    number = next(n for n, line in enumerate(lines) if line.strip() == old)
    lines[number] = new + "\n"
    store.path.write_text("".join(lines))
    return number + 1


@pytest.mark.parametrize("old, new, words", [
    ('port = 105', 'port = ', "Invalid value"),  # not TOML any more
    ('port = 105', 'port = 0', "port: must be a whole number from 1 to 65535"),  # TOML, but not a port
    ('called_ae = "OTHER"', 'called_ae = "BACK\\\\SLASH"', "called AE title"),
])
def test_window_starts_with_what_it_could_read(qtbot, qloop, store, old, new, words):
    original = store.path.read_text()
    line = damage(store, old, new)
    damaged = store.path.read_text()
    win = start(qtbot, qloop, store)
    try:
        assert [p.name for p in win.profile_controller.profiles] == ["Radiology"]
        assert win.profiles.list.count() == 1
        log = win.log.toPlainText()
        assert f"line {line}" in log and words in log, log
        backups = sorted(store.directory.glob("profiles.damaged-*.toml"))
        assert len(backups) == 1 and backups[0].read_text() == damaged != original
        assert str(backups[0]) in log
        boxes = [b for b in win.findChildren(QMessageBox) if b.isVisible()]
        # opened with open(): the constructor returned, the loop runs, only this window waits on it
        assert len(boxes) == 1 and f"line {line}" in boxes[0].text()
        assert boxes[0].windowModality() != Qt.WindowModality.ApplicationModal
        win.grab().save(f"/tmp/damaged-profiles-{line}.png")
        # Saving rewrites the file with what was read; the damaged copy stays.
        assert win.profile_controller.add(ServerProfile(name="New", host="h", port=11, called_ae="N"))
        assert [p.name for p in store.load()] == ["Radiology", "New"]
        assert backups[0].read_text() == damaged
    finally:
        qloop.run_until_complete(win.shutdown())


def test_a_file_that_is_not_toml_at_all(qtbot, qloop, store):
    store.path.write_bytes(b"\x00\xff garbage [[[\n")
    win = start(qtbot, qloop, store)
    try:
        assert win.profile_controller.profiles == []
        assert "line 1" in win.log.toPlainText()
        assert list(store.directory.glob("profiles.damaged-*.toml"))
    finally:
        qloop.run_until_complete(win.shutdown())


def test_an_intact_file_says_nothing(qtbot, qloop, store):
    win = start(qtbot, qloop, store)
    try:
        assert len(win.profile_controller.profiles) == 2
        assert win.log.toPlainText() == ""
        assert not list(store.directory.glob("profiles.damaged-*.toml"))
    finally:
        qloop.run_until_complete(win.shutdown())


def test_a_config_dir_that_is_a_file_is_said_and_the_window_starts(qtbot, qloop, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("PACSBROWSER_CONFIG_DIR", str(not_a_folder))
    win = MainWindow()
    qtbot.addWidget(win)
    try:
        assert "PACSBROWSER_CONFIG_DIR" in win.log.toPlainText()
        assert "a folder is expected" in win.log.toPlainText()
    finally:
        qloop.run_until_complete(win.shutdown())
