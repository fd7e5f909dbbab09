"""How much of a study, series or instance the local archive holds: a count, a state, an icon."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap


class Held(str, Enum):
    NONE = "none"
    PARTIAL = "partial"
    FULL = "full"


@dataclass(frozen=True)
class Holding:
    """`held` instances on this computer of `expected` (None: the PACS did not say how many).
    `complete_known`: a retrieve of it ended complete (counts the PACS did not give are then not needed)."""

    held: int
    expected: int | None
    complete_known: bool = False

    @property
    def state(self) -> Held:
        if self.held <= 0:
            return Held.NONE
        if self.expected is not None and self.held >= self.expected:
            return Held.FULL
        if self.expected is None and self.complete_known:
            return Held.FULL
        return Held.PARTIAL

    @property
    def text(self) -> str:
        state = self.state
        if state is Held.NONE:
            tail = f" of {self.expected}" if self.expected is not None else ""
            return f"Not on this computer (0{tail} images)"
        if state is Held.FULL:
            return f"On this computer: all {self.held} images"
        if self.expected is None:
            return f"On this computer: {self.held} images (the PACS did not say how many it holds)"
        return f"Partly on this computer: {self.held} of {self.expected} images"


_ICONS: dict[Held, QIcon] = {}


def holding_icon(state: Held) -> QIcon:
    """A disc: empty (nothing here), half filled (partly here), filled green (all here)."""
    icon = _ICONS.get(state)
    if icon is None:
        icon = _ICONS[state] = _draw(state)
    return icon


def _draw(state: Held) -> QIcon:
    icon = QIcon()
    for size in (16, 32):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        margin = size * 0.15
        rect = QRectF(margin, margin, size - 2 * margin, size - 2 * margin)
        colour = {Held.NONE: QColor("#8a8a8a"), Held.PARTIAL: QColor("#c47f00"), Held.FULL: QColor("#1e7b34")}[state]
        painter.setPen(QPen(colour, max(1.0, size / 12)))
        if state is Held.FULL:
            painter.setBrush(colour)
            painter.drawEllipse(rect)
        else:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(rect)
            if state is Held.PARTIAL:
                half = QPainterPath()
                half.moveTo(rect.center())
                half.arcTo(rect, 90, 180)  # the left half
                half.closeSubpath()
                painter.fillPath(half, colour)
        painter.end()
        icon.addPixmap(pixmap)
    return icon
