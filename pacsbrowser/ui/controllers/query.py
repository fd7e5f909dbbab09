"""Runs queries for the window: one search in flight at a time, children of expanded rows on demand.

Results reach the widgets in batches through signals; nothing here blocks the GUI thread. The
service comes from core.services: C-FIND for a DIMSE profile, QIDO-RS (paged) for a DICOMweb one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from PySide6.QtCore import QObject, Signal

from ...core import services
from ...core.errors import DICOMNetworkError
from ...core.query import FindJob
from ...core.records import FindSummary, QueryKeys, ServerProfile
from ..models.results import Kind, Node

log = logging.getLogger(__name__)


class QueryController(QObject):
    ROWS_PER_TURN = 200
    started = Signal(str, str)  # profile name, the query as sent (patient data redacted unless debug)
    batch = Signal(list)  # results, in arrival order
    finished = Signal(object)  # FindSummary
    failed = Signal(str, str)  # message, DICOM detail
    children_loaded = Signal(object, list)  # Node, results
    children_failed = Signal(object, str)  # Node, message

    def __init__(self, parent: QObject | None = None, *, limit: int | None = 5000) -> None:
        super().__init__(parent)
        self.limit = limit
        self._search: asyncio.Task | None = None
        self._stream: Any = None
        self._children: set[asyncio.Task] = set()
        self.profile: ServerProfile | None = None
        self.last_outcome: FindSummary | None = None

    @property
    def running(self) -> bool:
        return self._search is not None and not self._search.done()

    def search(self, profile: ServerProfile, keys: QueryKeys) -> asyncio.Task:
        """Start a search (a running one is cancelled first)."""
        self.cancel()
        self.profile = profile
        self._search = asyncio.ensure_future(self._run(profile, keys))
        return self._search

    def cancel(self) -> None:
        """Stop the running search (C-CANCEL, or no further QIDO-RS page), and keep what came."""
        if self._stream is not None and self.running:
            self._stream.cancel()

    async def _run(self, profile: ServerProfile, keys: QueryKeys) -> None:
        service = services.query_service(profile)
        try:
            stream = service.find(keys, limit=self.limit)  # prepares the query: ValueError for bad keys
        except ValueError as exc:
            self.failed.emit(str(exc), "")
            return
        self.started.emit(profile.name, stream.prepared.describe())
        self._stream = stream
        try:
            async for results in stream.batches():
                # Hand rows to the window a few hundred at a time, giving the loop a turn between
                # them: inserting thousands at once stalls the window for a second.
                for start in range(0, len(results), self.ROWS_PER_TURN):
                    self.batch.emit(results[start : start + self.ROWS_PER_TURN])
                    if start + self.ROWS_PER_TURN < len(results):
                        await asyncio.sleep(0)
        except DICOMNetworkError as exc:
            self.failed.emit(str(exc), exc.detail)
        except asyncio.CancelledError:
            raise
        finally:
            self._stream = None
        if stream.outcome is not None:
            self.last_outcome = stream.outcome
            self.finished.emit(stream.outcome)

    # -- children of expanded rows -------------------------------------------------------------------
    def load_children(self, node: Node) -> asyncio.Task | None:
        if self.profile is None:
            self.children_failed.emit(node, "No server selected")
            return None
        task = asyncio.ensure_future(self._load(self.profile, node))
        self._children.add(task)
        task.add_done_callback(self._children.discard)
        return task

    async def _load(self, profile: ServerProfile, node: Node) -> None:
        result = node.result
        service = services.query_service(profile)
        started = time.perf_counter()
        stream: FindJob[Any]
        try:
            if node.kind is Kind.PATIENT:
                stream = service.find_studies(QueryKeys.studies(patient_id=result.patient_id))
            elif node.kind is Kind.STUDY:
                stream = service.find_series(result.study_instance_uid)
            else:
                stream = service.find_instances(result.study_instance_uid, result.series_instance_uid)
            results = await stream.collect()
        except DICOMNetworkError as exc:
            self.children_failed.emit(node, f"Could not load: {exc}")
            return
        except ValueError as exc:
            self.children_failed.emit(node, f"Could not load: {exc}")
            return
        results.sort(key=_child_order)
        log.debug("%d children in %.0f ms", len(results), (time.perf_counter() - started) * 1000)
        self.children_loaded.emit(node, results)

    async def shutdown(self) -> None:
        self.cancel()
        tasks = [t for t in (self._search, *self._children) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


def _child_order(result: Any) -> tuple:
    number = getattr(result, "series_number", None)
    if number is None:
        number = getattr(result, "instance_number", None)
    date_value = getattr(result, "study_date", None)
    return (date_value.toordinal() if date_value else 0, number if number is not None else 1 << 30)
