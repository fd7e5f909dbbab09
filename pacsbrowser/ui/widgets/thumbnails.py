"""The "Images" panel: thumbnails of the study or series selected, grouped by series, in a
QListView in icon mode (one view, a delegate drawing every tile: hundreds of images stay cheap).

A series header takes a whole row of the grid (its size hint is the viewport's width), so each
series starts on a new line. Placeholders say what an object is (structured report, PDF...) or
why it cannot be shown. Double-click (or Enter) opens the preview.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QModelIndex, QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from ...core.archive import Archive
from ...core.imaging import DEFAULT_SIZE, Kind
from ..controllers.thumbnails import ThumbnailsController
from ..models.thumbnails import TILE_ROLE, ThumbnailsModel, Tile, series_counts
from .preview import PreviewWindow

BACKGROUND = QColor("#1b1b1b")
TILE_BACKGROUND = QColor("#000000")
TEXT = QColor("#e6e6e6")
DIM_TEXT = QColor("#a8a8a8")
HIGHLIGHT = QColor("#4d9fff")
NO_PIXELS = (QColor("#2f3b44"), QColor("#d6e4ee"))  # background, text
PROBLEM = (QColor("#4a2420"), QColor("#ffc2b8"))
HEADER_HEIGHT = 28
CAPTION_HEIGHT = 18
PAD = 4


class TileDelegate(QStyledItemDelegate):
    def __init__(self, view: QListView, size: int = DEFAULT_SIZE) -> None:
        super().__init__(view)
        self.view = view
        self.size = size

    def tile_size(self) -> QSize:
        return QSize(self.size + 2 * PAD, self.size + 2 * PAD + CAPTION_HEIGHT)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 - Qt's name
        tile: Tile | None = index.data(TILE_ROLE)
        if tile is not None and tile.is_header:
            width = self.view.viewport().width() - 2 * self.view.spacing() - 1
            return QSize(max(width, self.tile_size().width()), HEADER_HEIGHT)
        return self.tile_size()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        tile: Tile | None = index.data(TILE_ROLE)
        if tile is None:
            return
        painter.save()
        try:
            if tile.is_header:
                self._paint_header(painter, option.rect, tile)
            else:
                selected = bool(option.state & QStyle.StateFlag.State_Selected)
                self._paint_tile(painter, option.rect, tile, selected)
        finally:
            painter.restore()

    def _paint_header(self, painter: QPainter, rect: QRect, tile: Tile) -> None:
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(TEXT)
        text_rect = rect.adjusted(PAD, 0, -PAD, -2)
        title = tile.caption()
        metrics = painter.fontMetrics()
        counts = series_counts(tile.series, tile.shown)
        if tile.series is not None and tile.shown != tile.series.instance_count:
            counts = f"{tile.shown} of {counts} here"
        room = text_rect.width() - metrics.horizontalAdvance("   " + counts) - PAD
        title = metrics.elidedText(title, Qt.TextElideMode.ElideRight, max(room, 40))
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, title)
        font.setBold(False)
        painter.setFont(font)
        painter.setPen(DIM_TEXT)
        left = text_rect.left() + metrics.horizontalAdvance(title) + metrics.horizontalAdvance("   ")
        painter.drawText(QRect(left, text_rect.top(), text_rect.right() - left, text_rect.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, counts)
        painter.setPen(QPen(QColor("#3c3c3c"), 1))
        painter.drawLine(rect.left() + PAD, rect.bottom(), rect.right() - PAD, rect.bottom())

    def _paint_tile(self, painter: QPainter, rect: QRect, tile: Tile, selected: bool) -> None:
        frame = rect.adjusted(1, 1, -1, -1)
        painter.fillRect(frame, TILE_BACKGROUND)
        image_rect = QRect(frame.left() + (frame.width() - self.size) // 2, frame.top() + PAD, self.size, self.size)
        thumb = tile.thumbnail
        if tile.image is not None:
            target = tile.image.size()
            if target.width() > image_rect.width() or target.height() > image_rect.height():
                target = target.scaled(image_rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            x = image_rect.left() + (image_rect.width() - target.width()) // 2
            y = image_rect.top() + (image_rect.height() - target.height()) // 2
            painter.drawImage(QRect(x, y, target.width(), target.height()), tile.image)
        elif thumb is not None:
            self._paint_placeholder(painter, image_rect, thumb.kind, thumb.label, thumb.detail)
        else:
            painter.setPen(DIM_TEXT)
            painter.drawText(image_rect, Qt.AlignmentFlag.AlignCenter, "…")
        caption_rect = QRect(frame.left() + PAD, image_rect.bottom() + 1, frame.width() - 2 * PAD, CAPTION_HEIGHT)
        painter.setPen(TEXT)
        caption = painter.fontMetrics().elidedText(tile.caption(), Qt.TextElideMode.ElideRight, caption_rect.width())
        painter.drawText(caption_rect, Qt.AlignmentFlag.AlignCenter, caption)
        if selected:
            painter.setPen(QPen(HIGHLIGHT, 2))
            painter.drawRect(frame.adjusted(1, 1, -1, -1))

    def _paint_placeholder(self, painter: QPainter, rect: QRect, kind: Kind, label: str, detail: str) -> None:
        background, text = NO_PIXELS if kind is Kind.NO_PIXELS else PROBLEM
        painter.fillRect(rect, background)
        painter.setPen(QPen(text.darker(160), 1))
        painter.drawRect(rect.adjusted(0, 0, -1, -1))
        inner = rect.adjusted(6, 8, -6, -6)
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(text)
        flags = Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap
        label_rect = painter.boundingRect(inner, flags, label)
        painter.drawText(inner, flags, label)
        if detail and kind is not Kind.NO_PIXELS:
            font.setBold(False)
            font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
            painter.setFont(font)
            painter.setPen(text.darker(125))
            detail_rect = QRect(inner.left(), label_rect.bottom() + 6, inner.width(),
                                inner.bottom() - label_rect.bottom() - 6)
            painter.drawText(detail_rect, Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap,
                             _first_words(detail, 90))


def _first_words(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


class ThumbnailsPanel(QWidget):
    """Thumbnails of what the archive holds for the selected study or series, and the preview."""

    preview_opened = Signal(str)  # SOP Instance UID

    def __init__(self, archive: Archive, parent: QWidget | None = None, *, size: int = DEFAULT_SIZE,
                 processes: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("thumbnailsPanel")
        self.archive = archive
        self.model = ThumbnailsModel(self)
        self.controller = ThumbnailsController(archive, self.model, self, size=size, processes=processes)
        self.preview: PreviewWindow | None = None

        self.title = QLabel("Select a study or series to see the images this computer holds for it.")
        self.title.setObjectName("thumbnailsTitle")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.view = QListView()
        self.view.setObjectName("thumbnailsView")
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setFlow(QListView.Flow.LeftToRight)
        self.view.setWrapping(True)
        self.view.setSpacing(3)
        self.view.setUniformItemSizes(False)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(200)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setDragEnabled(False)
        self.view.setMouseTracking(True)
        palette = self.view.palette()
        palette.setColor(QPalette.ColorRole.Base, BACKGROUND)
        palette.setColor(QPalette.ColorRole.Text, TEXT)
        self.view.setPalette(palette)
        self.delegate = TileDelegate(self.view, size)
        self.view.setItemDelegate(self.delegate)
        self.view.setModel(self.model)
        self._scrolled = QTimer(self)
        self._scrolled.setSingleShot(True)
        self._scrolled.setInterval(80)
        self._scrolled.timeout.connect(lambda: self.controller.prioritize(self.visible_tiles()))
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled.start)
        self.view.activated.connect(self._activated)
        self.view.doubleClicked.connect(self._activated)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)

        self.controller.progress.connect(self._progress)
        self.controller.failed.connect(lambda message: self.title.setText(f"Cannot read the archive: {message}"))

    # -- slots of the window -----------------------------------------------------------------
    def show_study(self, study_uid: str, series_uid: str = "") -> None:
        """Show what the archive holds for the study (only that series when given)."""
        if (study_uid, series_uid) != (self.model.study_uid, self.model.series_uid):
            self.title.setText("Looking in this computer's archive…" if study_uid else
                               "Select a study or series to see the images this computer holds for it.")
        self.controller.show_study(study_uid, series_uid)

    def archive_changed(self, study_uid: str) -> None:
        """The archive's holdings of a study changed: new thumbnails if it is the one shown."""
        self.controller.archive_changed(study_uid)

    def visible_tiles(self) -> list[Tile]:
        """The instance tiles on screen, top to bottom."""
        start = self.view.indexAt(QPoint(8, 8))
        if not start.isValid():
            start = self.view.indexAt(QPoint(8, HEADER_HEIGHT + 8))
        out: list[Tile] = []
        height = self.view.viewport().height()
        for row in range(max(0, start.row()), self.model.rowCount()):
            index = self.model.index(row)
            if self.view.visualRect(index).top() > height:
                break
            tile = self.model.tile(index)
            if tile is not None and not tile.is_header:
                out.append(tile)
        return out

    # -- preview -----------------------------------------------------------------------------
    def _activated(self, index: QModelIndex) -> None:
        tile = self.model.tile(index)
        if tile is not None and not tile.is_header:
            self.open_preview(tile.sop_instance_uid)

    def open_preview(self, sop_instance_uid: str) -> PreviewWindow | None:
        tile = self.model.tile_of(sop_instance_uid)
        if tile is None:
            return None
        if self.preview is None:
            self.preview = PreviewWindow(self.model, self.window())
        self.preview.open_instance(sop_instance_uid)
        self.preview.show()
        self.preview.raise_()
        self.preview.activateWindow()
        self.preview_opened.emit(sop_instance_uid)
        return self.preview

    # -- state -------------------------------------------------------------------------------
    def _progress(self, ready: int, total: int) -> None:
        if not self.model.study_uid:
            return
        what = "this series" if self.model.series_uid else "this study"
        info = self.controller.info
        study = " · ".join(x for x in (info.study_description, info.study_date) if x)
        if total == 0:
            self.title.setText(f"This computer holds no images of {what} yet.")
            return
        text = f"{self.model.series_count()} series · {total} object{'s' if total != 1 else ''} on this computer"
        if study:
            text = f"<b>{html.escape(study)}</b> — {text}"
        if ready < total:
            text += f" · making thumbnails… {ready} of {total}"
        problems = self.model.problem_count()
        if problems:
            text += f" · {problems} cannot be shown (hover for the reason)"
        self.title.setText(text)

    async def shutdown(self) -> None:
        if self.preview is not None:
            await self.preview.shutdown()
            if isValid(self.preview):  # not deleted with its parent window already
                self.preview.close()
        await self.controller.shutdown()
