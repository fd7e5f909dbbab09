"""The results tree with its count line: sortable, lazily expanded, UIDs copied from a context menu."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QObject, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ...core.records import FindSummary
from ..models.results import COLUMNS, NAME, RESULT_ROLE, SORT_ROLE, Kind, Node, ResultsModel

_RETRIEVABLE = (Kind.STUDY, Kind.SERIES, Kind.INSTANCE)


class ResultsView(QWidget):
    activated = Signal(object)  # the *Result record of a double-clicked row
    row_activated = Signal(object)  # the Node of a study, series or instance row double-clicked or Enter
    retrieve_requested = Signal(list)  # Nodes to retrieve (the Retrieve button or menu entry)
    menu_about_to_show = Signal(object, object)  # QMenu, the *Result record: add entries before it shows

    def __init__(self, model: ResultsModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.tree = QTreeView()
        self.tree.setObjectName("resultsTree")
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # arrival order until the user sorts
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.doubleClicked.connect(self._double_clicked)
        self.tree.setExpandsOnDoubleClick(False)  # double-click retrieves (or opens); the arrow folds
        self.tree.installEventFilter(self)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        for column, width in enumerate((230, 90, 90, 90, 75, 210, 110, 55, 70)[: len(COLUMNS)]):
            self.tree.setColumnWidth(column, width)
        self.summary = QLabel("No search yet.")
        self.summary.setObjectName("resultsSummary")
        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.setObjectName("retrieveButton")
        self.retrieve_button.setToolTip("Fetch the selected studies, series or images to this computer "
                                        "(double-click or Enter on a row does the same)")
        self.retrieve_button.setEnabled(False)
        self.retrieve_button.clicked.connect(lambda: self.retrieve_requested.emit(self.selected_nodes()))
        self.tree.selectionModel().selectionChanged.connect(
            lambda *_: self.retrieve_button.setEnabled(bool(self.selected_nodes())))
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.summary, 1)
        top.addWidget(self.retrieve_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)

    def selected_results(self) -> list:
        """The records of the selected rows."""
        return [r for r in map(self.result_at, self.tree.selectionModel().selectedRows(NAME)) if r is not None]

    def source_index(self, index: QModelIndex) -> QModelIndex:
        return self.proxy.mapToSource(index)

    def result_at(self, index: QModelIndex):
        return self.proxy.data(index, RESULT_ROLE)

    def show_running(self, count: int) -> None:
        self.summary.setStyleSheet("")
        self.summary.setText(f"Searching… {count} so far")

    def show_outcome(self, outcome: FindSummary) -> None:
        text = outcome.summary[:1].upper() + outcome.summary[1:]
        text += f" in {outcome.elapsed:.2f} s"
        if outcome.notes:
            text += " · " + " ".join(outcome.notes)
        self.summary.setText(text)
        self.summary.setToolTip("\n".join(outcome.reasons + outcome.notes))
        self.summary.setStyleSheet("" if outcome.complete else "color: #9a6700; font-weight: bold;")

    def show_failure(self, message: str) -> None:
        self.summary.setText(message)
        self.summary.setStyleSheet("color: #b3261e;")

    def _double_clicked(self, index: QModelIndex) -> None:
        result = self.result_at(index.siblingAtColumn(NAME))
        if result is not None:
            self.activated.emit(result)
        self._activate(index)

    # -- retrieve: double-click, Enter, the button and the menu ------------------------------------------
    def node_at(self, index: QModelIndex) -> Node | None:
        if not index.isValid():
            return None
        node = self.model.node(self.proxy.mapToSource(index))
        return node if node.kind in _RETRIEVABLE else None

    def selected_nodes(self) -> list[Node]:
        rows = self.tree.selectionModel().selectedRows(NAME)
        return [n for n in (self.node_at(i) for i in rows) if n is not None]

    def _activate(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        first = index.siblingAtColumn(NAME)
        node = self.node_at(first)
        if node is not None:
            self.row_activated.emit(node)
        else:  # a patient row: nothing to retrieve at once, so it folds and unfolds as before
            self.tree.setExpanded(first, not self.tree.isExpanded(first))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.tree and event.type() == QEvent.Type.KeyPress and \
                event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._activate(self.tree.currentIndex())
            return True
        return super().eventFilter(watched, event)

    def _context_menu(self, position) -> None:
        index = self.tree.indexAt(position)
        result = self.result_at(index.siblingAtColumn(NAME)) if index.isValid() else None
        if result is None:
            return
        menu = QMenu(self)
        node = self.node_at(index.siblingAtColumn(NAME))
        if node is not None:
            nodes = self.selected_nodes()
            nodes = nodes if node in nodes else [node]
            retrieve = QAction("Retrieve" if len(nodes) == 1 else f"Retrieve {len(nodes)} rows", menu)
            retrieve.triggered.connect(lambda _=False, n=nodes: self.retrieve_requested.emit(n))
            menu.addAction(retrieve)
            menu.addSeparator()
        for label, attribute in (("Copy Study Instance UID", "study_instance_uid"),
                                 ("Copy Series Instance UID", "series_instance_uid"),
                                 ("Copy SOP Instance UID", "sop_instance_uid"),
                                 ("Copy Patient ID", "patient_id")):
            value = getattr(result, attribute, "")
            if value:
                action = QAction(label, menu)
                action.triggered.connect(lambda _=False, v=value: QGuiApplication.clipboard().setText(v))
                menu.addAction(action)
        self.menu_about_to_show.emit(menu, result)
        menu.popup(self.tree.viewport().mapToGlobal(position))
        self._menu = menu  # kept for tests
