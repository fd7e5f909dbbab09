"""The preview's drawing surface: the frame shown, scaled to fit, zoomed and panned, with the
overlay in its four corners; the mouse and keys become intents (step, jump, window drag, preset,
zoom) that widgets.preview.PreviewWindow acts on.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from ...core.frames import ImageInfo
from ...core.imaging import Kind
from ..controllers.preview import Frame

MIN_ZOOM, MAX_ZOOM = 0.1, 32.0


class ImageCanvas(QWidget):
    """Paints the frame shown with its overlay; turns the mouse and keys into intents."""

    step = Signal(int)  # frames/images forward (+) or back (-)
    jump = Signal(int)  # images forward (+) or back (-), skipping frames
    window_dragged = Signal(float, float)  # dx, dy in pixels since the press
    drag_started = Signal()
    preset = Signal(int)  # -1: the default window; 0..: the file's presets
    zoom_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("previewCanvas")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(320, 320)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.frame: Frame | None = None
        self.position_text = ""  # "Image 3 of 25"
        self.zoom = 1.0  # 1: the image fits the canvas
        self.pan = QPointF(0, 0)
        self._press: QPoint | None = None
        self._panning = False
        self._pan_start = QPointF(0, 0)
        self._wheel = 0

    # -- geometry ----------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        if self.frame is None or self.frame.image is None:
            return QRectF()
        image = self.frame.image
        fit = min(self.width() / image.width(), self.height() / image.height())
        scale = fit * self.zoom
        w, h = image.width() * scale, image.height() * scale
        return QRectF((self.width() - w) / 2 + self.pan.x(), (self.height() - h) / 2 + self.pan.y(), w, h)

    def set_zoom(self, zoom: float, about: QPointF | None = None) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        if about is not None and self.zoom > 0:
            centre = QPointF(self.width() / 2, self.height() / 2) + self.pan
            self.pan += (about - centre) * (1 - zoom / self.zoom)
        self.zoom = zoom
        if zoom == 1.0 and about is None:
            self.pan = QPointF(0, 0)
        self.zoom_changed.emit()
        self.update()

    def fit(self) -> None:
        self.pan = QPointF(0, 0)
        self.set_zoom(1.0)

    def display_size(self) -> int:
        """Longest side, in device pixels, the image is drawn at."""
        ratio = self.devicePixelRatioF()
        return math.ceil(max(self.width(), self.height()) * ratio * self.zoom)

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        frame = self.frame
        if frame is None:
            painter.setPen(QColor("#aaaaaa"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Loading…")
            return
        if frame.image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 3)
            painter.drawImage(self.image_rect(), frame.image)
        else:
            self._paint_placeholder(painter, frame)
        self._paint_overlay(painter, frame)

    def _paint_placeholder(self, painter: QPainter, frame: Frame) -> None:
        thumb = frame.thumbnail
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor("#d6e4ee") if thumb.kind is Kind.NO_PIXELS else QColor("#ffc2b8"))
        box = self.rect().adjusted(40, 0, -40, 0)
        box.setTop(self.height() // 2 - 40)
        painter.drawText(box, Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap, thumb.label)
        if thumb.detail:
            font.setBold(False)
            font.setPointSizeF(self.font().pointSizeF())
            painter.setFont(font)
            painter.setPen(QColor("#bbbbbb"))
            box.setTop(box.top() + 40)
            painter.drawText(box, Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap, thumb.detail)

    def overlay_lines(self) -> dict[str, list[str]]:
        """The four corners' text for the frame shown."""
        frame = self.frame
        if frame is None:
            return {}
        o: ImageInfo = frame.info
        t = frame.thumbnail
        born = " ".join(x for x in (o.birth_date and f"born {o.birth_date}", o.sex) if x)
        series = " ".join(x for x in (o.series_number and f"Series {o.series_number}", o.series_description) if x)
        top_left = [x for x in (o.patient_name, o.patient_id and f"ID {o.patient_id}", born) if x]
        top_right = [x for x in (o.study_date, o.study_description, series, o.modality) if x]
        bottom_left = [x for x in (self.position_text, o.instance_number and f"Instance {o.instance_number}") if x]
        if t.frames > 1 and t.frame is not None:
            bottom_left.append(f"Frame {t.frame + 1} of {t.frames}")
        if t.rows and t.columns:
            bottom_left.append(f"{t.columns} × {t.rows}")
        bottom_right = []
        if t.window is not None:
            w = t.window
            source = {"file": "file", "auto": "automatic", "given": "", "lut": "VOI LUT"}.get(w.source, w.source)
            text = f"W {number(w.width)}  L {number(w.center)}"
            if source:
                text += f" ({source}{': ' + w.explanation if w.explanation else ''})"
            bottom_right.append(text)
        elif t.is_color and not t.is_placeholder:
            bottom_right.append("Colour image")
        if not t.is_placeholder:
            bottom_right.append(f"Zoom {self._zoom_percent()} %")
        return {"tl": top_left, "tr": top_right, "bl": bottom_left, "br": bottom_right}

    def _zoom_percent(self) -> int:
        rect = self.image_rect()
        t = self.frame.thumbnail if self.frame else None
        if t is None or not t.columns or rect.isEmpty():
            return round(self.zoom * 100)
        # on-screen pixels per image pixel (the frame may have been rendered smaller)
        return round(100 * rect.width() * self.devicePixelRatioF() / t.columns)

    def _paint_overlay(self, painter: QPainter, frame: Frame) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(9.0, font.pointSizeF()))
        painter.setFont(font)
        margin = 8
        area = self.rect().adjusted(margin, margin, -margin, -margin)
        corners = {
            "tl": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
            "tr": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
            "bl": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
            "br": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
        }
        for corner, lines in self.overlay_lines().items():
            text = "\n".join(lines)
            flags = corners[corner]
            painter.setPen(QColor(0, 0, 0, 220))
            for dx, dy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
                painter.drawText(area.translated(dx, dy), flags, text)
            painter.setPen(QColor("#f2f2f2"))
            painter.drawText(area, flags, text)

    # -- input -------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self.setFocus()
        pan = event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton) or (
            event.button() == Qt.MouseButton.LeftButton and event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self._press = event.position().toPoint()
        self._panning = bool(pan)
        self._pan_start = QPointF(self.pan)
        if not pan and event.button() == Qt.MouseButton.LeftButton:
            self.drag_started.emit()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._press is None:
            return
        delta = event.position().toPoint() - self._press
        if self._panning:
            self.pan = self._pan_start + QPointF(delta)
            self.update()
        else:
            self.window_dragged.emit(float(delta.x()), float(delta.y()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self._press = None
        self._panning = False

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self.fit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        delta = event.angleDelta().y() or event.angleDelta().x()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom * (1.25 ** (delta / 120)), event.position())
            event.accept()
            return
        self._wheel += delta
        steps = int(self._wheel / 120)
        if steps:
            self._wheel -= steps * 120
            self.step.emit(-steps)  # wheel towards the user: forward through the series
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        key = event.key()
        actions = {
            Qt.Key.Key_Down: lambda: self.step.emit(1), Qt.Key.Key_Up: lambda: self.step.emit(-1),
            Qt.Key.Key_Right: lambda: self.jump.emit(1), Qt.Key.Key_Left: lambda: self.jump.emit(-1),
            Qt.Key.Key_PageDown: lambda: self.step.emit(10), Qt.Key.Key_PageUp: lambda: self.step.emit(-10),
            Qt.Key.Key_End: lambda: self.jump.emit(1 << 20), Qt.Key.Key_Home: lambda: self.jump.emit(-(1 << 20)),
            Qt.Key.Key_Plus: lambda: self.set_zoom(self.zoom * 1.25),
            Qt.Key.Key_Equal: lambda: self.set_zoom(self.zoom * 1.25),
            Qt.Key.Key_Minus: lambda: self.set_zoom(self.zoom / 1.25),
            Qt.Key.Key_0: self.fit, Qt.Key.Key_R: lambda: self.preset.emit(-1),
        }
        if Qt.Key.Key_1 <= key <= Qt.Key.Key_9:
            self.preset.emit(key - Qt.Key.Key_1)
        elif key in actions:
            actions[key]()
        else:
            super().keyPressEvent(event)
            return
        event.accept()


def number(value: float) -> str:
    """A window value as shown: whole numbers from 10 up."""
    return str(round(value)) if abs(value) >= 10 or abs(value - round(value)) < 0.05 else f"{value:.1f}"
