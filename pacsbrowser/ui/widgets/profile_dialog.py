"""Add or edit a server profile; every field checked as it is typed."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRegularExpression, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core import validation
from ...core.records import (
    QueryModel,
    RetrieveMethod,
    RetryPolicy,
    ServerProfile,
    Timeouts,
    TLSConfiguration,
    validate_ae_title,
)

CHARSETS = ["ISO_IR 192", "ISO_IR 100", "ISO_IR 101", "ISO_IR 144", "ISO_IR 126", "ISO 2022 IR 87",
            "ISO 2022 IR 149", "GB18030", "GBK", "ISO_IR 6"]
_AE_INPUT = QRegularExpression(r"^[\x20-\x5b\x5d-\x7e]{0,16}$")
_INVALID_STYLE = "border: 1px solid #b3261e;"


def problem_label() -> QLabel:
    """Where a dialog says, in red, what is not valid yet."""
    label = QLabel("")
    label.setObjectName("problem")
    label.setStyleSheet("color: #b3261e;")
    label.setWordWrap(True)
    return label


def ok_cancel(dialog: QDialog) -> QDialogButtonBox:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


class FileField(QWidget):
    """A path with a Browse… button."""

    changed = Signal()

    def __init__(self, caption: str, parent=None) -> None:
        super().__init__(parent)
        self.caption = caption
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("PEM file")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)
        self.edit.textChanged.connect(self.changed)

    def _browse(self) -> None:
        dialog = QFileDialog(self, self.caption, str(Path(self.edit.text()).parent) if self.edit.text() else "")
        dialog.setNameFilters(["PEM files (*.pem *.crt *.cer *.key)", "All files (*)"])
        dialog.fileSelected.connect(self.edit.setText)
        dialog.open()

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text) if text else None

    def set_path(self, path: Path | None) -> None:
        self.edit.setText(str(path) if path else "")


class ProfileDialog(QDialog):
    """`profile()` is the ServerProfile the form describes, or None while something is invalid."""

    def __init__(self, profile: ServerProfile | None = None, taken_names: set[str] | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Server profile")
        self.taken_names = taken_names or set()
        self.name = QLineEdit()
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.called_ae = self._ae_edit()
        self.calling_ae = self._ae_edit()
        self.calling_ae.setText("PACSBROWSER")
        self.retrieve = QComboBox()
        self.retrieve.addItem("C-GET (images come back on the same connection)", RetrieveMethod.GET)
        self.retrieve.addItem("C-MOVE (the PACS sends images to our listener)", RetrieveMethod.MOVE)
        self.move_destination = self._ae_edit()
        self.move_destination.setPlaceholderText("our calling AE title")
        self.listener_port = QSpinBox()
        self.listener_port.setRange(1, 65535)
        self.listener_port.setValue(11112)
        self.query_model = QComboBox()
        self.query_model.addItem("Study Root", QueryModel.STUDY_ROOT)
        self.query_model.addItem("Patient Root", QueryModel.PATIENT_ROOT)
        self.charset = QComboBox()
        self.charset.setEditable(True)
        self.charset.addItems(CHARSETS)
        self.fallback_charset = QComboBox()
        self.fallback_charset.setEditable(True)
        self.fallback_charset.addItems(CHARSETS[1:] + CHARSETS[:1])
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 600)
        self.timeout.setValue(30)
        self.timeout.setSuffix(" s")
        self.retries = QSpinBox()
        self.retries.setRange(0, 10)
        self.retries.setValue(2)

        self.tls = QGroupBox("Use TLS")
        self.tls.setCheckable(True)
        self.tls.setChecked(False)
        self.tls_ca = FileField("CA certificate")
        self.tls_cert = FileField("Client certificate")
        self.tls_key = FileField("Client key")
        self.tls_verify = QCheckBox("Verify the server's certificate")
        self.tls_verify.setChecked(True)
        self.tls_server_name = QLineEdit()
        self.tls_server_name.setPlaceholderText("the host name above")
        tls_form = QFormLayout(self.tls)
        tls_form.addRow("Trusted CA:", self.tls_ca)
        tls_form.addRow("Our certificate:", self.tls_cert)
        tls_form.addRow("Our key:", self.tls_key)
        tls_form.addRow("Server name:", self.tls_server_name)
        tls_form.addRow("", self.tls_verify)

        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("Host:", self.host)
        form.addRow("Port:", self.port)
        form.addRow("Called AE (the PACS):", self.called_ae)
        form.addRow("Calling AE (us):", self.calling_ae)
        form.addRow("Retrieve with:", self.retrieve)
        form.addRow("Move destination AE:", self.move_destination)
        form.addRow("Listener port:", self.listener_port)
        form.addRow("Query model:", self.query_model)
        form.addRow("Query character set:", self.charset)
        form.addRow("Fallback character set:", self.fallback_charset)
        form.addRow("Timeout:", self.timeout)
        form.addRow("Retries:", self.retries)

        self.problem = problem_label()
        self.buttons = ok_cancel(self)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tls)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)

        for edit in (self.name, self.host, self.called_ae, self.calling_ae, self.move_destination, self.tls_server_name):
            edit.textChanged.connect(self.validate)
        for spin in (self.port, self.listener_port):
            spin.valueChanged.connect(self.validate)
        for field in (self.tls_ca, self.tls_cert, self.tls_key):
            field.changed.connect(self.validate)
        self.tls.toggled.connect(self.validate)
        self.tls_verify.toggled.connect(self.validate)
        self.retrieve.currentIndexChanged.connect(self.validate)
        if profile is not None:
            self.set_profile(profile)
        self.validate()

    def _ae_edit(self) -> QLineEdit:
        edit = QLineEdit()
        edit.setMaxLength(16)
        edit.setValidator(QRegularExpressionValidator(_AE_INPUT, edit))
        return edit

    def set_profile(self, p: ServerProfile) -> None:
        self.name.setText(p.name)
        self.host.setText(p.host)
        self.port.setValue(p.port)
        self.called_ae.setText(p.called_ae)
        self.calling_ae.setText(p.calling_ae)
        self.retrieve.setCurrentIndex(self.retrieve.findData(p.retrieve_method))
        self.move_destination.setText(p.move_destination or "")
        self.listener_port.setValue(p.listener_port)
        self.query_model.setCurrentIndex(self.query_model.findData(p.query_model))
        self.charset.setCurrentText(p.query_charset)
        self.fallback_charset.setCurrentText(p.fallback_charset)
        self.timeout.setValue(p.timeouts.acse)
        self.retries.setValue(p.retry.max_retries)
        self.tls.setChecked(p.tls is not None)
        if p.tls is not None:
            self.tls_ca.set_path(p.tls.ca_certificate)
            self.tls_cert.set_path(p.tls.certificate)
            self.tls_key.set_path(p.tls.key)
            self.tls_verify.setChecked(p.tls.verify_peer)
            self.tls_server_name.setText(p.tls.server_name or "")

    def problems(self) -> list[tuple[QWidget, str]]:
        found: list[tuple[QWidget, str]] = []
        name = self.name.text().strip()
        if not name:
            found.append((self.name, "Give the profile a name."))
        elif name in self.taken_names:
            found.append((self.name, f"A profile named “{name}” exists already."))
        if not self.host.text().strip():
            found.append((self.host, "Give the PACS host name or address."))
        else:
            try:
                validation.host(self.host.text(), "The host")
            except validation.InvalidInput as exc:
                found.append((self.host, f"{exc}."))
        for edit, what, required in ((self.called_ae, "The called AE title", True),
                                     (self.calling_ae, "The calling AE title", True),
                                     (self.move_destination, "The move destination AE title", False)):
            text = edit.text()
            if not text.strip():
                if required:
                    found.append((edit, f"{what} is needed (1 to 16 characters)."))
                continue
            try:
                validate_ae_title(text, what)
            except ValueError as exc:
                found.append((edit, f"{exc}."))
        if self.tls.isChecked():
            for field, what in ((self.tls_ca, "CA certificate"), (self.tls_cert, "client certificate"),
                                (self.tls_key, "client key")):
                path = field.path()
                if path is not None:
                    try:
                        validation.readable_file(path, f"The {what} file")
                    except validation.InvalidInput as exc:
                        found.append((field.edit, f"{exc}."))
            if (self.tls_cert.path() is None) != (self.tls_key.path() is None):
                found.append((self.tls_key.edit, "A client certificate needs its key, and a key its certificate."))
        return found

    def validate(self) -> bool:
        problems = self.problems()
        bad = {id(widget) for widget, _ in problems}
        for widget in (self.name, self.host, self.called_ae, self.calling_ae, self.move_destination,
                       self.tls_ca.edit, self.tls_cert.edit, self.tls_key.edit):
            widget.setStyleSheet(_INVALID_STYLE if id(widget) in bad else "")
        self.problem.setText(problems[0][1] if problems else "")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problems)
        return not problems

    def profile(self) -> ServerProfile | None:
        if self.problems():
            return None
        tls = None
        if self.tls.isChecked():
            tls = TLSConfiguration(
                certificate=self.tls_cert.path(), key=self.tls_key.path(), ca_certificate=self.tls_ca.path(),
                verify_peer=self.tls_verify.isChecked(), server_name=self.tls_server_name.text().strip() or None,
            )
        return ServerProfile(
            name=self.name.text().strip(),
            host=self.host.text().strip(),
            port=self.port.value(),
            called_ae=self.called_ae.text(),
            calling_ae=self.calling_ae.text(),
            tls=tls,
            retry=RetryPolicy(max_retries=self.retries.value()),
            timeouts=Timeouts.uniform(self.timeout.value()),
            retrieve_method=self.retrieve.currentData(),
            move_destination=self.move_destination.text().strip() or None,
            listener_port=self.listener_port.value(),
            query_model=self.query_model.currentData(),
            query_charset=self.charset.currentText().strip() or "ISO_IR 192",
            fallback_charset=self.fallback_charset.currentText().strip() or "ISO_IR 100",
        )

    def accept(self) -> None:
        if self.validate():
            super().accept()

