"""Our listener's settings: AE title, port, who may call, TLS, start with the app."""

from __future__ import annotations

from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
)

from ...core.config import ListenerSettings
from ...core.records import TLSConfiguration
from .file_field import FileField
from .profile_dialog import AE_INPUT, ok_cancel, problem_label


class ListenerSettingsDialog(QDialog):
    """`settings()` is what the form describes (None while something is invalid, said in `problem`)."""

    def __init__(self, settings: ListenerSettings, address_hint: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Listener settings")
        self.setObjectName("listenerSettings")
        self.ae_title = QLineEdit(settings.ae_title)
        self.ae_title.setValidator(QRegularExpressionValidator(AE_INPUT, self))
        self.ae_title.setToolTip("Our AE title: the name a PACS sends images to (C-MOVE destination)")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(settings.port)
        self.port.setToolTip("11112 is DICOM's usual port; ports below 1024 need administrator rights")
        self.host = QLineEdit(settings.host)
        self.host.setPlaceholderText("every network interface")
        self.allowed = QLineEdit(", ".join(settings.allowed_calling_aes))
        self.allowed.setPlaceholderText("anyone (or e.g. CT1, ORTHANC)")
        self.allowed.setToolTip("Calling AE titles allowed to send to us; others are refused")
        self.start_with_app = QCheckBox("Start the listener when PACS Browser starts")
        self.start_with_app.setChecked(settings.start_with_app)
        tls = settings.tls
        self.tls_box = QGroupBox("DICOM TLS")
        self.tls_box.setCheckable(True)
        self.tls_box.setChecked(tls is not None)
        self.certificate = FileField("Our server certificate")
        self.key = FileField("Its private key")
        self.ca = FileField("CA certificate of the callers")
        if tls is not None:
            self.certificate.set_path(tls.certificate)
            self.key.set_path(tls.key)
            self.ca.set_path(tls.ca_certificate)
        tls_form = QFormLayout(self.tls_box)
        tls_form.addRow("Certificate:", self.certificate)
        tls_form.addRow("Private key:", self.key)
        tls_form.addRow("Callers' CA:", self.ca)
        self.ca.setToolTip("When given, callers must show a client certificate signed by it")

        form = QFormLayout()
        form.addRow("AE title:", self.ae_title)
        form.addRow("Port:", self.port)
        form.addRow("Listen on:", self.host)
        form.addRow("Allowed callers:", self.allowed)
        hint = QLabel(address_hint)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(mid);")
        self.problem = problem_label()
        self.buttons = ok_cancel(self)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tls_box)
        layout.addWidget(self.start_with_app)
        if address_hint:
            layout.addWidget(hint)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        for edit in (self.ae_title, self.host, self.allowed):
            edit.textChanged.connect(self._check)
        for field in (self.certificate, self.key, self.ca):
            field.changed.connect(self._check)
        self.port.valueChanged.connect(self._check)
        self.tls_box.toggled.connect(self._check)
        self._check()

    def settings(self) -> ListenerSettings | None:
        try:
            return self._settings()
        except ValueError:
            return None

    def _settings(self) -> ListenerSettings:
        tls = None
        if self.tls_box.isChecked():
            if self.certificate.path() is None or self.key.path() is None:
                raise ValueError("TLS needs our certificate and its private key")
            tls = TLSConfiguration(certificate=self.certificate.path(), key=self.key.path(),
                                   ca_certificate=self.ca.path(), verify_peer=self.ca.path() is not None)
        allowed = tuple(a.strip() for a in self.allowed.text().replace(";", ",").split(",") if a.strip())
        return ListenerSettings(ae_title=self.ae_title.text(), port=self.port.value(), host=self.host.text(),
                                allowed_calling_aes=allowed, tls=tls, start_with_app=self.start_with_app.isChecked())

    def _check(self) -> None:
        try:
            self._settings()
        except ValueError as exc:
            self.problem.setText(str(exc)[:1].upper() + str(exc)[1:])
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
        else:
            self.problem.clear()
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
