"""The preview: one image large, with window/level, zoom, pan, frames and the series.

    drag (left button)          window/level: right widens, down raises the level
    Shift-drag, middle/right    pan
    wheel, Up/Down              next/previous frame, then the next/previous image of the series
    Left/Right                  previous/next image; PgUp/PgDn ten steps; Home/End
    Ctrl+wheel, +/-, 0          zoom (about the cursor), fit
    1..9, R                     the file's window presets, back to the default window

Frames come from controllers.preview.PreviewRenderer (worker threads); this widget only paints.
"""

from __future__ import annotations

import math
from pathlib import Path

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
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.frames import FrameKey, ImageInfo
from ...core.imaging import Kind, Window
from ..controllers.preview import Frame, PreviewRenderer
from ..models.thumbnails import ThumbnailsModel, Tile

PREFETCH_AHEAD = 8
PREFETCH_BEHIND = 3
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
            text = f"W {_number(w.width)}  L {_number(w.center)}"
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


def _number(value: float) -> str:
    return str(round(value)) if abs(value) >= 10 or abs(value - round(value)) < 0.05 else f"{value:.1f}"


class PreviewWindow(QWidget):
    """A window showing one image of the thumbnails model at a time, and moving through its series."""

    shown = Signal(object)  # the Frame painted

    def __init__(self, model: ThumbnailsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("previewWindow")
        self.setWindowTitle("Preview")
        self.model = model
        self.renderer = PreviewRenderer(self)
        self.renderer.rendered.connect(self._rendered)
        self.series_uid = ""
        self.sop_instance_uid = ""
        self.frame_index = 0
        self.user_window: Window | None = None  # None: each image's own default
        self._drag_window: Window | None = None
        self._wanted: FrameKey | None = None
        self._series_tiles: list[Tile] | None = None
        self._positions: dict[str, int] = {}
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset):
            signal.connect(self._forget_tiles)

        self.canvas = ImageCanvas()
        self.presets = QComboBox()
        self.presets.setObjectName("windowPresets")
        self.presets.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.presets.setMinimumContentsLength(28)
        self.presets.setToolTip("Window presets of the image file (keys 1 to 9); R goes back to the default")
        self.presets.activated.connect(self._preset_chosen)
        fit = QPushButton("Fit")
        fit.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        fit.clicked.connect(self.canvas.fit)
        hint = QLabel("Drag: window/level · Shift-drag: pan · Ctrl+wheel: zoom · Wheel or ↑↓: frames and images")
        hint.setObjectName("previewHint")
        hint.setStyleSheet("color: #666;")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Window:"))
        bar.addWidget(self.presets)
        bar.addWidget(fit)
        bar.addStretch(1)
        bar.addWidget(hint)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.canvas, 1)

        self.canvas.step.connect(self.step)
        self.canvas.jump.connect(self.jump)
        self.canvas.drag_started.connect(self._drag_started)
        self.canvas.window_dragged.connect(self._drag)
        self.canvas.preset.connect(self.apply_preset)
        self.canvas.zoom_changed.connect(self._zoom_changed)
        self.resize(820, 860)

    # -- navigation --------------------------------------------------------------------------
    def tiles(self) -> list[Tile]:
        """The instances of the series shown, in order (kept until the model changes)."""
        if self._series_tiles is None:
            self._series_tiles = self.model.instance_tiles(self.series_uid)
            self._positions = {t.sop_instance_uid: i for i, t in enumerate(self._series_tiles)}
        return self._series_tiles

    def _forget_tiles(self, *_args: object) -> None:
        self._series_tiles = None

    def position(self, sop_instance_uid: str | None = None) -> int:
        self.tiles()
        return self._positions.get(self.sop_instance_uid if sop_instance_uid is None else sop_instance_uid, -1)

    def open_instance(self, sop_instance_uid: str, frame: int = 0) -> None:
        tile = self.model.tile_of(sop_instance_uid)
        if tile is None:
            return
        if tile.series_uid != self.series_uid:
            self.user_window = None
            self._series_tiles = None
        self.series_uid = tile.series_uid
        self.sop_instance_uid = sop_instance_uid
        self.frame_index = max(0, min(frame, tile.frames - 1))
        self._request()
        self.canvas.setFocus()

    def step(self, count: int) -> None:
        """Forward (+) or back (-) through the frames, then on to the next images of the series."""
        tiles, i = self.tiles(), self.position()
        if i < 0:
            return
        frame = self.frame_index + count
        while True:
            frames = tiles[i].frames
            if frame >= frames and i + 1 < len(tiles):
                frame -= frames
                i += 1
            elif frame < 0 and i > 0:
                i -= 1
                frame += tiles[i].frames
            else:
                break
        frame = max(0, min(frame, tiles[i].frames - 1))
        if (i, frame) != (self.position(), self.frame_index):
            self.sop_instance_uid, self.frame_index = tiles[i].sop_instance_uid, frame
            self._request()

    def jump(self, count: int) -> None:
        """Forward (+) or back (-) whole images."""
        tiles, i = self.tiles(), self.position()
        if i < 0:
            return
        j = max(0, min(len(tiles) - 1, i + count))
        if j != i:
            self.sop_instance_uid, self.frame_index = tiles[j].sop_instance_uid, 0
            self._request()

    # -- window ------------------------------------------------------------------------------
    def current_window(self) -> Window | None:
        frame = self.canvas.frame
        return frame.thumbnail.window if frame is not None else None

    def _drag_started(self) -> None:
        self._drag_window = self.current_window()

    def _drag(self, dx: float, dy: float) -> None:
        start = self._drag_window
        if start is None:
            return  # colour images and placeholders have no window
        step = max(start.width / 300.0, 0.05)
        width = max(1.0, start.width + dx * step)
        center = start.center + dy * step
        self.set_window(Window(center, width, "LINEAR" if start.source == "lut" else start.function, "given"))

    def set_window(self, window: Window | None) -> None:
        self.user_window = window
        self._request()

    def _preset_chosen(self, item: int) -> None:
        frame = self.canvas.frame
        if frame is not None and 1 + len(frame.info.windows) <= item:
            return  # "Custom": what is shown already
        self.apply_preset(item - 1)

    def apply_preset(self, index: int) -> None:
        """-1: each image's default window; 0..: the file's index-th Window Center/Width."""
        frame = self.canvas.frame
        windows = frame.info.windows if frame is not None else ()
        if index < 0:
            self.set_window(None)
        elif index < len(windows):
            self.set_window(windows[index])

    # -- rendering ---------------------------------------------------------------------------
    def render_size(self, tile: Tile) -> int:
        native = max(tile.rows or 0, tile.columns or 0) or 1024
        if native <= 1024:
            return native
        need = self.canvas.display_size()
        for size in (1024, 2048):
            if need <= size:
                return size
        return min(native, 4096)

    def _key(self, tile: Tile, frame: int) -> FrameKey:
        return FrameKey(tile.sop_instance_uid, frame, self.user_window, self.render_size(tile))

    def _request(self) -> None:
        tile = self.model.tile_of(self.sop_instance_uid)
        if tile is None or tile.path is None:
            return
        self._wanted = self._key(tile, self.frame_index)
        self.renderer.request(self._wanted, tile.path)
        self._prefetch()

    def _prefetch(self) -> None:
        tiles, i = self.tiles(), self.position()
        if i < 0:
            return
        ahead: list[tuple[FrameKey, Path]] = []
        for offset in [*range(1, PREFETCH_AHEAD + 1), *range(-1, -PREFETCH_BEHIND - 1, -1)]:
            pos = self._offset(tiles, i, self.frame_index, offset)
            if pos is not None and tiles[pos[0]].path is not None:
                ahead.append((self._key(tiles[pos[0]], pos[1]), tiles[pos[0]].path))
        self.renderer.prefetch(ahead)

    @staticmethod
    def _offset(tiles: list[Tile], i: int, frame: int, offset: int) -> tuple[int, int] | None:
        frame += offset
        while frame >= tiles[i].frames:
            frame -= tiles[i].frames
            i += 1
            if i >= len(tiles):
                return None
        while frame < 0:
            i -= 1
            if i < 0:
                return None
            frame += tiles[i].frames
        return i, frame

    def _rendered(self, frame: Frame) -> None:
        wanted = self._wanted
        if wanted is None:
            return
        same_place = (frame.key.sop_instance_uid, frame.key.frame) == (wanted.sop_instance_uid, wanted.frame)
        same_look = (frame.key.window, frame.key.size) == (wanted.window, wanted.size)
        position = self.position(frame.key.sop_instance_uid)  # in the series shown, or -1
        if not same_place and not (same_look and position >= 0):
            return
        tiles = self.tiles()
        self.canvas.position_text = f"Image {position + 1} of {len(tiles)}" if position >= 0 else ""
        self.canvas.frame = frame
        self.canvas.update()
        self._update_presets(frame.info)
        title = " · ".join(x for x in (frame.info.patient_name, frame.info.series_description) if x)
        self.setWindowTitle(f"Preview — {title}" if title else "Preview")
        self.shown.emit(frame)

    def _update_presets(self, info: ImageInfo) -> None:
        labels = ["Default (the image's own)"] + [
            f"{i + 1}: W {_number(w.width)} L {_number(w.center)}" + (f" {w.explanation}" if w.explanation else "")
            for i, w in enumerate(info.windows)]
        selected = 0
        if self.user_window is not None and self.user_window in info.windows:
            selected = info.windows.index(self.user_window) + 1
        elif self.user_window is not None:
            labels.append("Custom (R: back to default)")
            selected = len(labels) - 1
        current = [self.presets.itemText(i) for i in range(self.presets.count())]
        if labels != current:
            self.presets.clear()
            self.presets.addItems(labels)
        self.presets.setCurrentIndex(selected)

    def _zoom_changed(self) -> None:
        tile = self.model.tile_of(self.sop_instance_uid)
        if tile is not None and self._wanted is not None and self.render_size(tile) != self._wanted.size:
            self._request()  # drawn larger than it was rendered: render it sharper

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)

    async def shutdown(self) -> None:
        await self.renderer.shutdown()
