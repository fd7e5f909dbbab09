"""The first-start offer: no server profile yet, so try the app with demo data in one click."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton


class DemoOffer(QFrame):
    accepted = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("demoOffer")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel("No PACS configured yet. Try pacsbrowser with generated demo studies, served "
                            "on this computer (nothing is downloaded, no patient data).")
        self.label.setWordWrap(True)
        self.button = QPushButton("Try with demo data")
        self.button.setDefault(True)
        self.button.clicked.connect(self.accepted.emit)
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)

    def set_busy(self, busy: bool) -> None:
        self.button.setEnabled(not busy)
        self.button.setText("Preparing the demo…" if busy else "Try with demo data")
