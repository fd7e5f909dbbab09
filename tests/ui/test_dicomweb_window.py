"""The window with a DICOMweb server, against the lab's Orthanc with its DICOMweb plugin: a profile is
created in the dialog, tested (its HTTP steps), echoed, searched (the results tree filled page by
page over QIDO-RS), and a double-click retrieves the study by WADO-RS into the archive, with its
images shown; a second double-click opens them with no request."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import RetrieveMethod, WebAuth
from pacsbrowser.ui.main_window import MainWindow
from pacsbrowser.ui.models.holdings import Held
from pacsbrowser.ui.models.results import Kind, LoadState
from pacsbrowser.ui.models.transfers import SERVER, State
from tests.lab.web_fixtures import PASSWORD, USER

from .conftest import run_until
from .test_dicomweb_dialog import fill_web, ok
from .test_local_window import drop_on, dropped_folder
from .test_transfers_window import double_click, finished, held, search, until

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


def test_a_dicomweb_profile_is_created_in_the_dialog_then_tested_and_echoed(window, qloop, web_orthanc):
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
        window, qloop, qtbot, web_orthanc, lab_data, archive, capsys):
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
    view = window.results
    view.tree.expand(view.proxy.mapFromSource(window.results_model.index_of(node)))  # its series, by QIDO-RS
    run_until(qloop, lambda: node.state is LoadState.LOADED, timeout=30)
    assert [c.kind for c in node.children] == [Kind.SERIES, Kind.SERIES]
    assert sorted(c.result.series_instance_uid for c in node.children) == \
        sorted(s.uid for s in lab_data.series_of(study.uid))
    view.tree.collapse(view.proxy.mapFromSource(window.results_model.index_of(node)))
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


def search_fails(qloop, window, **fields) -> str:
    """Search; the message the window shows for the failure (the results area and the status bar)."""
    form = window.query_form
    form.clear()
    for name, value in fields.items():
        getattr(form, name).setText(value)
    window.query.last_outcome = None
    failures: list[str] = []
    window.query.failed.connect(lambda message, _detail: failures.append(message))
    form.search_button.click()
    run_until(qloop, lambda: bool(failures) or window.query.last_outcome is not None, timeout=30)
    assert failures, "the search did not fail"
    run_until(qloop, lambda: not window.query.running)
    assert failures[0] in window.statusBar().currentMessage()
    return failures[0]


@pytest.fixture
def secure_study(web_orthanc_secure, lab_data):
    """The smallest lab study, in the HTTPS Orthanc for one test."""
    study = min(lab_data.studies, key=lambda s: s.instance_count)
    web_orthanc_secure.load([i.path for i in lab_data.instances_of_study(study.uid)])
    yield study
    web_orthanc_secure.delete_uid(study.uid)


def test_https_with_basic_auth_a_wrong_password_and_an_unknown_ca_say_what_is_wrong(
        window, qloop, store, certs, archive, web_orthanc_secure, secure_study):  # noqa: F811 - the fixture
    dialog = window.add_profile()
    fill_web(dialog, name="Secure DICOMweb", url=web_orthanc_secure.url, auth=WebAuth.BASIC, user=USER,
             secret="wrong horse")
    dialog.tls.setChecked(True)
    dialog.tls_ca.edit.setText(str(certs.ca_cert))
    shot(dialog, "dicomweb-dialog")
    ok(dialog).click()
    assert store.secrets.get("Secure DICOMweb") == "wrong horse" and "horse" not in store.path.read_text()
    message = search_fails(qloop, window, patient_id="LAB*")
    assert "HTTP 401" in message and f"did not accept user '{USER}' with this password" in message, message
    shot(window, "dicomweb-401-window")
    refused = window.transfers.retrieve(window.profiles.current_profile(), secure_study.uid, label="small study")
    run_until(qloop, lambda: finished(refused), timeout=30)
    assert refused.state is State.FAILED and "HTTP 401" in refused.message and "did not accept user" in refused.message
    steps = {step: (mark, text) for mark, step, text in test_steps(window, qloop, "Secure DICOMweb")}
    assert steps["TLS handshake"][0] == "✔" and "localhost" in steps["TLS handshake"][1], steps
    failed = [(step, text) for step, (mark, text) in steps.items() if mark == "✘"]
    assert failed and "HTTP 401" in failed[0][1] and "did not accept user" in failed[0][1], steps
    assert "found a problem" in window.test_dialog.heading.text()
    shot(window.test_dialog, "dicomweb-test-401")
    window.test_dialog.close()

    (saved,) = store.load()
    dialog = window.edit_profile(saved)
    assert dialog.web.secret.text() == "" and dialog.tls.isChecked() and dialog.tls_ca.path() == certs.ca_cert
    dialog.web.secret.setText(PASSWORD)
    ok(dialog).click()
    search(qloop, window, patient_id="LAB*")
    assert window.query.last_outcome.complete and window.results_model.top_level_count() == 1
    fetched = window.transfers.retrieve(window.profiles.current_profile(), secure_study.uid, label="small study")
    run_until(qloop, lambda: finished(fetched), timeout=30)  # with the new password, not the refused one
    assert fetched.state is State.COMPLETE, fetched.message
    assert len(archive.instances(study_uid=secure_study.uid)) == secure_study.instance_count

    dialog = window.edit_profile(store.load()[0])
    dialog.tls.setChecked(False)  # the system's CAs: they do not know the lab's CA
    ok(dialog).click()
    message = search_fails(qloop, window, patient_id="LAB*")
    assert "signed by an authority we do not trust" in message, message

    dialog = window.edit_profile(store.load()[0])
    dialog.tls.setChecked(True)
    dialog.tls_ca.edit.setText(str(certs.ca_cert))
    dialog.web.url.setText(web_orthanc_secure.url.replace("/dicom-web", "/no-such-root"))
    ok(dialog).click()
    message = search_fails(qloop, window, patient_id="LAB*")
    assert "HTTP 404" in message and "check the DICOMweb root" in message, message
    steps = test_steps(window, qloop, "Secure DICOMweb")
    failed = [(step, text) for mark, step, text in steps if mark == "✘"]
    assert failed and "HTTP 404" in failed[0][1] and "check the DICOMweb root" in failed[0][1], steps
    assert window.test_dialog.problem.text() == f"{failed[0][0]}: {failed[0][1]}"


def test_a_folder_dropped_on_a_dicomweb_server_is_sent_by_stow_rs(window, qloop, lab_data, workdir,
                                                                   fresh_web_orthanc):  # noqa: F811 - the fixture
    add_web_profile(window, "Empty DICOMweb", fresh_web_orthanc.url)
    folder, good = dropped_folder(workdir, lab_data)  # 4 good files, a damaged one, a text file
    rows = window.profiles.list
    drop_on(rows.viewport(), rows.visualItemRect(rows.item(0)).center(), [folder])
    run_until(qloop, lambda: window.local_side.drop_confirmation is not None)
    box = window.local_side.drop_confirmation
    assert box.text().startswith("Send 4 DICOM files (") and f"Empty DICOMweb ({fresh_web_orthanc.url})" in box.text()
    box.go_button.click()
    run_until(qloop, lambda: len(window.transfers.model.transfers) == 1)
    (transfer,) = window.transfers.model.transfers
    run_until(qloop, lambda: finished(transfer), timeout=60)
    assert transfer.state is State.COMPLETE, (transfer.message, transfer.detail)
    assert transfer.message.startswith("Sent 4 of 4 files")
    assert fresh_web_orthanc.sop_instance_uids() == {i.sop_instance_uid for i in good}
    tooltip = window.transfers.model.data(window.transfers.model.index(0, SERVER), Qt.ItemDataRole.ToolTipRole)
    assert tooltip == f"{fresh_web_orthanc.url}, STOW-RS"
    assert window.transfers_panel.detail_button.text() == "HTTP detail"


def test_a_wado_rs_retrieve_shows_its_progress_is_cancelled_from_the_panel_then_retry_fetches_the_rest(
        window, qloop, qtbot, web_big_orthanc, web_big_study, archive, capsys):  # noqa: F811 - the fixtures
    add_web_profile(window, "Big DICOMweb", web_big_orthanc.url)
    total = len(web_big_study.paths())
    search(qloop, window, study_uid=web_big_study.study_uid)
    (node,) = window.results_model.root.children
    double_click(qtbot, window, node)
    (transfer,) = window.transfers.model.transfers
    buttons = window.transfers_panel.buttons(transfer)
    seen: dict = {}

    async def cancel_part_way() -> float:
        await until(lambda: transfer.done >= 10 or finished(transfer))
        assert not finished(transfer), "the retrieve ended before it could be cancelled"
        seen["progress"] = transfer.progress_text()
        seen["bytes"] = transfer.bytes_done
        clicked = time.monotonic()
        qtbot.mouseClick(buttons.cancel_button, Qt.MouseButton.LeftButton)
        await until(lambda: finished(transfer), timeout=15)
        return time.monotonic() - clicked

    stopped = qloop.run_until_complete(cancel_part_way())
    run_until(qloop, lambda: True)
    kept = len(archive.instances(study_uid=web_big_study.study_uid))
    assert seen["bytes"] > 0 and f"/ {total} images" in seen["progress"], seen
    assert transfer.state is State.CANCELLED, transfer.message
    assert 10 <= kept < total and transfer.done == kept
    assert transfer.message == f"Stopped: {kept} of {total} images are on this computer; " \
                               f"Retry fetches the other {total - kept}."

    qloop.call_soon(lambda: qtbot.mouseClick(buttons.retry_button, Qt.MouseButton.LeftButton))
    run_until(qloop, lambda: transfer.attempt == 2 and finished(transfer), timeout=90)
    assert transfer.state is State.COMPLETE, (transfer.message, transfer.detail)
    assert (transfer.already_present, transfer.done) == (kept, total - kept)
    assert len(archive.instances(study_uid=web_big_study.study_uid)) == total
    with capsys.disabled():
        print(f"\n[dicomweb window] WADO-RS cancel from the panel after {kept}/{total} images "
              f"({seen['progress']}): stopped {stopped * 1000:.0f} ms after the click; {transfer.message}")


def test_a_client_certificate_given_in_the_dialog_passes_and_its_absence_is_said(
        window, qloop, certs, web_orthanc_mtls):
    dialog = window.add_profile()
    fill_web(dialog, name="Client certificate", url=web_orthanc_mtls.url)
    dialog.tls.setChecked(True)
    dialog.tls_ca.edit.setText(str(certs.ca_cert))
    dialog.tls_cert.edit.setText(str(certs.client_cert))
    assert dialog.problem.text() == "A client certificate needs its key, and a key its certificate."
    dialog.tls_key.edit.setText(str(certs.client_key))
    ok(dialog).click()
    marks = {step: mark for mark, step, _ in test_steps(window, qloop, "Client certificate")}
    assert marks == {"Name resolution": "✔", "TCP connection": "✔", "TLS handshake": "✔", "HTTP": "✔",
                     "QIDO-RS": "✔"}, marks
    window.test_dialog.close()

    dialog = window.edit_profile(window.profiles.current_profile())
    dialog.tls_cert.edit.setText("")
    dialog.tls_key.edit.setText("")
    ok(dialog).click()
    steps = test_steps(window, qloop, "Client certificate")
    failed = [(step, text) for mark, step, text in steps if mark == "✘"]
    assert failed and "client certificate" in failed[0][1], steps
