"""The connection test's steps, as they happen, each with its result in words."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout

from ...core.diagnostics import Outcome, Step

_MARK = {Outcome.OK: "✔", Outcome.FAILED: "✘", Outcome.WARNING: "!", Outcome.SKIPPED: "–", Outcome.INFO: "ℹ"}
_COLOUR = {Outcome.OK: "#1b7f3b", Outcome.FAILED: "#b3261e", Outcome.WARNING: "#9a6700", Outcome.SKIPPED: "#6b6b6b",
           Outcome.INFO: "#0b57d0"}
_FACT_NAMES = {"protocol": "Protocol", "cipher": "Cipher", "subject": "Certificate subject", "issuer": "Issued by",
               "valid_from": "Valid from", "valid_until": "Valid until", "sha256": "SHA-256 fingerprint",
               "subject_alt_names": "Names", "local_address": "Our address", "ae": "AE title", "host": "Host",
               "port": "Port", "status": "HTTP status", "server": "Server software", "url": "URL"}


class ConnectionTestDialog(QDialog):
    cancel_requested = Signal()

    def __init__(self, profile_name: str, parent=None, *, web: bool = False) -> None:
        super().__init__(parent)
        self.detail_name = "HTTP detail" if web else "DICOM detail"  # a DICOMweb profile's test speaks HTTP
        self.setWindowTitle(f"Connection test: {profile_name}")
        self.resize(760, 420)
        self.heading = QLabel(f"Testing <b>{profile_name}</b>…")
        self.steps = QTreeWidget()
        self.steps.setObjectName("testSteps")
        self.steps.setColumnCount(3)
        self.steps.setHeaderLabels(["", "Step", "Result"])
        self.steps.setRootIsDecorated(True)
        self.steps.setWordWrap(True)
        header = self.steps.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.problem = QLabel("")  # the failed step's words in full (the tree cuts long ones)
        self.problem.setObjectName("testProblem")
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setStyleSheet(f"color: {_COLOUR[Outcome.FAILED]};")
        self.problem.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self._cancel_or_close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.steps, 1)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self._running = True

    def add_step(self, step: Step) -> None:
        item = QTreeWidgetItem([_MARK[step.outcome], step.name, step.summary])
        colour = QBrush(QColor(_COLOUR[step.outcome]))
        item.setForeground(0, colour)
        item.setTextAlignment(0, Qt.AlignmentFlag.AlignCenter)
        item.setToolTip(2, step.summary)
        for key, value in step.facts.items():
            if value:
                QTreeWidgetItem(item, ["", _FACT_NAMES.get(key, key), value])
        if step.detail:
            QTreeWidgetItem(item, ["", self.detail_name, step.detail])
        self.steps.addTopLevelItem(item)
        if step.outcome is Outcome.FAILED or step.name == "TLS handshake":
            item.setExpanded(True)
        if step.outcome is Outcome.FAILED and self.problem.isHidden():
            self.problem.setText(f"{step.name}: {step.summary}")
            self.problem.show()

    def finish(self, passed: bool) -> None:
        self._running = False
        self.heading.setText("Every step passed." if passed else "The test found a problem: see the red step.")
        self.heading.setStyleSheet(f"color: {_COLOUR[Outcome.OK if passed else Outcome.FAILED]};")
        self.buttons.setStandardButtons(QDialogButtonBox.StandardButton.Close)

    def results(self) -> list[tuple[str, str, str]]:
        return [(self.steps.topLevelItem(i).text(0), self.steps.topLevelItem(i).text(1),
                 self.steps.topLevelItem(i).text(2)) for i in range(self.steps.topLevelItemCount())]

    def _cancel_or_close(self) -> None:
        if self._running:
            self.cancel_requested.emit()
        self.reject()
