"""A DICOMweb profile in the profile dialog: the protocol chooses the rows, every field is checked as
it is typed, the password or token is masked and goes to the secret store (never profiles.toml),
and an edit, a rename or a copy keeps the saved one. No network: the window's searches and
retrieves over DICOMweb are in test_dicomweb_window.py."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QLineEdit

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import ProfileKind, WebAuth
from pacsbrowser.ui.main_window import MainWindow
from pacsbrowser.ui.widgets.profile_dialog import ProfileDialog

PASSWORD = "correct horse"


@pytest.fixture
def store(qloop, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_KEYRING", "off")  # the secret in the 0600 fallback file, never the desktop's
    return ProfileStore()  # PACSBROWSER_CONFIG_DIR of qloop: where the services look for the secret too


@pytest.fixture
def window(qtbot, qloop, store, archive):
    win = MainWindow(store, archive=archive)
    qtbot.addWidget(win)
    win.show()
    yield win
    qloop.run_until_complete(win.shutdown())


def ok(dialog: ProfileDialog):
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def fill_web(dialog: ProfileDialog, *, name: str, url: str, auth: WebAuth = WebAuth.NONE, user: str = "",
             secret: str = "") -> None:
    dialog.name.setText(name)
    dialog.kind.setCurrentIndex(dialog.kind.findData(ProfileKind.DICOMWEB))
    dialog.web.url.setText(url)
    dialog.web.auth.setCurrentIndex(dialog.web.auth.findData(auth))
    dialog.web.user.setText(user)
    dialog.web.secret.setText(secret)


def shown(dialog: ProfileDialog, widget) -> bool:
    return widget.isVisibleTo(dialog)


def test_the_protocol_chooses_the_rows(window):
    dialog = window.add_profile()
    dimse = dialog.dimse_rows()
    assert all(shown(dialog, w) for w in dimse) and not shown(dialog, dialog.web.url)
    dialog.kind.setCurrentIndex(dialog.kind.findData(ProfileKind.DICOMWEB))
    assert not any(shown(dialog, w) for w in dimse)  # host, port, AE titles, C-MOVE, charsets: gone
    assert shown(dialog, dialog.web.url) and shown(dialog, dialog.web.auth)
    assert not shown(dialog, dialog.web.user) and not shown(dialog, dialog.web.secret)  # no authentication
    assert not shown(dialog, dialog.tls_server_name) and dialog.tls.title().startswith("Own CA")

    dialog.web.auth.setCurrentIndex(dialog.web.auth.findData(WebAuth.BASIC))
    assert shown(dialog, dialog.web.user) and shown(dialog, dialog.web.secret)
    assert dialog.form.labelForField(dialog.web.secret).text() == "Password:"
    assert dialog.web.secret.echoMode() is QLineEdit.EchoMode.Password
    dialog.web.auth.setCurrentIndex(dialog.web.auth.findData(WebAuth.BEARER))
    assert not shown(dialog, dialog.web.user) and dialog.form.labelForField(dialog.web.secret).text() == "Token:"
    assert shown(dialog, dialog.web.token_file)

    assert not shown(dialog, dialog.web.prefixes["qido"])
    dialog.web.advanced.click()
    assert all(shown(dialog, edit) for edit in dialog.web.prefixes.values()) and shown(dialog, dialog.web.page_size)
    dialog.kind.setCurrentIndex(dialog.kind.findData(ProfileKind.DIMSE))
    assert all(shown(dialog, w) for w in dimse) and not shown(dialog, dialog.web.prefixes["qido"])
    dialog.reject()


def test_dicomweb_fields_are_checked_as_typed(window, tmp_path):
    dialog = window.add_profile()
    fill_web(dialog, name="Cloud", url="")
    assert not ok(dialog).isEnabled() and "DICOMweb URL, e.g. https://" in dialog.problem.text()
    for url, words in (("ftp://pacs.example.org/dicom-web", "must start with https://"),
                       ("https://bob:pw@pacs.example.org/dicom-web", "holds a user or password"),
                       ("https://pacs.example.org/dicom-web?x=1", "no ?query"),
                       ("https:///dicom-web", "names no host")):
        dialog.web.url.setText(url)
        assert not ok(dialog).isEnabled(), url
        assert dialog.problem.text().startswith("The URL: ") and words in dialog.problem.text(), dialog.problem.text()
        assert "pw" not in dialog.problem.text() or "password" in dialog.problem.text()
    dialog.web.url.setText("https://pacs.example.org/dicom-web/")
    assert ok(dialog).isEnabled() and dialog.problem.text() == ""

    dialog.web.auth.setCurrentIndex(dialog.web.auth.findData(WebAuth.BASIC))
    assert not ok(dialog).isEnabled() and dialog.problem.text() == "HTTP basic authentication needs a user name."
    dialog.web.user.setText("al:ice")
    assert "cannot hold a colon" in dialog.problem.text()
    dialog.web.user.setText("alice")
    assert dialog.problem.text() == "Give the password, or a file that holds it."
    dialog.web.token_file.edit.setText(str(tmp_path / "missing-token"))
    assert dialog.problem.text().startswith("The token file: ") and "does not exist" in dialog.problem.text()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    dialog.web.token_file.edit.setText(str(token))
    assert ok(dialog).isEnabled()
    dialog.web.token_file.edit.setText("")
    dialog.web.secret.setText(PASSWORD)
    assert ok(dialog).isEnabled() and PASSWORD not in dialog.problem.text()

    dialog.web.advanced.setChecked(True)
    dialog.web.prefixes["wado"].setText("../admin")
    assert dialog.problem.text() == "The WADO-RS path: may not hold . or .. segments."
    dialog.web.prefixes["wado"].setText("/wado-rs/")
    assert ok(dialog).isEnabled()

    dialog.tls.setChecked(True)
    dialog.tls_ca.edit.setText(str(tmp_path / "missing-ca.pem"))
    assert "does not exist" in dialog.problem.text()
    dialog.web.url.setText("http://pacs.example.org/dicom-web")  # TLS settings do not apply to http://
    assert not dialog.tls.isEnabled() and ok(dialog).isEnabled()
    assert dialog.web.secret_note.text().startswith("http:// sends the password and the images readable")
    profile = dialog.profile()
    assert profile.tls is None and profile.web.wado_prefix == "wado-rs" and profile.web.secret == PASSWORD
    assert profile.is_web and profile.web.username == "alice" and profile.port == 80
    dialog.reject()


def test_the_password_goes_to_the_secret_store_and_an_edit_a_rename_and_a_copy_keep_it(window, store):
    dialog = window.add_profile()
    fill_web(dialog, name="Cloud PACS", url="https://pacs.example.org/dicom-web", auth=WebAuth.BASIC,
             user="alice", secret=PASSWORD)
    note = dialog.web.secret_note.text()
    assert store.secrets.where in note and "never in profiles.toml" in note  # where it is kept, in words
    ok(dialog).click()
    (saved,) = store.load()
    assert saved.is_web and saved.web.username == "alice" and saved.web.secret is None
    assert PASSWORD not in store.path.read_text()
    assert store.secrets.get("Cloud PACS") == PASSWORD

    item = window.profiles.list.item(0)
    assert item.text() == "Cloud PACS\nhttps://pacs.example.org/dicom-web\nHTTPS · WADO-RS"
    assert "HTTP basic authentication as alice" in item.toolTip()
    assert "QIDO-RS" in window.profiles.echo_button.toolTip() and "HTTP" in window.profiles.test_button.toolTip()

    dialog = window.edit_profile(saved)  # the field stays empty: the saved password is kept
    assert dialog.web.secret.text() == "" and "saved" in dialog.web.secret.placeholderText()
    assert ok(dialog).isEnabled()
    dialog.web.auth.setCurrentIndex(dialog.web.auth.findData(WebAuth.BEARER))  # a password is no token
    assert dialog.problem.text() == "Give the token, or a file that holds it."
    dialog.web.auth.setCurrentIndex(dialog.web.auth.findData(WebAuth.BASIC))
    dialog.name.setText("Cloud PACS (renamed)")
    ok(dialog).click()
    assert [p.name for p in store.load()] == ["Cloud PACS (renamed)"]
    assert store.secrets.get("Cloud PACS (renamed)") == PASSWORD and store.secrets.get("Cloud PACS") is None

    dialog = window.duplicate_profile(store.load()[0])
    assert ok(dialog).isEnabled() and dialog.web.secret.text() == ""
    ok(dialog).click()
    assert {p.name: store.secrets.get(p.name) for p in store.load()} == {
        "Cloud PACS (renamed)": PASSWORD, "Cloud PACS (renamed) (copy)": PASSWORD}

    dialog = window.edit_profile(store.load()[1])
    dialog.web.secret.setText("a new one")
    ok(dialog).click()
    assert store.secrets.get("Cloud PACS (renamed) (copy)") == "a new one"
    assert store.secrets.get("Cloud PACS (renamed)") == PASSWORD


def test_a_dimse_profile_edited_keeps_its_fields(window, store):
    dialog = window.add_profile()
    dialog.name.setText("Plain PACS")
    dialog.host.setText("127.0.0.1")
    dialog.called_ae.setText("PACS")
    ok(dialog).click()
    (saved,) = store.load()
    dialog = window.edit_profile(saved)
    assert dialog.kind.currentData() == ProfileKind.DIMSE and not dialog.is_web()
    assert dialog.profile() == saved
    dialog.reject()
