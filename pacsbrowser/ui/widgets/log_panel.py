"""What happened on the wire, in words, newest last."""

from __future__ import annotations

import time

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QPlainTextEdit


class LogPanel(QPlainTextEdit):
    MAX_LINES = 5000

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(self.MAX_LINES)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self.setPlaceholderText("Associations, requests and their results appear here.")

    def add(self, level: str, message: str, detail: str = "") -> None:
        stamp = time.strftime("%H:%M:%S")
        line = f"{stamp}  {level:<5} {message}"
        for detail_line in detail.splitlines():
            line += f"\n{'':16}{detail_line}"
        self.appendPlainText(line)
