"""The thumbnails of one study (or one series) as a flat list model: a header tile per series
followed by its instances, in series then instance number order.

Tiles are only ever added (instances arriving in the archive) and filled in (a thumbnail that
was rendered); the view draws them with widgets.thumbnails.TileDelegate.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QImage

from ...core.archive import InstanceRow, SeriesRow
from ...core.imaging import Kind, Thumbnail
from ...core.sopclasses import uid_name
from ..images import to_qimage

TILE_ROLE = Qt.ItemDataRole.UserRole + 1

_LAST = 1 << 30


@dataclass(eq=False)
class Tile:
    """One item: a series header (`is_header`) or an instance with its thumbnail once made."""

    series_uid: str
    is_header: bool = False
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    path: Path | None = None
    instance_number: int | None = None
    frames: int = 1
    rows: int | None = None
    columns: int | None = None
    series: SeriesRow | None = None  # headers: the archive's row (count, description...)
    shown: int = 0  # headers: instances of the series in the model
    thumbnail: Thumbnail | None = None
    image: QImage | None = field(default=None, repr=False)
    key: tuple = field(default=(), repr=False)  # its place in the model's order

    @property
    def is_ready(self) -> bool:
        return self.thumbnail is not None

    def caption(self) -> str:
        if self.is_header:
            return series_title(self.series)
        text = f"#{self.instance_number}" if self.instance_number is not None else "#?"
        if self.frames > 1:
            text += f" · {self.frames} frames"
        return text

    def tooltip(self) -> str:
        if self.is_header:
            return series_title(self.series) + "\n" + series_counts(self.series, self.shown)
        lines = [self.caption()]
        if self.rows and self.columns:
            lines.append(f"{self.columns} × {self.rows}")
        if self.sop_class_uid:
            lines.append(uid_name(self.sop_class_uid))
        thumb = self.thumbnail
        if thumb is None:
            lines.append("Rendering…")
        elif thumb.is_placeholder:
            lines.append(f"{thumb.label}: {thumb.detail}" if thumb.detail else thumb.label)
        lines.append("Double-click to open")
        return "\n".join(lines)


def series_title(series: SeriesRow | None) -> str:
    if series is None:
        return "Series"
    number = f"Series {series.series_number}" if series.series_number is not None else "Series"
    parts = [number]
    if series.modality:
        parts.append(series.modality)
    description = series.description or series.body_part
    if description:
        parts.append(description)
    return " · ".join(parts)


def series_counts(series: SeriesRow | None, shown: int) -> str:
    count = series.instance_count if series is not None else shown
    noun = "object" if count == 1 else "objects"
    return f"{count} {noun}"



def _is_problem(thumbnail: Thumbnail) -> bool:
    return thumbnail.kind not in (Kind.IMAGE, Kind.NO_PIXELS)


def _series_order(series: SeriesRow | None, series_uid: str) -> tuple:
    number = series.series_number if series is not None and series.series_number is not None else _LAST
    return (number, series_uid)


class ThumbnailsModel(QAbstractListModel):
    """Headers and instance tiles of what is shown; `study_uid`/`series_uid` say what that is."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.study_uid = ""
        self.series_uid = ""
        self._tiles: list[Tile] = []
        self._keys: list[tuple] = []
        self._by_uid: dict[str, Tile] = {}
        self._headers: dict[str, Tile] = {}
        self._ready = 0  # instance tiles with their thumbnail
        self._problems = 0  # ... of which a placeholder for a file that cannot be shown

    # -- filling -----------------------------------------------------------------------------
    def reset(self, study_uid: str = "", series_uid: str = "") -> None:
        self.beginResetModel()
        self.study_uid, self.series_uid = study_uid, series_uid
        self._tiles, self._keys = [], []
        self._by_uid.clear()
        self._headers.clear()
        self._ready = self._problems = 0
        self.endResetModel()

    def merge(self, series: list[SeriesRow], instances: list[InstanceRow]) -> list[Tile]:
        """Add what is not shown yet; returns the new instance tiles (to be rendered)."""
        rows = {s.series_uid: s for s in series}
        for row in series:
            header = self._headers.get(row.series_uid)
            if header is not None and header.series != row:
                header.series = row
                self._changed(header)
        new: list[Tile] = []
        headers: list[Tile] = []
        for inst in instances:
            if inst.sop_instance_uid in self._by_uid:
                continue
            if inst.series_uid not in self._headers:
                header = Tile(inst.series_uid, is_header=True, series=rows.get(inst.series_uid))
                self._headers[inst.series_uid] = header
                headers.append(header)
            tile = Tile(inst.series_uid, sop_instance_uid=inst.sop_instance_uid, sop_class_uid=inst.sop_class_uid,
                        path=inst.path, instance_number=inst.instance_number, frames=max(1, inst.frames or 1),
                        rows=inst.rows, columns=inst.columns)
            self._by_uid[inst.sop_instance_uid] = tile
            new.append(tile)
        if not self._tiles:  # the first read: one reset, not a signal a row
            self.beginResetModel()
            for tile in (*headers, *new):
                tile.key = self._key(tile)
            self._tiles = sorted((*headers, *new), key=lambda t: t.key)
            self._keys = [t.key for t in self._tiles]
            self.endResetModel()
        else:
            for tile in (*headers, *new):
                self._insert(tile)
        for tile in new:
            self._headers[tile.series_uid].shown += 1
        for uid in {t.series_uid for t in new}:
            self._changed(self._headers[uid])
        return new

    def _key(self, tile: Tile) -> tuple:
        header = self._headers.get(tile.series_uid)
        order = _series_order(header.series if header else None, tile.series_uid)
        if tile.is_header:
            return (*order, 0, 0, "")
        number = tile.instance_number if tile.instance_number is not None else _LAST
        return (*order, 1, number, tile.sop_instance_uid)

    def _insert(self, tile: Tile) -> None:
        key = tile.key = self._key(tile)
        row = bisect.bisect_right(self._keys, key)
        self.beginInsertRows(QModelIndex(), row, row)
        self._tiles.insert(row, tile)
        self._keys.insert(row, key)
        self.endInsertRows()

    def set_thumbnail(self, sop_instance_uid: str, thumbnail: Thumbnail) -> bool:
        """The thumbnail of a shown instance is ready (False: not shown any more)."""
        tile = self._by_uid.get(sop_instance_uid)
        if tile is None:
            return False
        if tile.thumbnail is None:
            self._ready += 1
        else:
            self._problems -= _is_problem(tile.thumbnail)
        self._problems += _is_problem(thumbnail)
        tile.thumbnail = thumbnail
        # a QImage, not a QPixmap: tiles may be freed by Python's garbage collector on any thread
        tile.image = None if thumbnail.is_placeholder else to_qimage(thumbnail.pixels)
        self._changed(tile)
        return True

    def _row(self, tile: Tile) -> int:
        row = bisect.bisect_left(self._keys, tile.key)
        return row if row < len(self._tiles) and self._tiles[row] is tile else -1

    def _changed(self, tile: Tile) -> None:
        row = self._row(tile)
        if row >= 0:
            index = self.index(row)
            self.dataChanged.emit(index, index)

    # -- reading -----------------------------------------------------------------------------
    def tiles(self) -> list[Tile]:
        return list(self._tiles)

    def instance_tiles(self, series_uid: str | None = None) -> list[Tile]:
        return [t for t in self._tiles if not t.is_header and (series_uid is None or t.series_uid == series_uid)]

    def tile(self, index: QModelIndex | QPersistentModelIndex | int) -> Tile | None:
        row = index if isinstance(index, int) else (index.row() if index.isValid() else -1)
        return self._tiles[row] if 0 <= row < len(self._tiles) else None

    def tile_of(self, sop_instance_uid: str) -> Tile | None:
        return self._by_uid.get(sop_instance_uid)

    def row_of(self, sop_instance_uid: str) -> int:
        tile = self._by_uid.get(sop_instance_uid)
        return self._row(tile) if tile is not None else -1

    def counts(self) -> tuple[int, int]:
        """(instances shown, of which thumbnails are ready)."""
        return len(self._by_uid), self._ready

    def series_count(self) -> int:
        return len(self._headers)

    def problem_count(self) -> int:
        """Instances whose file cannot be shown (damaged, unsupported, missing)."""
        return self._problems

    def placeholders(self) -> dict[str, Thumbnail]:
        return {t.sop_instance_uid: t.thumbnail for t in self.instance_tiles()
                if t.thumbnail is not None and t.thumbnail.kind is not Kind.IMAGE}

    # -- QAbstractListModel ------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt's name and default
        return 0 if parent.isValid() else len(self._tiles)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        tile = self.tile(index)
        if tile is None:
            return Qt.ItemFlag.NoItemFlags
        if tile.is_header:
            return Qt.ItemFlag.ItemIsEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        tile = self.tile(index)
        if tile is None:
            return None
        if role == TILE_ROLE:
            return tile
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            if tile.is_header:
                return f"{tile.caption()} · {series_counts(tile.series, tile.shown)}"
            thumb = tile.thumbnail
            if thumb is not None and thumb.is_placeholder:
                return f"{tile.caption()} · {thumb.label}"
            return tile.caption()
        if role == Qt.ItemDataRole.ToolTipRole:
            return tile.tooltip()
        return None
