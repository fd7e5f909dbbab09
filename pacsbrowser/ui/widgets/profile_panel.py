"""The server profiles: a list, and the actions on the selected one."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ...core.records import ServerProfile


class ProfilePanel(QWidget):
    echo_requested = Signal(object)  # ServerProfile

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("profileList")
        self.echo_button = QPushButton("Echo")
        self.echo_button.setToolTip("Check that the selected PACS answers (C-ECHO)")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        title = QLabel("<b>Servers</b>")
        buttons = QHBoxLayout()
        buttons.addWidget(self.echo_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.echo_button.clicked.connect(self._echo_clicked)
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self._update_buttons()

    def set_profiles(self, profiles: list[ServerProfile]) -> None:
        self.list.clear()
        for profile in profiles:
            scheme = "TLS" if profile.tls else "TCP"
            item = QListWidgetItem(f"{profile.name}\n  {profile.called_ae} @ {profile.host}:{profile.port} ({scheme})")
            item.setData(Qt.ItemDataRole.UserRole, profile)
            self.list.addItem(item)
        if profiles:
            self.list.setCurrentRow(0)
        self._update_buttons()

    def current_profile(self) -> ServerProfile | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def set_status(self, text: str, ok: bool | None = None) -> None:
        colour = {True: "#1b7f3b", False: "#b3261e", None: "palette(text)"}[ok]
        self.status.setStyleSheet(f"color: {colour};")
        self.status.setText(text)

    def _update_buttons(self) -> None:
        self.echo_button.setEnabled(self.current_profile() is not None)

    def _echo_clicked(self) -> None:
        profile = self.current_profile()
        if profile is not None:
            self.echo_requested.emit(profile)
