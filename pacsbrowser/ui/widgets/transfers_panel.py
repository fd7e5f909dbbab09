"""The transfers panel: a table of retrieves and sends with progress bars and Cancel / Retry on each
row, and below it the selected transfer's outcome in words, its DICOM detail one click away."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...core.records import StoreOutcome
from ..models.transfers import (
    ACTIONS,
    COLUMNS,
    FRACTION_ROLE,
    PROGRESS,
    TRANSFER_ROLE,
    State,
    Transfer,
    TransfersModel,
)

_WIDTHS = (95, 125, 300, 220, 140, 60, 50, 100, 220)


class ProgressDelegate(QStyledItemDelegate):
    """Draws the progress column as a bar with its text ("120 / 400 images · 12.3 MB")."""

    def paint(self, painter, option, index) -> None:
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)
        fraction = index.data(FRACTION_ROLE)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(3, 4, -3, -4)
        bar.palette = option.palette
        bar.fontMetrics = option.fontMetrics
        bar.direction = option.direction
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(round((fraction or 0.0) * 1000))
        bar.text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)


class RowButtons(QWidget):
    """Cancel and Retry for one transfer."""

    def __init__(self, transfer: Transfer, panel: "TransfersPanel") -> None:
        super().__init__()
        self.transfer = transfer
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this transfer; what has arrived is kept")
        self.retry_button = QPushButton("Retry")
        self.retry_button.setToolTip("Run it again: only what is still missing is fetched")
        for button in (self.cancel_button, self.retry_button):
            button.setAutoDefault(False)
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.cancel_button.clicked.connect(lambda: panel.cancel_requested.emit(self.transfer))
        self.retry_button.clicked.connect(lambda: panel.retry_requested.emit(self.transfer))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 1, 2, 1)
        layout.setSpacing(4)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.retry_button)
        layout.addStretch(1)
        self.update_state()

    def update_state(self) -> None:
        state = self.transfer.state
        self.cancel_button.setVisible(state.active)
        self.cancel_button.setEnabled(state in (State.QUEUED, State.RUNNING))
        self.retry_button.setVisible(self.transfer.retryable)


class TransfersPanel(QWidget):
    cancel_requested = Signal(object)  # Transfer
    retry_requested = Signal(object)  # Transfer
    get_instead_requested = Signal(object)  # Transfer: retry a failed C-MOVE with C-GET
    clear_requested = Signal()

    def __init__(self, model: TransfersModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.summary = QLabel("No transfers yet: double-click a study to retrieve it, or drop files to send them.")
        self.summary.setObjectName("transfersSummary")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove the finished transfers from the list")
        self.clear_button.clicked.connect(self.clear_requested)
        self.table = QTableView()
        self.table.setObjectName("transfersTable")
        self.table.setModel(model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(30)
        self.table.setItemDelegateForColumn(PROGRESS, ProgressDelegate(self.table))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for column, width in enumerate(_WIDTHS[: len(COLUMNS)]):
            self.table.setColumnWidth(column, width)
        self.message = QLabel("")
        self.message.setObjectName("transferMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_button = QToolButton()
        self.detail_button.setText("DICOM detail")
        self.detail_button.setCheckable(True)
        self.detail_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.detail_button.setArrowType(Qt.ArrowType.RightArrow)
        self.detail_button.toggled.connect(self._show_detail)
        self.get_button = QPushButton("Retrieve with C-GET instead")
        self.get_button.setToolTip("Fetch it over the same connection (C-GET): the PACS need not know this computer")
        self.get_button.clicked.connect(lambda: self.get_instead_requested.emit(self.current()))
        self.get_button.hide()
        self.detail = QPlainTextEdit()
        self.detail.setObjectName("transferDetail")
        self.detail.setReadOnly(True)
        self.detail.setMaximumHeight(120)
        self.detail.hide()

        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.clear_button)
        message_row = QHBoxLayout()
        message_row.addWidget(self.message, 1)
        message_row.addWidget(self.get_button, 0, Qt.AlignmentFlag.AlignTop)
        message_row.addWidget(self.detail_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(message_row)
        layout.addWidget(self.detail)

        self._buttons: dict[int, RowButtons] = {}
        model.rowsInserted.connect(self._rows_inserted)
        model.rowsRemoved.connect(self._rows_removed)
        model.dataChanged.connect(self._data_changed)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_current())
        self._update_summary()
        self._show_current()

    # -- what tests and the window use ----------------------------------------------------------
    def buttons(self, transfer: Transfer) -> RowButtons:
        return self._buttons[transfer.id]

    def select(self, transfer: Transfer) -> None:
        row = self.model.row_of(transfer)
        if row >= 0:
            self.table.selectRow(row)
            self._show_current()

    def current(self) -> Transfer | None:
        index = self.table.currentIndex()
        if index.isValid():
            return index.data(TRANSFER_ROLE)
        return self.model.transfers[-1] if self.model.transfers else None

    # -- keeping up with the model ------------------------------------------------------------------
    def _rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        for row in range(first, last + 1):
            transfer = self.model.transfers[row]
            buttons = RowButtons(transfer, self)
            self._buttons[transfer.id] = buttons
            self.table.setIndexWidget(self.model.index(row, ACTIONS), buttons)
        if not self.table.currentIndex().isValid():
            self.table.selectRow(last)
        self._update_summary()
        self._show_current()

    def _rows_removed(self, *_: object) -> None:
        alive = {t.id for t in self.model.transfers}
        for tid in [tid for tid in self._buttons if tid not in alive]:
            del self._buttons[tid]
        self._update_summary()
        self._show_current()

    def _data_changed(self, top_left: QModelIndex | QPersistentModelIndex, bottom_right: QModelIndex | QPersistentModelIndex,
                      roles: list | None = None) -> None:
        if bottom_right.column() < ACTIONS:  # only the clock ticked
            return
        for row in range(top_left.row(), bottom_right.row() + 1):
            transfer = self.model.transfers[row]
            buttons = self._buttons.get(transfer.id)
            if buttons is not None:
                buttons.update_state()
        self._update_summary()
        current = self.current()
        if current is not None and top_left.row() <= self.model.row_of(current) <= bottom_right.row():
            self._show_current()

    def _update_summary(self) -> None:
        counts: dict[State, int] = {}
        for t in self.model.transfers:
            counts[t.state] = counts.get(t.state, 0) + 1
        if not self.model.transfers:
            return
        running = counts.get(State.RUNNING, 0) + counts.get(State.STOPPING, 0)
        parts = [f"{running} running"] if running else []
        if counts.get(State.QUEUED):
            parts.append(f"{counts[State.QUEUED]} waiting")
        finished = sum(n for s, n in counts.items() if not s.active)
        if finished:
            problems = sum(counts.get(s, 0) for s in (State.FAILED, State.INCOMPLETE, State.CANCELLED))
            parts.append(f"{finished} finished" + (f" ({problems} not complete)" if problems else ""))
        self.summary.setText("Transfers: " + ", ".join(parts))
        self.clear_button.setEnabled(bool(finished))

    def _show_current(self) -> None:
        t = self.current()
        if t is None:
            self.message.setText("")
            self.detail.setPlainText("")
            self.detail_button.setEnabled(False)
            self.get_button.hide()
            return
        self.get_button.setVisible(t.offer_get and t.state is State.FAILED)
        self.detail_button.setText("HTTP detail" if t.profile.is_web else "DICOM detail")
        colour = {State.FAILED: "#b3261e", State.INCOMPLETE: "#9a6700", State.CANCELLED: "#9a6700"}.get(t.state)
        text = t.message or (f"{t.direction.value} from {t.profile.name}: {t.state_text().lower()}"
                             if t.state.active else t.state.value)
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {colour};" if colour else "")
        lines = [t.detail] if t.detail else []
        if t.problems:
            lines.append("Files not stored cleanly:")
            lines += [f"  {r.name}: {_outcome(r.outcome)}{': ' + r.reason if r.reason else ''}" for r in t.problems]
        self.detail.setPlainText("\n".join(lines))
        self.detail_button.setEnabled(bool(lines))
        if t.problems and not self.detail_button.isChecked() and not t.state.active:
            self.detail_button.setChecked(True)  # a send's bad files are the point: show them

    def _show_detail(self, shown: bool) -> None:
        self.detail.setVisible(shown)
        self.detail_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)


def _outcome(outcome: StoreOutcome) -> str:
    return {StoreOutcome.SKIPPED: "not sent", StoreOutcome.FAILED: "failed",
            StoreOutcome.WARNING: "stored with a warning"}.get(outcome, outcome.value)
