"""This computer in the window: the archive listed and searched, delete and show in the file
manager, the listener in the status bar (DCMTK storescu pushing while the app runs), drops."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import pytest
from PySide6.QtCore import QDate, QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from pacsbrowser.core.config import ListenerSettings, ProfileStore, SettingsStore
from pacsbrowser.core.executor import run_blocking
from pacsbrowser.core.records import ServerProfile, StudyResult
from pacsbrowser.ui.controllers.drop import LOCAL
from pacsbrowser.ui.controllers.listener import ListenerState
from pacsbrowser.ui.main_window import MainWindow
from tests.archive.helpers import LOOPBACK, our_files, run_storescu

from .conftest import run_until

pytestmark = pytest.mark.interop


def screenshot(widget, name: str) -> None:
    """Save a picture of `widget` into $PACSBROWSER_SCREENSHOTS when set (docs/local.png is made so)."""
    folder = os.environ.get("PACSBROWSER_SCREENSHOTS")
    if folder:
        widget.grab().save(str(Path(folder) / name))


def make_window(qtbot, qloop, tmp_path, archive, listener: ListenerSettings | None = None) -> MainWindow:
    store = ProfileStore(tmp_path / "profiles")
    store.add(ServerProfile(name="Lab PACS", host=LOOPBACK, port=104, called_ae="LABPACS"))
    if listener is not None:
        SettingsStore(store.directory).save_listener(listener)
    window = MainWindow(store, archive=archive)
    qtbot.addWidget(window)
    window.show()
    qloop.run_until_complete(window.start())  # as the application does once its loop runs
    return window


@pytest.fixture
def window(qtbot, qloop, tmp_path, archive):
    win = make_window(qtbot, qloop, tmp_path, archive)
    yield win
    qloop.run_until_complete(win.shutdown())


def show_local(qloop, window, settle: bool = True, **fields) -> list:
    form = window.query_form
    form.clear()
    for name, value in fields.items():
        getattr(form, name).setText(value)
    window.local.keys = None
    if window.profiles.is_local():
        form.search_button.click()
    else:
        window.profiles.local_item.setSelected(True)  # the user clicks "This computer"
    run_until(qloop, lambda: window.local.keys is not None and "on this computer" in window.results.summary.text(),
              settle=settle)
    return [node.result for node in window.results_model.root.children]


def fill(archive, instances) -> None:
    for instance in instances:
        archive.import_file(instance.path)


def test_storescu_pushes_a_study_while_the_app_listens(qtbot, qloop, tmp_path, archive, lab_data, unused_port,
                                                       qtmodeltester):
    study = next(s for s in lab_data.studies if s.patient_id == "LAB0001")
    files = [i.path for i in lab_data.instances_of_study(study.uid) if not i.is_compressed]
    held = [s for s in lab_data.studies if s.patient_id in ("LAB0002", "LAB0004")]  # retrieved earlier
    fill(archive, [i for s in held for i in lab_data.instances_of_study(s.uid)])
    window = make_window(qtbot, qloop, tmp_path, archive,
                         ListenerSettings(ae_title="PBLOCAL", port=unused_port, host=LOOPBACK, start_with_app=True))
    try:
        assert window.listener.state is ListenerState.RUNNING  # start() waited for it
        status = window.local_side.status.text()
        assert f"PBLOCAL @ 127.0.0.1:{unused_port}" in status and "running · 0 images received" in status
        assert f"Listening as PBLOCAL on 127.0.0.1:{unused_port}" in window.log.toPlainText()
        assert window.listener.server is not None
        assert {r.study_instance_uid for r in show_local(qloop, window, settle=False)} == {s.uid for s in held}
        qtmodeltester.check(window.results_model)  # keeps checking every change as rows are updated

        def pushed() -> list:
            return [r for r in top(window) if r.study_instance_uid == study.uid]

        def logged() -> int:  # "Received 8 images from MODALITY", in one line or a few
            return sum(int(line.split("Received ")[1].split(" ")[0])
                       for line in window.log.toPlainText().splitlines() if "images from MODALITY" in line
                       or "image from MODALITY" in line)

        async def push_and_wait():
            # one run of the loop from the push until the rows show it: what arrives is handled
            # by the running loop, as in the application (never between two runs of a test's loop)
            done = await run_blocking(run_storescu, unused_port, files, calling="MODALITY", called="PBLOCAL")
            deadline = qloop.time() + 30
            while not (window.listener.received_count == len(files)
                       and [r.number_of_instances for r in pushed()] == [len(files)] and logged() == len(files)):
                assert qloop.time() < deadline, f"{window.listener.received_count} received, rows {pushed()}"
                await asyncio.sleep(0.02)
            return done

        done = qloop.run_until_complete(push_and_wait())
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(top(window)) == len(held) + 1
        assert f"{len(files)} images received" in window.local_side.status.text()
        entry = window.profiles.local_item.text()
        assert f"{len(held) + 1} studies" in entry and "Receiving as PBLOCAL" in entry
        row = next(n for n in window.results_model.root.children if n.result.study_instance_uid == study.uid)
        at = window.results.proxy.mapFromSource(window.results_model.index_of(row))
        window.results.tree.expand(at)
        run_until(qloop, lambda: row.children and row.children[0].result is not None, settle=False)
        window.results.tree.setCurrentIndex(at)
        window.resize(1400, 720)
        screenshot(window, "local.png")
    finally:
        qloop.run_until_complete(window.shutdown())
    assert window.listener.server is None and window.listener.state is ListenerState.STOPPED
    assert f"Listener stopped after receiving {len(files)} images" in window.log.toPlainText()


def top(window) -> list:
    return [node.result for node in window.results_model.root.children]


def test_a_port_in_use_is_said_in_words(qtbot, qloop, tmp_path, archive):
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        window = make_window(qtbot, qloop, tmp_path, archive,
                             ListenerSettings(port=port, host=LOOPBACK, start_with_app=True))
        try:
            assert window.listener.state is ListenerState.ERROR
            text = window.local_side.status.text()
            assert f":{port} · not running: the port is already in use by another program" in text
            assert "The listener cannot start: the port is already in use" in window.log.toPlainText()
        finally:
            qloop.run_until_complete(window.shutdown())


def test_search_this_computer_by_name_id_and_date(window, qloop, archive, lab_data):
    fill(archive, lab_data.instances)
    everything = {s.uid for s in lab_data.studies}
    assert {r.study_instance_uid for r in show_local(qloop, window)} == everything
    assert not window.profiles.edit_button.isEnabled()  # "This computer" is not a server profile
    smith = {s.uid for s in lab_data.studies if s.patient_name.startswith("SMITH")}
    assert {r.study_instance_uid for r in show_local(qloop, window, patient_name="smith")} == smith
    jane = {s.uid for s in lab_data.studies_of("LAB0002")}
    assert {r.study_instance_uid for r in show_local(qloop, window, patient_id="LAB0002")} == jane
    one = lab_data.studies[0]
    window.query_form.clear()
    window.query_form.set_date_preset("range")
    day = f"{one.date[:4]}-{one.date[4:6]}-{one.date[6:]}"
    window.query_form.date_from.setDate(QDate.fromString(day, "yyyy-MM-dd"))
    window.query_form.date_to.setDate(QDate.fromString(day, "yyyy-MM-dd"))
    window.local.keys = None
    window.query_form.search_button.click()
    run_until(qloop, lambda: window.local.keys is not None and "on this computer" in window.results.summary.text())
    assert {r.study_instance_uid for r in top(window)} == {s.uid for s in lab_data.studies_between(one.date, one.date)}
    # choosing a server again leaves the local view; its results tree is the PACS's
    window.profiles.list.setCurrentRow(0)
    assert not window.profiles.is_local() and window.profiles.current_profile().name == "Lab PACS"


def test_delete_and_show_in_file_manager(window, qloop, archive, lab_data, monkeypatch, qtmodeltester):
    fill(archive, lab_data.instances)
    show_local(qloop, window, patient_id="LAB0003")
    qtmodeltester.check(window.results_model)  # and every change after, the removal of a row too
    doomed = top(window)[0]
    assert isinstance(doomed, StudyResult)
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    tree = window.results.tree
    tree.setCurrentIndex(window.results.proxy.index(0, 0))
    window.results._context_menu(tree.visualRect(window.results.proxy.index(0, 0)).center())
    actions = {a.text(): a for a in window.results._menu.actions()}
    assert {"Show in file manager", "Delete from this computer…", "Copy Study Instance UID"} <= set(actions)
    window.results._menu.close()
    actions["Show in file manager"].trigger()
    run_until(qloop, lambda: opened)
    assert Path(opened[0].toLocalFile()) == archive.root / doomed.study_instance_uid

    files_before = len(our_files(archive.root))
    actions["Delete from this computer…"].trigger()
    box = window.local_side.delete_confirmation
    assert box is not None and box.isVisible()
    count = len(lab_data.instances_of_study(doomed.study_instance_uid))
    assert box.text() == f"Delete 1 study of DOE, ALICE ({count} images) from this computer?"
    delete = next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole)
    delete.click()
    run_until(qloop, lambda: doomed.study_instance_uid not in {r.study_instance_uid for r in top(window)})
    assert len(top(window)) == len(lab_data.studies_of("LAB0003")) - 1
    assert doomed.study_instance_uid not in {s.study_uid for s in archive.studies()}
    assert len(our_files(archive.root)) == files_before - count
    assert f"Deleted {count} images" in window.log.toPlainText()

    # a series of an expanded study: the study's row is updated and its series listed again
    study = next(s for s in lab_data.studies if len(lab_data.series_of(s.uid)) > 1)
    show_local(qloop, window, patient_id=study.patient_id)
    row = next(n for n in window.results_model.root.children if n.result.study_instance_uid == study.uid)
    window.results.tree.expand(window.results.proxy.mapFromSource(window.results_model.index_of(row)))
    run_until(qloop, lambda: len(row.children) == len(lab_data.series_of(study.uid)) and row.children[0].result)
    series = row.children[0].result
    box = window.local_side.confirm_delete([series])
    assert box.text().startswith("Delete 1 series (")
    next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole).click()
    run_until(qloop, lambda: series.series_instance_uid not in {n.result.series_instance_uid for n in row.children
                                                                 if n.result is not None})
    assert len(row.children) == len(lab_data.series_of(study.uid)) - 1
    assert row.result.number_of_series == len(lab_data.series_of(study.uid)) - 1


def drop_on(widget, position, paths) -> None:
    """Drag `paths` over `widget` and drop them at `position` (Qt delivers a drop to the widget that
    accepted the drag's entry)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(position, *args)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(QPointF(position), *args))


def dropped_folder(workdir, lab_data) -> tuple[Path, list]:
    folder = workdir / "drop"
    (folder / "series").mkdir(parents=True)
    good = lab_data.uncompressed_instances()[:4]
    for n, instance in enumerate(good):
        shutil.copy(instance.path, folder / "series" / f"{n}.dcm")
    whole = good[0].path.read_bytes()
    (folder / "damaged.dcm").write_bytes(whole[: len(whole) // 2])
    (folder / "report.txt").write_text("not an image")
    return folder, good


def test_a_drop_on_a_profile_asks_then_asks_for_a_send(window, qloop, lab_data, workdir):
    folder, good = dropped_folder(workdir, lab_data)
    wanted: list = []
    window.drops.send_requested.connect(lambda profile, paths: wanted.append((profile, paths)))
    rows = window.profiles.list
    drop_on(rows.viewport(), rows.visualItemRect(rows.item(0)).center(), [folder])
    run_until(qloop, lambda: window.local_side.drop_confirmation is not None)
    box = window.local_side.drop_confirmation
    size = sum(i.path.stat().st_size for i in good)
    assert box.text().startswith("Send 4 DICOM files (") and "to Lab PACS (LABPACS at 127.0.0.1:104)?" in box.text()
    assert f"{size / 1024:.1f} kB" in box.text() or f"{size / 2**20:.1f} MB" in box.text()
    assert box.informativeText() == "2 files will be left out: 1 not DICOM, 1 damaged or unreadable."
    assert "report.txt: not a DICOM file" in box.detailedText() and "damaged.dcm: a truncated" in box.detailedText()
    screenshot(box, "local-drop.png")
    box.go_button.click()
    assert len(wanted) == 1
    profile, paths = wanted[0]
    assert profile.name == "Lab PACS"
    assert sorted(p.name for p in paths) == ["0.dcm", "1.dcm", "2.dcm", "3.dcm"]


def test_a_drop_on_this_computer_imports(window, qloop, archive, lab_data, workdir):
    folder, good = dropped_folder(workdir, lab_data)
    show_local(qloop, window)
    local = window.profiles.local
    drop_on(local.viewport(), local.visualItemRect(window.profiles.local_item).center(), [folder])
    run_until(qloop, lambda: window.local_side.drop_confirmation is not None)
    box = window.local_side.drop_confirmation
    assert box.text().startswith("Import 4 DICOM files (") and box.text().endswith("into this computer's archive?")
    box.go_button.click()
    run_until(qloop, lambda: "Imported 4 images" in window.log.toPlainText()
              and sum(r.number_of_instances or 0 for r in top(window)) == 4, timeout=20)
    assert {i.sop_instance_uid for i in archive.instances()} == {i.sop_instance_uid for i in good}


def test_a_drop_anywhere_goes_to_the_current_choice(window, qloop, workdir):
    assert window.local_side._drop_target_at(window, window.rect().center()).name == "Lab PACS"
    window.profiles.choose_local()
    run_until(qloop, lambda: "on this computer" in window.results.summary.text())
    assert window.local_side._drop_target_at(window, window.rect().center()) == LOCAL
    drop_on(window, window.rect().center(), [workdir / "nothing-here"])
    run_until(qloop, lambda: window.local_side.drop_confirmation is not None)
    box = window.local_side.drop_confirmation
    assert box.text() == "No DICOM files were found in what was dropped." and box.go_button is None


def test_listener_settings_are_saved_and_applied(window, qloop, tmp_path, unused_port):
    dialog = window.local_side.edit_listener()
    dialog.ae_title.setText("WS-7")
    dialog.port.setValue(unused_port)
    dialog.host.setText(LOOPBACK)
    dialog.allowed.setText("CT1, MR2")
    dialog.start_with_app.setChecked(True)
    dialog.tls_box.setChecked(True)
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
    assert "certificate" in dialog.problem.text()
    dialog.tls_box.setChecked(False)
    dialog.accept()
    # settle=False: the listener's record stream is a task that runs until the listener stops
    run_until(qloop, lambda: window.listener.state is ListenerState.RUNNING, settle=False)
    saved = SettingsStore(tmp_path / "profiles").listener()
    assert (saved.ae_title, saved.port, saved.allowed_calling_aes, saved.start_with_app) == \
        ("WS-7", unused_port, ("CT1", "MR2"), True)
    assert window.listener.server.settings.allowed_calling_aes == ("CT1", "MR2")
    assert f"WS-7 @ 127.0.0.1:{unused_port}" in window.local_side.status.text()
    qloop.run_until_complete(window.listener.stop())
    assert "stopped" in window.local_side.status.text()


def test_send_selected_local_studies_to_a_server(window, qloop, archive, lab_data):
    fill(archive, lab_data.instances)
    show_local(qloop, window, patient_id="LAB0002")
    wanted: list = []
    window.drops.send_requested.connect(lambda profile, paths: wanted.append((profile, paths)))
    tree = window.results.tree
    tree.selectAll()
    window.results._context_menu(tree.visualRect(window.results.proxy.index(0, 0)).center())
    send = next(a for a in window.results._menu.actions() if a.text() == "Send to").menu()
    window.results._menu.close()
    next(a for a in send.actions() if a.text() == "Lab PACS").trigger()
    run_until(qloop, lambda: window.local_side.drop_confirmation is not None)
    box = window.local_side.drop_confirmation
    instances = [i for s in lab_data.studies_of("LAB0002") for i in lab_data.instances_of_study(s.uid)]
    assert box.text().startswith(f"Send {len(instances)} DICOM files (") and "to Lab PACS" in box.text()
    box.go_button.click()
    profile, paths = wanted[0]
    assert profile.name == "Lab PACS"
    assert sorted(paths) == sorted(archive.instance(i.sop_instance_uid).path for i in instances)
