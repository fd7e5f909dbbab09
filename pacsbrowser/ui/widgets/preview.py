"""The preview: one image large, with window/level, zoom, pan, frames and the series.

    drag (left button)          window/level: right widens, down raises the level
    Shift-drag, middle/right    pan
    wheel, Up/Down              next/previous frame, then the next/previous image of the series
    Left/Right                  previous/next image; PgUp/PgDn ten steps; Home/End
    Ctrl+wheel, +/-, 0          zoom (about the cursor), fit
    1..9, R                     the file's window presets, back to the default window

Frames come from controllers.preview.PreviewRenderer (worker threads); widgets.image_canvas paints.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.frames import FrameKey, ImageInfo
from ...core.imaging import Window
from ..controllers.preview import Frame, PreviewRenderer
from ..models.thumbnails import ThumbnailsModel, Tile
from .image_canvas import ImageCanvas, number

PREFETCH_AHEAD = 8
PREFETCH_BEHIND = 3


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
            f"{i + 1}: W {number(w.width)} L {number(w.center)}" + (f" {w.explanation}" if w.explanation else "")
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
