"""The transfers list: one row per retrieve or send, with its progress, rate, times and state.

`Transfer` is a plain record the controller updates; `TransfersModel` shows them as a table and
refreshes the running rows' times once a second. Patient names show only while "show patient data"
is on (core.logs), like the log.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QColor

from ...core import logs
from ...core.records import RetrieveMethod, ServerProfile, StoreOutcome, StoreResult
from .. import profile_words

COLUMNS = ["Direction", "Server", "Item", "Progress", "Rate", "Elapsed", "Left", "", "State"]
DIRECTION, SERVER, ITEM, PROGRESS, RATE, ELAPSED, LEFT, ACTIONS, STATE = range(len(COLUMNS))

TRANSFER_ROLE = Qt.ItemDataRole.UserRole + 20  # the Transfer of a row
FRACTION_ROLE = Qt.ItemDataRole.UserRole + 21  # 0..1, or None when the total is not known yet

_ids = itertools.count(1)


class Direction(str, Enum):
    RETRIEVE = "Retrieve"
    SEND = "Send"


class State(str, Enum):
    QUEUED = "Queued"
    RUNNING = "Running"
    STOPPING = "Stopping…"
    COMPLETE = "Complete"
    INCOMPLETE = "Incomplete"
    CANCELLED = "Cancelled"
    FAILED = "Failed"

    @property
    def active(self) -> bool:
        return self in (State.QUEUED, State.RUNNING, State.STOPPING)


_STATE_COLOURS = {State.COMPLETE: "#1e7b34", State.INCOMPLETE: "#9a6700", State.CANCELLED: "#9a6700",
                  State.FAILED: "#b3261e", State.QUEUED: "#6b6b6b"}


@dataclass(eq=False)
class Transfer:
    """One retrieve (study, series or instance) or one send (files and folders)."""

    direction: Direction
    profile: ServerProfile
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    paths: tuple[Path, ...] = ()
    label: str = ""  # what it is, without patient data
    patient: str = ""  # shown only while patient data may be shown
    id: int = field(default_factory=lambda: next(_ids))
    state: State = State.QUEUED
    phase: str = ""  # what a running transfer is doing, in words
    total: int | None = None  # instances (files) this run moves; None while unknown
    done: int = 0
    already_present: int = 0
    bytes_done: int = 0
    bytes_total: int | None = None
    rate: float = 0.0  # instances per second
    byte_rate: float = 0.0
    started: float | None = None  # time.monotonic()
    ended: float | None = None
    message: str = ""  # the outcome in words
    detail: str = ""  # the DICOM detail
    problems: list[StoreResult] = field(default_factory=list)  # a send's files not stored cleanly
    attempt: int = 1
    method: RetrieveMethod | None = None  # a retrieve's method when not the profile's (C-GET offered instead)
    offer_get: bool = False  # the PACS does not know our C-MOVE destination: C-GET may work

    @property
    def retryable(self) -> bool:
        """Running it again could bring more (a send whose only problems are unsendable files could not)."""
        if self.state not in (State.CANCELLED, State.FAILED, State.INCOMPLETE):
            return False
        if self.direction is Direction.SEND and self.state is State.INCOMPLETE:
            return any(r.outcome is StoreOutcome.FAILED for r in self.problems)
        return True

    @property
    def key(self) -> tuple:
        """Two transfers with the same key do the same thing."""
        return (self.direction, self.profile.name, self.study_uid, self.series_uid, self.sop_uid, self.paths)

    @property
    def level(self) -> str:
        return "instance" if self.sop_uid else "series" if self.series_uid else "study"

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started

    @property
    def fraction(self) -> float | None:
        if self.total is None:
            return None
        return 1.0 if self.total == 0 else min(1.0, self.done / self.total)

    @property
    def remaining_seconds(self) -> float | None:
        if self.state is not State.RUNNING or self.total is None or self.rate <= 0:
            return None
        return max(0, self.total - self.done) / self.rate

    def item_text(self) -> str:
        what = self.label or (f"{len(self.paths)} file(s) or folder(s)" if self.paths else
                              f"{self.level} …{(self.sop_uid or self.series_uid or self.study_uid)[-12:]}")
        if self.patient:
            return f"{logs.phi(self.patient)} · {what}"
        return what

    def progress_text(self) -> str:
        noun = "files" if self.direction is Direction.SEND else "images"
        count = f"{self.done} / {self.total} {noun}" if self.total is not None else f"{self.done} {noun}"
        text = f"{count} · {size_text(self.bytes_done)}"
        if self.bytes_total:
            text += f" of {size_text(self.bytes_total)}"
        return text

    def rate_text(self) -> str:
        if self.rate <= 0 or self.state is State.QUEUED:
            return ""
        noun = "files" if self.direction is Direction.SEND else "img"
        return f"{self.rate:.0f} {noun}/s · {size_text(self.byte_rate)}/s"

    def state_text(self) -> str:
        if self.state is State.RUNNING and self.phase:
            return self.phase
        if self.state in (State.FAILED, State.INCOMPLETE, State.CANCELLED) and self.message:
            return f"{self.state.value}: {self.message}"
        return self.state.value


def size_text(size: float) -> str:
    if size < 1_000_000:
        return f"{size / 1000:.0f} KB"
    if size < 1_000_000_000:
        return f"{size / 1_000_000:.1f} MB"
    return f"{size / 1_000_000_000:.2f} GB"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class TransfersModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.transfers: list[Transfer] = []
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)

    # -- changes -----------------------------------------------------------------------------
    def add(self, transfer: Transfer) -> None:
        row = len(self.transfers)
        self.beginInsertRows(QModelIndex(), row, row)
        self.transfers.append(transfer)
        self.endInsertRows()
        self._clock.start()

    def changed(self, transfer: Transfer) -> None:
        row = self.row_of(transfer)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
        if transfer.state.active:
            self._clock.start()

    def remove(self, transfers: list[Transfer]) -> None:
        for transfer in transfers:
            row = self.row_of(transfer)
            if row >= 0:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self.transfers[row]
                self.endRemoveRows()

    def refresh_all(self) -> None:
        """Redraw every row (e.g. "show patient data" was switched)."""
        if self.transfers:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.transfers) - 1, len(COLUMNS) - 1))

    def row_of(self, transfer: Transfer) -> int:
        for row, t in enumerate(self.transfers):
            if t is transfer:
                return row
        return -1

    def _tick(self) -> None:
        running = [row for row, t in enumerate(self.transfers) if t.state.active]
        if not running:
            self._clock.stop()
            return
        for row in running:
            self.dataChanged.emit(self.index(row, ELAPSED), self.index(row, LEFT))

    # -- QAbstractTableModel -----------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.transfers)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.transfers):
            return None
        t = self.transfers[index.row()]
        column = index.column()
        if role == TRANSFER_ROLE:
            return t
        if role == FRACTION_ROLE:
            return t.fraction
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(t, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(t, column)
        if role == Qt.ItemDataRole.ForegroundRole and column == STATE and t.state in _STATE_COLOURS:
            return QBrush(QColor(_STATE_COLOURS[t.state]))
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (RATE, ELAPSED, LEFT):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, t: Transfer, column: int) -> str:
        if column == DIRECTION:
            return "↓ Retrieve" if t.direction is Direction.RETRIEVE else "↑ Send"
        if column == SERVER:
            return t.profile.name
        if column == ITEM:
            return t.item_text()
        if column == PROGRESS:
            return t.progress_text()
        if column == RATE:
            return t.rate_text()
        if column == ELAPSED:
            return duration(t.elapsed) if t.started is not None else ""
        if column == LEFT:
            return duration(t.remaining_seconds)
        if column == STATE:
            return t.state_text()
        return ""

    def _tooltip(self, t: Transfer, column: int) -> str:
        p = t.profile
        if column == SERVER:
            how = f", {profile_words.retrieve_method(p)}" if t.direction is Direction.RETRIEVE else \
                f", {profile_words.send_service(p)}"
            return f"{profile_words.address(p)}{how}"
        if column == STATE:
            return "\n\n".join(x for x in (t.message, t.detail) if x) or t.state_text()
        if column == ITEM:
            return t.item_text()
        if column == PROGRESS and t.already_present:
            return f"{t.already_present} images were already on this computer and were not fetched again"
        return ""
