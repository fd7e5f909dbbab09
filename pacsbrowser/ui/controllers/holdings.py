"""Keeps the results tree's "on this computer" marks true: counts what the local archive holds of
each study, series and instance row, off the GUI thread, when rows arrive and when a study changes."""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import QModelIndex, QObject, Signal

from ...core.archive import Archive
from ...core.errors import ArchiveError
from ...core.executor import run_blocking
from ...core.records import InstanceResult, SeriesResult, StudyResult
from ..models.holdings import Holding
from ..models.results import Kind, LoadState, Node, ResultsModel, node_uid

log = logging.getLogger(__name__)

Wanted = tuple[str, str, str]  # (study UID, series UID, SOP Instance UID) of one row


def count_held(archive: Archive, wanted: list[Wanted], flush: bool = False) -> dict[Wanted, int]:
    """Instances the archive holds of each row (worker thread). One series query per study and one
    instance query per series whose instance rows are asked for."""
    if flush:
        archive.flush()
    if not archive.counts()["instances"]:  # an empty archive (the first run): nothing to look up
        return dict.fromkeys(wanted, 0)
    studies: dict[str, int] | None = None
    if sum(1 for w in wanted if not w[1]) > 20:  # many study rows (a search streaming in): one query
        studies = {row.study_uid: row.instance_count for row in archive.studies()}
    by_study: dict[str, dict[str, int]] = {}
    by_series: dict[str, set[str]] = {}
    out: dict[Wanted, int] = {}
    for study_uid, series_uid, sop_uid in wanted:
        if studies is not None and not series_uid:
            out[(study_uid, "", "")] = studies.get(study_uid, 0)
            continue
        if sop_uid:
            if series_uid not in by_series:
                by_series[series_uid] = {row.sop_instance_uid for row in archive.instances(series_uid)}
            out[(study_uid, series_uid, sop_uid)] = int(sop_uid in by_series[series_uid])
            continue
        if study_uid not in by_study:
            by_study[study_uid] = {row.series_uid: row.instance_count for row in archive.series(study_uid)}
        counts = by_study[study_uid]
        out[(study_uid, series_uid, sop_uid)] = counts.get(series_uid, 0) if series_uid else sum(counts.values())
    return out


def _wanted(node: Node) -> Wanted | None:
    r = node.result
    if isinstance(r, StudyResult):
        return (r.study_instance_uid, "", "")
    if isinstance(r, SeriesResult):
        study = r.study_instance_uid or (node_uid(node.parent) if node.parent is not None else "")
        return (study, r.series_instance_uid, "")
    if isinstance(r, InstanceResult) and node.parent is not None:
        series = node.parent.result
        return (r.study_instance_uid or getattr(series, "study_instance_uid", "") or
                (node_uid(node.parent.parent) if node.parent.parent is not None else ""),
                r.series_instance_uid or series.series_instance_uid, r.sop_instance_uid)
    return None


def _expected(node: Node) -> int | None:
    r = node.result
    if isinstance(r, InstanceResult):
        return 1
    if isinstance(r, SeriesResult) and r.number_of_instances is None and node.state is LoadState.LOADED:
        return sum(1 for child in node.children if child.kind is Kind.INSTANCE)
    return getattr(r, "number_of_instances", None)


class HoldingsController(QObject):
    GATHER_SECONDS = 0.2
    changed = Signal()  # some rows' holdings were updated

    def __init__(self, archive: Archive, model: ResultsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.archive = archive
        self.model = model
        self._complete: set[str] = set()  # UIDs a retrieve brought in completely
        self._pending: dict[int, Node] = {}
        self._flush_next = False
        self._task: asyncio.Task | None = None
        model.rowsInserted.connect(self._rows_inserted)

    def holding(self, uid: str) -> Holding | None:
        return self.model.holding(uid)

    def mark_complete(self, uid: str) -> None:
        """A retrieve of this study (series, instance) ended complete."""
        self._complete.add(uid)

    def refresh_study(self, study_uid: str) -> None:
        """Count again every row of this study (after files arrived)."""
        nodes: list[Node] = []
        stack = list(self.model.root.children)
        while stack:
            node = stack.pop()
            wanted = _wanted(node)
            if wanted is None:
                if node.kind is Kind.PATIENT:
                    stack.extend(node.children)
                continue
            if wanted[0] == study_uid:
                nodes.append(node)
                stack.extend(node.children)
        self._queue(nodes, flush=True)

    def _known_complete(self, node: Node) -> bool:
        """It, or the study or series it belongs to, was retrieved completely."""
        while node is not None and node.kind in (Kind.STUDY, Kind.SERIES, Kind.INSTANCE):
            if node_uid(node) in self._complete:
                return True
            node = node.parent
        return False

    def _rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        owner = self.model.node(parent)
        nodes = owner.children[first:last + 1]
        if owner.kind is Kind.SERIES and parent.isValid():  # its instance list gives its count
            nodes = [owner, *nodes]
        self._queue(nodes)

    def _queue(self, nodes: list[Node], flush: bool = False) -> None:
        for node in nodes:
            if node.kind in (Kind.STUDY, Kind.SERIES, Kind.INSTANCE):
                self._pending[id(node)] = node
        self._flush_next = self._flush_next or flush
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        # Rows stream in a few hundred at a time: count what came within a moment together (files
        # that arrived are counted at once).
        await asyncio.sleep(0 if self._flush_next else self.GATHER_SECONDS)
        while self._pending:
            nodes = list(self._pending.values())
            self._pending.clear()
            flush, self._flush_next = self._flush_next, False
            wanted = {id(n): w for n in nodes if (w := _wanted(n)) is not None}
            try:
                held = await run_blocking(count_held, self.archive, list(dict.fromkeys(wanted.values())), flush,
                                          name="holdings")
            except ArchiveError as exc:  # closed while counting (shutdown)
                log.debug("holdings not counted: %s", exc)
                return
            updates: dict[str, Holding] = {}
            for node in nodes:
                key = wanted.get(id(node))
                if key is None:
                    continue
                uid = node_uid(node)
                updates[uid] = Holding(held[key], _expected(node), self._known_complete(node))
            self.model.set_holdings(updates, nodes)
            self.changed.emit()

    async def shutdown(self) -> None:
        self._pending.clear()
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=5)
