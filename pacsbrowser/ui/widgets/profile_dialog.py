"""Add or edit a server profile, DIMSE or DICOMweb; every field checked as it is typed.

The protocol chooses the rows: host, port, AE titles, retrieve method, listener and character sets
for a DICOM network (DIMSE) profile; URL, authentication and service paths for a DICOMweb one
(widgets/web_fields.py adds those rows to the same form, so every label lines up)."""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, QTimer
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core import validation
from ...core.records import (
    ProfileKind,
    QueryModel,
    RetrieveMethod,
    RetryPolicy,
    ServerProfile,
    Timeouts,
    TLSConfiguration,
    validate_ae_title,
)
from .file_field import FileField
from .web_fields import WebFields

__all__ = ["AE_INPUT", "CHARSETS", "FileField", "ProfileDialog", "ok_cancel", "problem_label"]

CHARSETS = ["ISO_IR 192", "ISO_IR 100", "ISO_IR 101", "ISO_IR 144", "ISO_IR 126", "ISO 2022 IR 87",
            "ISO 2022 IR 149", "GB18030", "GBK", "ISO_IR 6"]
# What an AE title field lets one type (core.validation.ae_title has the final word on save).
AE_INPUT = QRegularExpression(r"^[\x20-\x5b\x5d-\x7e]{0,16}$")
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


class ProfileDialog(QDialog):
    """`profile()` is the ServerProfile the form describes, or None while something is invalid.

    `secrets_where` says in words where a typed password or token is kept (the store's
    `secrets.where`), `secrets_fallback` that it is a file rather than a desktop keyring;
    `secret_saved` that the profile being edited has one saved (the field may stay empty)."""

    def __init__(self, profile: ServerProfile | None = None, taken_names: set[str] | None = None, parent=None, *,
                 secrets_where: str = "", secrets_fallback: bool = False, secret_saved: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Server profile")
        self.setMinimumWidth(560)
        self.taken_names = taken_names or set()
        self.name = QLineEdit()
        self.kind = QComboBox()
        self.kind.setObjectName("profileKind")
        self.kind.addItem("DICOM network (DIMSE: C-FIND, C-GET, C-MOVE)", ProfileKind.DIMSE)
        self.kind.addItem("DICOMweb over HTTP(S) (QIDO-RS, WADO-RS, STOW-RS)", ProfileKind.DICOMWEB)
        self.web = WebFields(self, secrets_where=secrets_where, fallback=secrets_fallback)
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
        self.tls_form = QFormLayout(self.tls)
        self.tls_form.addRow("Trusted CA:", self.tls_ca)
        self.tls_form.addRow("Our certificate:", self.tls_cert)
        self.tls_form.addRow("Our key:", self.tls_key)
        self.tls_form.addRow("Server name:", self.tls_server_name)
        self.tls_form.addRow("", self.tls_verify)

        self.form = form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("Protocol:", self.kind)
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
        self.web.add_rows(form)
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
        self.web.changed.connect(self._web_changed)
        self.web.rows_changed.connect(self._fit)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        if profile is not None:
            self.set_profile(profile, secret_saved=secret_saved)
        self._kind_changed()

    def _ae_edit(self) -> QLineEdit:
        edit = QLineEdit()
        edit.setMaxLength(16)
        edit.setValidator(QRegularExpressionValidator(AE_INPUT, edit))
        return edit

    # -- DIMSE or DICOMweb ----------------------------------------------------------------------------
    def is_web(self) -> bool:
        return ProfileKind(self.kind.currentData()) is ProfileKind.DICOMWEB

    def dimse_rows(self) -> list[QWidget]:
        """The fields a DICOMweb profile has no use for (hidden for it)."""
        return [self.host, self.port, self.called_ae, self.calling_ae, self.retrieve, self.move_destination,
                self.listener_port, self.query_model, self.charset, self.fallback_charset]

    def _kind_changed(self) -> None:
        web = self.is_web()
        for widget in self.dimse_rows():
            self.form.setRowVisible(widget, not web)
        self.web.show_in(web)
        self.tls_form.setRowVisible(self.tls_server_name, not web)
        self.tls.setTitle("Own CA or client certificate (HTTPS)" if web else "Use TLS")
        self.tls.setToolTip("Unchecked: the server's certificate is checked against the system's trusted CAs"
                            if web else "DICOM TLS: the connection is encrypted and the server's certificate checked")
        self._web_changed()
        self._fit()

    def _web_changed(self) -> None:
        # TLS settings apply to an https:// URL only: greyed out for http://
        self.tls.setEnabled(not self.is_web() or self.web.https())
        self.validate()

    def _fit(self) -> None:
        """Rows were shown or hidden: the dialog takes the height they need (the wrapped note under
        the password included: adjustSize alone leaves it a line short)."""
        if not self.isVisible():
            return
        layout = self.layout()
        layout.activate()
        self.adjustSize()
        if layout.hasHeightForWidth():
            self.resize(self.width(), max(self.minimumSizeHint().height(), layout.totalHeightForWidth(self.width())))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._fit()
        QTimer.singleShot(0, self._fit)  # again once the wrapped note knows its width

    # -- values -----------------------------------------------------------------------------------------
    def set_profile(self, p: ServerProfile, *, secret_saved: bool = False) -> None:
        self.name.setText(p.name)
        self.kind.setCurrentIndex(self.kind.findData(p.kind))
        if p.web is not None:
            self.web.set_endpoint(p.web, saved_secret=secret_saved)
        else:
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

    def _uses_tls(self) -> bool:
        return self.tls.isChecked() and (not self.is_web() or self.web.https())

    def problems(self) -> list[tuple[QWidget, str]]:
        found: list[tuple[QWidget, str]] = []
        name = self.name.text().strip()
        if not name:
            found.append((self.name, "Give the profile a name."))
        elif name in self.taken_names:
            found.append((self.name, f"A profile named “{name}” exists already."))
        if self.is_web():
            found += self.web.problems()
        else:
            found += self._dimse_problems()
        if self._uses_tls():
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
        if not found:
            try:  # what only the whole record checks (the fields' own checks passed)
                self._build()
            except ValueError as exc:
                text = str(exc)
                found.append((self.web.url if self.is_web() else self.host, text[:1].upper() + text[1:] + "."))
        return found

    def _dimse_problems(self) -> list[tuple[QWidget, str]]:
        found: list[tuple[QWidget, str]] = []
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
        return found

    def validate(self) -> bool:
        problems = self.problems()
        bad = {id(widget) for widget, _ in problems}
        for widget in (self.name, self.host, self.called_ae, self.calling_ae, self.move_destination,
                       self.tls_ca.edit, self.tls_cert.edit, self.tls_key.edit, *self.web.checked_widgets()):
            widget.setStyleSheet(_INVALID_STYLE if id(widget) in bad else "")
        self.problem.setText(problems[0][1] if problems else "")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problems)
        return not problems

    def profile(self) -> ServerProfile | None:
        if self.problems():
            return None
        return self._build()

    def _build(self) -> ServerProfile:
        tls = None
        if self._uses_tls():
            tls = TLSConfiguration(
                certificate=self.tls_cert.path(), key=self.tls_key.path(), ca_certificate=self.tls_ca.path(),
                verify_peer=self.tls_verify.isChecked(),
                server_name=None if self.is_web() else self.tls_server_name.text().strip() or None,
            )
        retry = RetryPolicy(max_retries=self.retries.value())
        timeouts = Timeouts.uniform(self.timeout.value())
        if self.is_web():
            return ServerProfile.dicomweb(self.name.text().strip(), self.web.endpoint(), tls=tls, retry=retry,
                                          timeouts=timeouts)
        return ServerProfile(
            name=self.name.text().strip(),
            host=self.host.text().strip(),
            port=self.port.value(),
            called_ae=self.called_ae.text(),
            calling_ae=self.calling_ae.text(),
            tls=tls,
            retry=retry,
            timeouts=timeouts,
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
