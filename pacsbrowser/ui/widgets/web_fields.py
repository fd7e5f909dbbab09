"""The DICOMweb part of the profile dialog: URL, authentication, the password or token (masked, kept
in the desktop keyring), a token file, and the advanced service paths.

`WebFields` owns the widgets and their checks; it adds its rows to the dialog's own form so that
every label lines up with the rest of the dialog, and shows only the rows that apply (the user row
for HTTP basic, the secret rows for basic and bearer, the paths when "Advanced" is open).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from ...core import validation
from ...core.records import DICOMwebEndpoint, WebAuth
from .file_field import FileField

URL_EXAMPLE = "https://pacs.example.org/dicom-web"
_NOTE_STYLE = "color: palette(placeholder-text); font-size: small;"
_FALLBACK_STYLE = "color: #9a6700; font-size: small;"


class _Note(QLabel):
    """A wrapped note exactly as tall as its lines at the width it is given (a form layout otherwise
    reserves the height of its narrowest width, a gap under a one-line note)."""

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_height()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self._fit_height()

    def _fit_height(self) -> None:
        height = self.heightForWidth(self.width())
        if height > 0 and height != self.height():
            self.setFixedHeight(height)


class WebFields(QObject):
    """The DICOMweb fields. `secrets_where` says in words where a typed password or token will be
    kept (ProfileStore.secrets.where); `fallback` when that is a file, not a desktop keyring."""

    changed = Signal()  # a value changed: check again
    rows_changed = Signal()  # rows were shown or hidden: the dialog fits itself again

    def __init__(self, parent: QWidget, *, secrets_where: str = "", fallback: bool = False) -> None:
        super().__init__(parent)
        self.url = QLineEdit()
        self.url.setPlaceholderText(URL_EXAMPLE)
        self.url.setToolTip("The DICOMweb root of the server (QIDO-RS, WADO-RS and STOW-RS below it)")
        self.auth = QComboBox()
        self.auth.addItem("None", WebAuth.NONE)
        self.auth.addItem("HTTP basic: user name and password", WebAuth.BASIC)
        self.auth.addItem("Bearer token", WebAuth.BEARER)
        self.user = QLineEdit()
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setObjectName("webSecret")
        self.secret_note = _Note("")
        self.secret_note.setObjectName("secretNote")
        self.secret_note.setWordWrap(True)
        self.secret_note.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.token_file = FileField("File holding the password or token", placeholder="none (optional)",
                                    filters=("All files (*)",))
        self.token_file.setToolTip("A file you keep that holds the password or token on one line; "
                                   "it is read at each connection and its content is never copied")
        self.advanced = QToolButton()
        self.advanced.setObjectName("webAdvanced")
        self.advanced.setText("Separate QIDO, WADO and STOW paths, page size")
        self.advanced.setCheckable(True)
        self.advanced.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced.setAutoRaise(True)
        self.prefixes = {service: QLineEdit() for service in ("qido", "wado", "stow")}
        for service, edit in self.prefixes.items():
            edit.setPlaceholderText("the URL above")
            edit.setToolTip(f"A path added to the URL for {service.upper()}-RS, for servers that split the "
                            "services (e.g. “qido-rs”); empty: the URL itself")
        self.page_size = QSpinBox()
        self.page_size.setRange(1, 100_000)
        self.page_size.setValue(500)
        self.page_size.setSuffix(" results per request")
        self.fuzzy = QCheckBox("Fuzzy name matching, where the server offers it")
        self._secrets_where = secrets_where
        self._fallback = fallback
        self._saved_for: WebAuth | None = None  # the auth a saved password or token belongs to
        self._kept: str | None = None  # a secret in memory handed in with the profile (a duplicate)
        self.form: QFormLayout | None = None
        self._visible = False

        for edit in (self.url, self.user, self.secret, *self.prefixes.values()):
            edit.textChanged.connect(self.changed)
        self.url.textChanged.connect(self._update_note)
        self.token_file.changed.connect(self.changed)
        self.auth.currentIndexChanged.connect(self._auth_changed)
        self.advanced.toggled.connect(self._advanced_toggled)
        self._update_note()

    # -- layout -------------------------------------------------------------------------------------------
    def add_rows(self, form: QFormLayout) -> None:
        """Add the rows to the dialog's form (hidden until `show_in(True)`)."""
        self.form = form
        form.addRow("URL:", self.url)
        form.addRow("Authentication:", self.auth)
        form.addRow("User name:", self.user)
        form.addRow("Password:", self.secret)
        form.addRow("", self.secret_note)
        form.addRow("Token file:", self.token_file)
        form.addRow("Advanced:", self.advanced)
        for service, edit in self.prefixes.items():
            form.addRow(f"{service.upper()}-RS path:", edit)
        form.addRow("QIDO-RS paging:", self.page_size)
        form.addRow("", self.fuzzy)

    def rows(self) -> list[QWidget]:
        return [self.url, self.auth, self.user, self.secret, self.secret_note, self.token_file, self.advanced,
                *self.prefixes.values(), self.page_size, self.fuzzy]

    def show_in(self, visible: bool | None = None) -> None:
        """Show the rows that apply now (none when the profile is not DICOMweb; None: as before)."""
        if visible is not None:
            self._visible = visible
        visible = self._visible
        if self.form is None:
            return
        auth = self.auth_kind()
        needs_secret = auth is not WebAuth.NONE
        shown = {self.url: True, self.auth: True, self.user: auth is WebAuth.BASIC, self.secret: needs_secret,
                 self.secret_note: needs_secret, self.token_file: needs_secret, self.advanced: True}
        for widget in (*self.prefixes.values(), self.page_size, self.fuzzy):
            shown[widget] = self.advanced.isChecked()
        for widget in self.rows():
            self.form.setRowVisible(widget, visible and shown[widget])

    def _auth_changed(self) -> None:
        label = self.form.labelForField(self.secret) if self.form is not None else None
        if isinstance(label, QLabel):
            label.setText("Token:" if self.auth_kind() is WebAuth.BEARER else "Password:")
        self._update_note()
        self.show_in()
        self.rows_changed.emit()
        self.changed.emit()

    def _advanced_toggled(self, on: bool) -> None:
        self.advanced.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.show_in()
        self.rows_changed.emit()
        self.changed.emit()

    def auth_kind(self) -> WebAuth:
        return WebAuth(self.auth.currentData())

    # -- the secret -----------------------------------------------------------------------------------------
    def has_saved_secret(self) -> bool:
        """A password or token is saved (or handed in) for the authentication now chosen."""
        return self._saved_for is not None and self._saved_for is self.auth_kind()

    def _update_note(self) -> None:
        kind = "token" if self.auth_kind() is WebAuth.BEARER else "password"
        where = self._secrets_where or "the desktop keyring"
        if self.has_saved_secret():
            self.secret.setPlaceholderText(f"saved: leave empty to keep it, or type a new {kind}")
        else:
            self.secret.setPlaceholderText(f"the {kind} (or a token file below)")
        text = f"Kept in {where}, never in profiles.toml."
        plain = self.url.text().strip().lower().startswith("http://")
        if plain:  # said, not refused: a server on this computer or a trusted network may be plain HTTP
            text = f"http:// sends the {kind} and the images readable on the network: use https:// if the " \
                   f"server offers it. {text}"
        self.secret_note.setText(text)
        self.secret_note.setToolTip(f"A {kind} typed here is saved in {where} when you press OK; "
                                    "profiles.toml holds only the user name and the token file's path.")
        self.secret_note.setStyleSheet(_FALLBACK_STYLE if self._fallback or plain else _NOTE_STYLE)

    # -- values ------------------------------------------------------------------------------------------------
    def set_endpoint(self, web: DICOMwebEndpoint, *, saved_secret: bool = False) -> None:
        self.url.setText(web.base_url)
        self.auth.setCurrentIndex(self.auth.findData(web.auth))
        self.user.setText(web.username)
        self.token_file.set_path(web.token_file)
        for service, edit in self.prefixes.items():
            edit.setText(getattr(web, f"{service}_prefix"))
        self.page_size.setValue(web.page_size)
        self.fuzzy.setChecked(web.fuzzy_matching)
        self._kept = web.secret
        self._saved_for = web.auth if (saved_secret or web.secret) and web.auth is not WebAuth.NONE else None
        self.advanced.setChecked(any(edit.text() for edit in self.prefixes.values())
                                 or web.page_size != 500 or web.fuzzy_matching)
        self._update_note()

    def https(self) -> bool:
        return self.url.text().strip().lower().startswith("https://")

    def problems(self) -> list[tuple[QWidget, str]]:
        found: list[tuple[QWidget, str]] = []
        text = self.url.text().strip()
        if not text:
            found.append((self.url, f"Give the server's DICOMweb URL, e.g. {URL_EXAMPLE}."))
        else:
            try:
                validation.web_url(text, "The URL")
            except validation.InvalidInput as exc:
                found.append((self.url, f"{exc}."))
        auth = self.auth_kind()
        if auth is WebAuth.BASIC:
            try:
                if not validation.web_user(self.user.text(), "The user name"):
                    found.append((self.user, "HTTP basic authentication needs a user name."))
            except validation.InvalidInput as exc:
                found.append((self.user, f"{exc}."))
        if auth is not WebAuth.NONE:
            kind = "token" if auth is WebAuth.BEARER else "password"
            typed = self.secret.text()
            if typed:
                try:
                    validation.web_secret(typed, f"The {kind}")
                except validation.InvalidInput as exc:
                    found.append((self.secret, f"{exc}."))
            path = self.token_file.path()
            if path is not None:
                try:
                    validation.secret_file(path, "The token file")
                except validation.InvalidInput as exc:
                    found.append((self.token_file.edit, f"{exc}."))
            if not typed and path is None and not self.has_saved_secret():
                found.append((self.secret, f"Give the {kind}, or a file that holds it."))
        for service, edit in self.prefixes.items():
            try:
                validation.url_prefix(edit.text(), f"The {service.upper()}-RS path")
            except validation.InvalidInput as exc:
                found.append((edit, f"{exc}."))
        return found

    def checked_widgets(self) -> list[QWidget]:
        """The widgets `problems()` may mark."""
        return [self.url, self.user, self.secret, self.token_file.edit, *self.prefixes.values()]

    def endpoint(self) -> DICOMwebEndpoint:
        """The endpoint the fields describe (InvalidInput when one is not valid). The secret is set
        only when one was typed (or handed in with the profile): None keeps the saved one."""
        auth = self.auth_kind()
        secret = token_file = None
        if auth is not WebAuth.NONE:
            secret = self.secret.text() or (self._kept if self.has_saved_secret() else None)
            token_file = self.token_file.path()
        return DICOMwebEndpoint(
            base_url=self.url.text().strip(),
            qido_prefix=self.prefixes["qido"].text(), wado_prefix=self.prefixes["wado"].text(),
            stow_prefix=self.prefixes["stow"].text(),
            auth=auth, username=self.user.text().strip() if auth is WebAuth.BASIC else "",
            token_file=token_file, secret=secret or None,
            page_size=self.page_size.value(), fuzzy_matching=self.fuzzy.isChecked(),
        )
