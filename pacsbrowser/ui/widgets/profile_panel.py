"""The server profiles: a list, and the actions on the selected one."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ...core.records import ServerProfile
from .. import profile_words


class ProfilePanel(QWidget):
    add_requested = Signal()
    edit_requested = Signal(object)  # ServerProfile
    duplicate_requested = Signal(object)
    delete_requested = Signal(object)
    test_requested = Signal(object)
    echo_requested = Signal(object)
    current_changed = Signal(object)  # ServerProfile or None
    local_chosen = Signal()  # "This computer" became the current entry

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("profileList")
        self.list.setAlternatingRowColors(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setSpacing(2)
        self.add_button = QPushButton("Add…")
        self.edit_button = QPushButton("Edit…")
        self.duplicate_button = QPushButton("Duplicate")
        self.delete_button = QPushButton("Delete")
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("Check every step: name, TCP, TLS, association, C-ECHO, C-FIND")
        self.echo_button = QPushButton("Echo")
        self.echo_button.setToolTip("Check that the selected PACS answers (C-ECHO)")
        self.status = QLabel("")
        self.status.setObjectName("profileStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QGridLayout()
        buttons.addWidget(self.add_button, 0, 0)
        buttons.addWidget(self.edit_button, 0, 1)
        buttons.addWidget(self.duplicate_button, 0, 2)
        buttons.addWidget(self.delete_button, 1, 0)
        buttons.addWidget(self.test_button, 1, 1)
        buttons.addWidget(self.echo_button, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self._build_local(layout)
        layout.addWidget(QLabel("<b>Servers</b>"))
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

        self.add_button.clicked.connect(self.add_requested)
        for button, signal in ((self.edit_button, self.edit_requested),
                               (self.duplicate_button, self.duplicate_requested),
                               (self.delete_button, self.delete_requested),
                               (self.test_button, self.test_requested),
                               (self.echo_button, self.echo_requested)):
            button.clicked.connect(lambda _=False, s=signal: self._emit_current(s))
        self.list.itemDoubleClicked.connect(lambda *_: self._emit_current(self.edit_requested))
        self.list.currentItemChanged.connect(self._current_changed)
        self._update_buttons()

    # -- "This computer": the local archive, above the servers ----------------------------------------
    def _build_local(self, layout: QVBoxLayout) -> None:
        self.local = QListWidget()
        self.local.setObjectName("localEntry")
        self.local.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.local.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.local.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.local.setIconSize(QSize(28, 28))
        self.local.setSpacing(2)
        self.local_item = QListWidgetItem(self.style().standardIcon(QStyle.StandardPixmap.SP_ComputerIcon),
                                          "This computer")
        self.local_item.setToolTip("What this computer's archive holds: images received and retrieved")
        self.local.addItem(self.local_item)
        # selection, not the current item: focus alone makes the first item current
        self.local.itemSelectionChanged.connect(lambda: self.choose_local() if self.local_item.isSelected() else None)
        self.local.itemClicked.connect(lambda _item: self.choose_local())
        layout.addWidget(self.local)
        self.set_local_summary("")

    def set_local_summary(self, text: str) -> None:
        """The lines under "This computer" (what it holds, the listener)."""
        self.local_item.setText("This computer" + (f"\n{text}" if text else ""))
        lines = 1 + (text.count("\n") + 1 if text else 0)
        self.local.setFixedHeight(self.local.fontMetrics().lineSpacing() * lines + 16)

    def is_local(self) -> bool:
        """Is "This computer" the current entry?"""
        return self.local_item.isSelected()

    def choose_local(self) -> None:
        if self.is_local() and self.list.currentItem() is None:
            return
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1)
        self.list.clearSelection()
        self.list.blockSignals(False)
        self.local.blockSignals(True)
        self.local.setCurrentItem(self.local_item)
        self.local_item.setSelected(True)
        self.local.blockSignals(False)
        self._update_buttons()
        self.current_changed.emit(None)
        self.local_chosen.emit()

    def _leave_local(self) -> None:
        self.local.blockSignals(True)
        self.local.clearSelection()
        self.local.setCurrentRow(-1)
        self.local.blockSignals(False)

    def set_profiles(self, profiles: list[ServerProfile], select: str | None = None) -> None:
        if select is None and self.is_local():
            self._fill(profiles, None)
            return
        self._fill(profiles, select)
        if not profiles:
            self.choose_local()

    def _fill(self, profiles: list[ServerProfile], select: str | None) -> None:
        keep_local = select is None and self.is_local()
        previous = select or (self.current_profile().name if self.current_profile() else None)
        self.list.blockSignals(True)
        self.list.clear()
        row_to_select = 0
        for row, profile in enumerate(profiles):
            where = profile.web.base_url if profile.web is not None else \
                f"{profile.called_ae} @ {profile.host}:{profile.port}"
            how = f"{profile_words.transport(profile)} · {profile_words.retrieve_method(profile)}"
            item = QListWidgetItem(f"{profile.name}\n{where}\n{how}")
            item.setData(Qt.ItemDataRole.UserRole, profile)
            item.setToolTip(profile_words.description(profile))
            self.list.addItem(item)
            if profile.name == previous:
                row_to_select = row
        self.list.blockSignals(False)
        if profiles and not keep_local:
            self.list.setCurrentRow(row_to_select)
            self._current_changed()

    def current_profile(self) -> ServerProfile | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def set_status(self, text: str, ok: bool | None = None) -> None:
        colour = {True: "#1b7f3b", False: "#b3261e", None: "palette(text)"}[ok]
        self.status.setStyleSheet(f"color: {colour};")
        self.status.setText(text)

    def _current_changed(self, *_args) -> None:
        if self.list.currentItem() is not None:
            self._leave_local()
        self._update_buttons()
        self.current_changed.emit(self.current_profile())

    def _update_buttons(self) -> None:
        profile = self.current_profile()
        has = profile is not None
        self.test_button.setToolTip(profile_words.test_steps(profile))
        self.echo_button.setToolTip(f"Check that the selected server answers ({profile_words.echo_service(profile)})")
        for button in (self.edit_button, self.duplicate_button, self.delete_button, self.test_button, self.echo_button):
            button.setEnabled(has)

    def _emit_current(self, signal) -> None:
        profile = self.current_profile()
        if profile is not None:
            signal.emit(profile)
