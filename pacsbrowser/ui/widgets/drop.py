"""Dropping files and folders: where a drop lands (an event filter for any widget), and the short
confirmation that follows the reading of what was dropped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from ...core.filescan import FileScan
from ...core.records import ServerProfile
from .. import profile_words


def dropped_paths(event: Any) -> list[Path]:
    """The local files and folders a drag carries (nothing for text or web links)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class DropFilter(QObject):
    """Accepts drops of local files and folders on the widgets it is installed on. `target_at(widget,
    position)` names the target under the cursor (None: the window's current one)."""

    dropped = Signal(object, list)  # target, list[Path]
    hovering = Signal(object)  # target under the cursor while dragging

    def __init__(self, target_at: Callable[[QWidget, QPoint], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.target_at = target_at

    def watch(self, widget: QWidget) -> None:
        widget.setAcceptDrops(True)
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if not dropped_paths(event):
                return False
            event.acceptProposedAction()
            self.hovering.emit(self.target_at(watched, event.position().toPoint()))
            return True
        if kind == QEvent.Type.Drop:
            paths = dropped_paths(event)
            if not paths:
                return False
            event.acceptProposedAction()
            self.dropped.emit(self.target_at(watched, event.position().toPoint()), paths)
            return True
        return False


def size_text(n: int) -> str:
    """Bytes in words: "12.3 MB"."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def count_text(n: int, one: str, many: str | None = None) -> str:
    """"1 study", "2 studies"."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def target_name(target: Any) -> str:
    if isinstance(target, ServerProfile):
        return f"{target.name} ({profile_words.address(target)})"
    return "this computer's archive"


def confirmation(target: Any, scan: FileScan, parent: QWidget) -> QMessageBox:
    """The question after a drop: what was found and where it goes. Yes-role button: go ahead."""
    sending = isinstance(target, ServerProfile)
    left_out = []
    if scan.not_dicom:
        left_out.append(f"{len(scan.not_dicom)} not DICOM")
    if scan.damaged:
        left_out.append(f"{len(scan.damaged)} damaged or unreadable")
    if scan.files:
        verb = "Send" if sending else "Import"
        where = f"to {target_name(target)}" if sending else "into this computer's archive"
        text = f"{verb} {count_text(len(scan.files), 'DICOM file')} ({size_text(scan.bytes)}) {where}?"
    else:
        text = "No DICOM files were found in what was dropped."
    info = f"{count_text(len(scan.unusable), 'file')} will be left out: {', '.join(left_out)}." if left_out else ""
    box = QMessageBox(QMessageBox.Icon.Question if scan.files else QMessageBox.Icon.Information,
                      "Send DICOM files" if sending else "Import DICOM files", text, parent=parent)
    box.setObjectName("dropConfirmation")
    if info:
        box.setInformativeText(info)
        box.setDetailedText("\n".join(f"{u.path}: {u.reason}" for u in scan.unusable))
    box.go_button = None  # the button that goes ahead (None: nothing to send)
    if scan.files:
        box.go_button = box.addButton("Send" if sending else "Import", QMessageBox.ButtonRole.YesRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(box.go_button)
    else:
        box.addButton(QMessageBox.StandardButton.Close)
    return box
