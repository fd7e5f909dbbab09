"""Server profiles in the window: create one through the dialog, then Test it, plain and TLS."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.ui.main_window import MainWindow
from pacsbrowser.ui.widgets.profile_dialog import ProfileDialog

from .conftest import run_until


@pytest.fixture
def window(qtbot, qloop, tmp_path, archive):
    win = MainWindow(ProfileStore(tmp_path / "profiles"), archive=archive)
    qtbot.addWidget(win)
    win.show()
    yield win
    qloop.run_until_complete(win.shutdown())


def fill(dialog: ProfileDialog, *, name: str, port: int, called_ae: str, tls=None) -> None:
    dialog.name.setText(name)
    dialog.host.setText("127.0.0.1")
    dialog.port.setValue(port)
    dialog.called_ae.setText(called_ae)
    if tls is not None:
        dialog.tls.setChecked(True)
        dialog.tls_ca.edit.setText(str(tls.ca_cert))
        dialog.tls_cert.edit.setText(str(tls.client_cert))
        dialog.tls_key.edit.setText(str(tls.client_key))


def ok_button(dialog: ProfileDialog):
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def test_dialog_checks_input_as_typed(window, tmp_path):
    dialog = window.add_profile()
    assert not ok_button(dialog).isEnabled() and "name" in dialog.problem.text()
    fill(dialog, name="PACS", port=104, called_ae="PACS")
    assert ok_button(dialog).isEnabled() and dialog.problem.text() == ""
    dialog.called_ae.setText("")
    assert not ok_button(dialog).isEnabled() and "called AE" in dialog.problem.text()
    dialog.called_ae.setText("A" * 20)  # the field stops at 16 characters
    assert dialog.called_ae.text() == "A" * 16 and ok_button(dialog).isEnabled()
    dialog.tls.setChecked(True)
    dialog.tls_ca.edit.setText(str(tmp_path / "missing-ca.pem"))
    assert not ok_button(dialog).isEnabled() and "does not exist" in dialog.problem.text()
    dialog.reject()


def _test_steps(window, qloop, profile_name: str) -> list[tuple[str, str, str]]:
    window.profiles.list.setCurrentRow([p.name for p in window.profile_controller.profiles].index(profile_name))
    window.profiles.test_button.click()
    dialog = window.test_dialog
    run_until(qloop, lambda: not window.profile_controller.testing and dialog.steps.topLevelItemCount() >= 5,
              timeout=30)
    return dialog.results()


def test_create_a_profile_then_test_it_plain_and_tls(window, qloop, orthanc, orthanc_tls, certs):
    dialog = window.add_profile()
    fill(dialog, name="Lab Orthanc", port=orthanc.port, called_ae=orthanc.aet)
    ok_button(dialog).click()
    dialog = window.add_profile()
    fill(dialog, name="Lab Orthanc TLS", port=orthanc_tls.port, called_ae=orthanc_tls.aet, tls=certs)
    ok_button(dialog).click()
    assert [p.name for p in window.profile_controller.store.load()] == ["Lab Orthanc", "Lab Orthanc TLS"]

    plain = _test_steps(window, qloop, "Lab Orthanc")
    assert [(mark, step) for mark, step, _ in plain] == [
        ("✔", "Name resolution"), ("✔", "TCP connection"), ("–", "TLS handshake"), ("✔", "Association"),
        ("✔", "C-ECHO"), ("✔", "C-FIND")]
    assert "Every step passed" in window.test_dialog.heading.text()
    window.test_dialog.close()

    secure = dict((step, (mark, text)) for mark, step, text in _test_steps(window, qloop, "Lab Orthanc TLS"))
    assert secure["TLS handshake"][0] == "✔" and "TLSv1." in secure["TLS handshake"][1]
    assert "localhost" in secure["TLS handshake"][1]  # the certificate's subject, in words
    assert secure["C-FIND"][0] == "✔"
    window.test_dialog.grab().save(str(window.profile_controller.store.directory / "test-dialog.png"))


def test_a_failing_step_is_red_and_says_why(window, qloop, orthanc_tls, certs):
    dialog = window.add_profile()
    fill(dialog, name="No client certificate", port=orthanc_tls.port, called_ae=orthanc_tls.aet, tls=certs)
    dialog.tls_cert.edit.setText("")
    dialog.tls_key.edit.setText("")
    ok_button(dialog).click()
    steps = {step: (mark, text) for mark, step, text in _test_steps(window, qloop, "No client certificate")}
    assert steps["Association"] == ("✘", steps["Association"][1])
    assert "requires a client certificate" in steps["Association"][1]
    assert "found a problem" in window.test_dialog.heading.text()
