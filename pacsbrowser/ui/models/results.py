"""The results tree: a QAbstractItemModel over plain-Python nodes (patient/study, series, instances).

Top-level rows arrive in batches while the query streams. Children load lazily: expanding a row
(`fetchMore`) asks the controller for them through `children_requested`; a "Loading…" row stands in
until they come, an error row if they fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from ...core.records import InstanceResult, PatientResult, SeriesResult, StudyResult
from ...core.sopclasses import uid_name
from .holdings import Holding, holding_icon

COLUMNS = ["Patient / study", "Patient ID", "Birth date", "Study date", "Modality", "Description", "Accession",
           "Series", "Instances"]
NAME, PATIENT_ID, BIRTH_DATE, STUDY_DATE, MODALITY, DESCRIPTION, ACCESSION, SERIES, INSTANCES = range(len(COLUMNS))

_COLUMN_COUNT = len(COLUMNS)

RESULT_ROLE = Qt.ItemDataRole.UserRole + 1  # the *Result record of a row
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
KIND_ROLE = Qt.ItemDataRole.UserRole + 3


class Kind(str, Enum):
    PATIENT = "patient"
    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"
    LOADING = "loading"
    ERROR = "error"


class LoadState(Enum):
    NOT_LOADED = 0
    LOADING = 1
    LOADED = 2
    FAILED = 3


@dataclass(eq=False)
class Node:
    kind: Kind
    result: Any = None
    parent: "Node | None" = None
    children: list["Node"] = field(default_factory=list)
    state: LoadState = LoadState.NOT_LOADED
    message: str = ""  # loading and error rows
    row_number: int = 0  # its place among its parent's children (rows are only ever appended)

    @property
    def can_have_children(self) -> bool:
        return self.kind in (Kind.PATIENT, Kind.STUDY, Kind.SERIES)

    def row(self) -> int:
        return self.row_number


def _date(value: date | None) -> str:
    return value.isoformat() if value else ""


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


def _name(person) -> str:
    if person is None:
        return ""
    parts = [p for p in (person.alphabetic, person.ideographic, person.phonetic) if p]
    text = " = ".join(parts)
    return text.replace("^", ", ", 1).replace("^", " ")



def node_uid(node: Node) -> str:
    """The UID a study, series or instance row stands for ('' for other rows)."""
    r = node.result
    if isinstance(r, StudyResult):
        return r.study_instance_uid
    if isinstance(r, SeriesResult):
        return r.series_instance_uid
    if isinstance(r, InstanceResult):
        return r.sop_instance_uid
    return ""


class ResultsModel(QAbstractItemModel):
    children_requested = Signal(object)  # Node whose children should be loaded

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.root = Node(Kind.PATIENT, state=LoadState.LOADED)
        self._index_by_key: dict[tuple[Kind, Any], Node] = {}
        self._holdings: dict[str, Holding] = {}  # what the local archive holds, by row UID

    # -- filling ---------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.beginResetModel()
        for node in self.root.children:
            node.parent = None  # detached: late answers for them are ignored
        self.root.children = []
        self._index_by_key.clear()
        self._holdings.clear()
        self.endResetModel()

    def add_results(self, results: list[Any]) -> int:
        """Append top-level rows (PatientResult or StudyResult) in one insertion; duplicates are skipped."""
        nodes = []
        for result in results:
            kind = Kind.PATIENT if isinstance(result, PatientResult) else Kind.STUDY
            key = (kind, result.key)
            if key in self._index_by_key:
                continue
            node = Node(kind, result, parent=self.root, row_number=len(self.root.children) + len(nodes))
            self._index_by_key[key] = node
            nodes.append(node)
        if nodes:
            first = len(self.root.children)
            self.beginInsertRows(QModelIndex(), first, first + len(nodes) - 1)
            self.root.children.extend(nodes)
            self.endInsertRows()
        return len(nodes)

    def top_level_count(self) -> int:
        return len(self.root.children)

    def sync_results(self, results: list[Any]) -> None:
        """Make the top level agree with `results` (the same search run again): changed rows are
        updated (and their loaded children asked for again), new ones appended, missing ones removed."""
        wanted = {(Kind.PATIENT if isinstance(r, PatientResult) else Kind.STUDY, r.key): r for r in results}
        for row in range(len(self.root.children) - 1, -1, -1):
            node = self.root.children[row]
            key = (node.kind, node.result.key)
            if key in wanted:
                continue
            self.beginRemoveRows(QModelIndex(), row, row)
            del self.root.children[row]
            del self._index_by_key[key]
            node.parent = None
            for later in self.root.children[row:]:
                later.row_number -= 1
            self.endRemoveRows()
        for node in self.root.children:
            new = wanted[(node.kind, node.result.key)]
            if new != node.result:
                node.result = new
                self._row_changed(node)
                if node.state is LoadState.LOADED:
                    self.children_requested.emit(node)
        self.add_results([r for key, r in wanted.items() if key not in self._index_by_key])

    def node(self, index: QModelIndex) -> Node:
        if index.isValid():
            return index.internalPointer()
        return self.root

    def index_of(self, node: Node, column: int = 0) -> QModelIndex:
        if node is self.root or node.parent is None:
            return QModelIndex()
        return self.createIndex(node.row(), column, node)

    def set_children(self, parent: Node, results: list[Any]) -> None:
        """The children of `parent` have come: they replace its "Loading…" row."""
        if not self._attached(parent):
            return
        kind = {Kind.PATIENT: Kind.STUDY, Kind.STUDY: Kind.SERIES, Kind.SERIES: Kind.INSTANCE}[parent.kind]
        self._drop_children(parent)
        parent.state = LoadState.LOADED
        nodes = [Node(kind, r, parent=parent, row_number=row) for row, r in enumerate(results)]
        if kind is Kind.INSTANCE:
            for node in nodes:
                node.state = LoadState.LOADED
        if nodes:
            self.beginInsertRows(self.index_of(parent), 0, len(nodes) - 1)
            parent.children = nodes
            self.endInsertRows()
        self._row_changed(parent)

    def set_children_failed(self, parent: Node, message: str) -> None:
        if not self._attached(parent):
            return
        self._drop_children(parent)
        parent.state = LoadState.FAILED
        self._insert_placeholder(parent, Kind.ERROR, message)

    def _drop_children(self, parent: Node) -> None:
        if parent.children:
            self.beginRemoveRows(self.index_of(parent), 0, len(parent.children) - 1)
            parent.children = []
            self.endRemoveRows()

    def _insert_placeholder(self, parent: Node, kind: Kind, message: str) -> None:
        self.beginInsertRows(self.index_of(parent), 0, 0)
        parent.children = [Node(kind, None, parent=parent, state=LoadState.LOADED, message=message)]
        self.endInsertRows()

    def _row_changed(self, node: Node) -> None:
        left, right = self.index_of(node, 0), self.index_of(node, len(COLUMNS) - 1)
        if left.isValid():
            self.dataChanged.emit(left, right)

    # -- local holdings (set by controllers.holdings) ---------------------------------------------
    def holding(self, uid: str) -> Holding | None:
        """How much of the row with this Study, Series or SOP Instance UID the local archive holds."""
        return self._holdings.get(uid)

    def set_holdings(self, holdings: dict[str, Holding], nodes: list[Node]) -> None:
        """New counts for `nodes` (keyed by their UID); their first column is redrawn."""
        self._holdings.update(holdings)
        rows: dict[int, tuple[Node, int, int]] = {}  # one signal per parent, over the rows changed
        for node in nodes:
            if node.parent is not None and self._attached(node):
                parent, low, high = rows.get(id(node.parent), (node.parent, node.row_number, node.row_number))
                rows[id(node.parent)] = (parent, min(low, node.row_number), max(high, node.row_number))
        roles = [Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole]
        for parent, low, high in rows.values():
            parent_index = self.index_of(parent)
            self.dataChanged.emit(self.index(low, NAME, parent_index), self.index(high, NAME, parent_index), roles)

    def retry(self, node: Node) -> None:
        """Load the children of a row whose load failed, again."""
        if node.state is LoadState.FAILED:
            node.state = LoadState.NOT_LOADED
            self.fetchMore(self.index_of(node))

    # -- QAbstractItemModel ------------------------------------------------------------------------------
    def index(self, row: int, column: int, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:
        # hasIndex()'s checks without its two calls back into rowCount() and columnCount(): views and
        # the proxy call index() some 20 times per row, and each call from C++ into Python costs
        # (measured: hasIndex alone took 1.3 s of a 5,000-row search).
        if row < 0 or not 0 <= column < _COLUMN_COUNT:
            return QModelIndex()
        if parent.isValid():
            if parent.column() != 0:
                return QModelIndex()
            children = parent.internalPointer().children
        else:
            children = self.root.children
        if row >= len(children):
            return QModelIndex()
        return self.createIndex(row, column, children[row])

    def parent(self, index: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # QAbstractItemModel.parent() is overloaded (QObject.parent)
        if not index.isValid():
            return QModelIndex()
        node: Node = index.internalPointer()
        if node.parent is None or node.parent is self.root:
            return QModelIndex()
        return self.createIndex(node.parent.row(), 0, node.parent)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self.node(parent).children)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return len(COLUMNS)

    def hasChildren(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:
        node = self.node(parent)
        if node is self.root:
            return bool(node.children)
        if parent.column() > 0:
            return False
        if node.children:
            return True
        return node.can_have_children and node.state in (LoadState.NOT_LOADED, LoadState.LOADING)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> bool:
        node = self.node(parent)
        return node is not self.root and node.can_have_children and node.state is LoadState.NOT_LOADED

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> None:
        node = self.node(parent)
        if node is self.root or node.state is not LoadState.NOT_LOADED:
            return
        # Change nothing here: views and testers call fetchMore while handling another change.
        # The "Loading…" row and the request follow as soon as control is back in the event loop.
        node.state = LoadState.LOADING
        QTimer.singleShot(0, self, lambda: self._start_loading(node))

    def _start_loading(self, node: Node) -> None:
        if node.state is not LoadState.LOADING or node.children or not self._attached(node):
            return
        self._insert_placeholder(node, Kind.LOADING, "Loading…")
        self.children_requested.emit(node)

    def _attached(self, node: Node) -> bool:
        """Still in the tree (not dropped by a new search)?"""
        while node.parent is not None:
            node = node.parent
        return node is self.root

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(COLUMNS):
            return COLUMNS[section]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node: Node = index.internalPointer()
        column = index.column()
        if role == RESULT_ROLE:
            return node.result
        if role == KIND_ROLE:
            return node.kind.value
        if node.kind in (Kind.LOADING, Kind.ERROR):
            if role == Qt.ItemDataRole.DisplayRole and column == 0:
                return node.message
            if role == Qt.ItemDataRole.ForegroundRole:
                return QBrush(QColor("#b3261e" if node.kind is Kind.ERROR else "#6b6b6b"))
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setItalic(True)
                return font
            if role == Qt.ItemDataRole.ToolTipRole and node.kind is Kind.ERROR:
                return node.message
            return None
        if column == NAME and role in (Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole):
            held = self._holdings.get(node_uid(node))
            if role == Qt.ItemDataRole.DecorationRole:
                return holding_icon(held.state) if held is not None else None
            if held is not None:
                return f"{self._text(node, column)}\n{held.text}"
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._text(node, column)
        if role == SORT_ROLE:
            return self._sort_key(node, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (SERIES, INSTANCES):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, node: Node, column: int) -> str:
        r = node.result
        if isinstance(r, StudyResult):
            return {
                NAME: _name(r.patient_name), PATIENT_ID: r.patient_id, BIRTH_DATE: _date(r.birth_date),
                STUDY_DATE: _date(r.study_date), MODALITY: "/".join(r.modalities or ()),
                DESCRIPTION: r.study_description, ACCESSION: r.accession_number,
                SERIES: _count(r.number_of_series), INSTANCES: _count(r.number_of_instances),
            }.get(column, "")
        if isinstance(r, PatientResult):
            return {
                NAME: _name(r.patient_name), PATIENT_ID: r.patient_id, BIRTH_DATE: _date(r.birth_date),
                DESCRIPTION: f"{r.number_of_studies} studies" if r.number_of_studies is not None else "",
                SERIES: _count(r.number_of_series), INSTANCES: _count(r.number_of_instances),
            }.get(column, "")
        if isinstance(r, SeriesResult):
            number = f"Series {r.series_number}" if r.series_number is not None else "Series"
            return {
                NAME: number, STUDY_DATE: _date(r.series_date), MODALITY: r.modality,
                DESCRIPTION: r.series_description or r.body_part,
                INSTANCES: _count(r.number_of_instances if r.number_of_instances is not None
                                  else (len(node.children) if node.state is LoadState.LOADED else None)),
            }.get(column, "")
        if isinstance(r, InstanceResult):
            frames = f" ({r.number_of_frames} frames)" if r.number_of_frames and r.number_of_frames > 1 else ""
            return {
                NAME: f"Instance {r.instance_number}" if r.instance_number is not None else "Instance",
                DESCRIPTION: uid_name(r.sop_class_uid) + frames,
            }.get(column, "")
        return ""

    def _sort_key(self, node: Node, column: int) -> Any:
        r = node.result
        if column in (SERIES, INSTANCES):
            text = self._text(node, column)
            return int(text) if text.isdigit() else -1
        if column == NAME and isinstance(r, (SeriesResult, InstanceResult)):
            number = r.series_number if isinstance(r, SeriesResult) else r.instance_number
            return number if number is not None else -1
        return self._text(node, column).casefold()
