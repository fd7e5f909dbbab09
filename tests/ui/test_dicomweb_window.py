"""The window with a DICOMweb server, against the lab's Orthanc with its DICOMweb plugin: a profile is
created in the dialog, tested (its HTTP steps), echoed, searched (the results tree filled page by
page over QIDO-RS), and a double-click retrieves the study by WADO-RS into the archive, with its
images shown; a second double-click opens them with no request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import RetrieveMethod
from pacsbrowser.ui.main_window import MainWindow
from pacsbrowser.ui.models.holdings import Held
from pacsbrowser.ui.models.transfers import SERVER, State
from tests.web.conftest import web_orthanc  # noqa: F401 - the fixture: Orthanc with DICOMweb, lab data loaded

from .conftest import run_until
from .test_dicomweb_dialog import fill_web, ok
from .test_transfers_window import double_click, finished, held, search

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


@pytest.fixture
def store(qloop, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_KEYRING", "off")
    return ProfileStore()  # qloop's PACSBROWSER_CONFIG_DIR: the services find saved secrets there too


@pytest.fixture
def window(qtbot, qloop, store, archive):
    win = MainWindow(store, archive)
    win.resize(1500, 950)
    win.show()
    yield win
    qloop.run_until_complete(win.shutdown())
    win.close()


def add_web_profile(window, name: str, url: str, *, page_size: int = 500, **fields):
    dialog = window.add_profile()
    fill_web(dialog, name=name, url=url, **fields)
    if page_size != 500:
        dialog.web.advanced.setChecked(True)
        dialog.web.page_size.setValue(page_size)
    assert ok(dialog).isEnabled(), dialog.problem.text()
    ok(dialog).click()
    profile = window.profiles.current_profile()
    assert profile is not None and profile.name == name and profile.is_web
    return profile


def shot(widget, name: str) -> None:
    """Save what the widget shows when PACSBROWSER_TEST_SHOTS names a folder (to look at it)."""
    folder = os.environ.get("PACSBROWSER_TEST_SHOTS")
    if folder:
        widget.grab().save(str(Path(folder) / f"{name}.png"))


def test_steps(window, qloop, name: str) -> list[tuple[str, str, str]]:
    names = [p.name for p in window.profile_controller.profiles]
    window.profiles.list.setCurrentRow(names.index(name))
    window.profiles.test_button.click()
    dialog = window.test_dialog
    run_until(qloop, lambda: not window.profile_controller.testing and dialog.steps.topLevelItemCount() >= 4,
              timeout=60)
    return dialog.results()


test_steps.__test__ = False  # a helper, not a test


def test_a_dicomweb_profile_is_created_in_the_dialog_then_tested_and_echoed(window, qloop, web_orthanc):  # noqa: F811 - the imported fixture
    profile = add_web_profile(window, "Lab DICOMweb", web_orthanc.url)
    assert profile.web.base_url == web_orthanc.url and profile.retrieve_method is RetrieveMethod.WADO
    row = window.profiles.list.currentItem().text()
    assert web_orthanc.url in row and "HTTP · WADO-RS" in row and "@" not in row  # no AE title shown

    steps = test_steps(window, qloop, "Lab DICOMweb")
    marks = {step: mark for mark, step, _ in steps}
    assert marks.get("HTTP") == "✔" and marks.get("QIDO-RS") == "✔", steps
    assert "Association" not in marks and "C-ECHO" not in marks
    assert "Every step passed" in window.test_dialog.heading.text()
    shot(window.test_dialog, "dicomweb-test")
    window.test_dialog.close()

    window.profiles.echo_button.click()
    run_until(qloop, lambda: "answered" in window.profiles.status.text(), timeout=30)
    assert "answered a small QIDO-RS request" in window.profiles.status.text()


def test_searched_page_by_page_then_a_double_click_retrieves_by_wado_rs_and_the_images_appear(
        window, qloop, qtbot, web_orthanc, lab_data, archive, capsys):  # noqa: F811 - the imported fixture
    add_web_profile(window, "Lab DICOMweb", web_orthanc.url, page_size=3)

    # every lab study, 3 to a QIDO-RS page: the tree fills as the pages arrive
    batches: list[int] = []
    window.query.batch.connect(lambda results: batches.append(len(results)))
    search(qloop, window, patient_id="LAB*")
    assert window.results_model.top_level_count() == len(lab_data.studies) == 10
    assert len(batches) >= 4 and max(batches) <= 3, batches
    assert "QIDO-RS to Lab DICOMweb" in window.log.toPlainText()
    assert "C-FIND" not in window.log.toPlainText()

    study = next(s for s in lab_data.studies if s.series_count == 2 and s.instance_count > 8)
    node = next(n for n in window.results_model.root.children if n.result.study_instance_uid == study.uid)
    run_until(qloop, lambda: held(window, study.uid) is Held.NONE)
    double_click(qtbot, window, node)
    (transfer,) = window.transfers.model.transfers
    run_until(qloop, lambda: finished(transfer), timeout=90)
    assert transfer.state is State.COMPLETE, (transfer.message, transfer.detail)
    assert transfer.message.startswith(f"Retrieved {study.instance_count} images")
    assert transfer.done == study.instance_count and transfer.bytes_done > 0
    held_uids = {i.sop_instance_uid for i in archive.instances(study_uid=study.uid)}
    assert held_uids == {i.sop_instance_uid for i in lab_data.instances_of_study(study.uid)}
    tooltip = window.transfers.model.data(window.transfers.model.index(0, SERVER), Qt.ItemDataRole.ToolTipRole)
    assert tooltip == f"{web_orthanc.url}, WADO-RS"
    run_until(qloop, lambda: held(window, study.uid) is Held.FULL)

    started = window.transfers.started_count
    double_click(qtbot, window, node)  # all here now: the images open, no request
    thumbnails = window.thumbnails
    run_until(qloop, lambda: len(thumbnails.model.instance_tiles()) == study.instance_count
              and all(tile.is_ready for tile in thumbnails.model.instance_tiles()), timeout=60)
    assert window.transfers.started_count == started
    shot(window, "dicomweb-window")
    with capsys.disabled():
        print(f"\n[dicomweb window] {transfer.message} ({len(batches)} result batches)")
