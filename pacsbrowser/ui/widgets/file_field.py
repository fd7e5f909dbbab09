"""A path field with a Browse… button (certificates, keys, token files)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget


class FileField(QWidget):
    """A path with a Browse… button."""

    changed = Signal()

    def __init__(self, caption: str, parent=None, *, placeholder: str = "PEM file",
                 filters: tuple[str, ...] = ("PEM files (*.pem *.crt *.cer *.key)", "All files (*)")) -> None:
        super().__init__(parent)
        self.caption = caption
        self.filters = list(filters)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)
        self.edit.textChanged.connect(self.changed)

    def _browse(self) -> None:
        dialog = QFileDialog(self, self.caption, str(Path(self.edit.text()).parent) if self.edit.text() else "")
        dialog.setNameFilters(self.filters)
        dialog.fileSelected.connect(self.edit.setText)
        dialog.open()

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text) if text else None

    def set_path(self, path: Path | None) -> None:
        self.edit.setText(str(path) if path else "")
