""""This computer" for the window: searching, listing, deleting and importing into the local
archive, every read and write on a worker thread (core.executor), results back through signals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ...core.archive import Archive, DeleteReport
from ...core.archive import search as archive_search
from ...core.errors import ArchiveError
from ...core.executor import run_blocking
from ...core.filescan import FileScan, Unusable
from ...core.records import InstanceResult, PatientResult, QueryKeys, SeriesResult, StudyResult
from ..models.results import Kind, Node

log = logging.getLogger(__name__)


class LocalController(QObject):
    REFRESH_SECONDS = 0.5  # at most this often while images arrive
    ROWS_PER_TURN = 200

    results = Signal(list)  # PatientResult or StudyResult of a search, all at once
    finished = Signal(int, float)  # how many, seconds
    refreshed = Signal(list)  # the current search again, after the archive changed
    failed = Signal(str, str)  # message, detail
    children_loaded = Signal(object, list)  # Node, results
    children_failed = Signal(object, str)
    counts_changed = Signal(dict)  # Archive.counts()
    deleted = Signal(object)  # DeleteReport (totals of one delete request)
    imported = Signal(int, list)  # instances imported, list[Unusable] of those that could not be
    folder_found = Signal(object)  # Path of a study or series folder to show
    files_found = Signal(object, object)  # what they are for (opaque), FileScan of the archived files

    def __init__(self, archive: Archive, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.archive = archive
        self.keys: QueryKeys | None = None  # the last search (refreshed as the archive changes)
        self._tasks: set[asyncio.Task] = set()
        self._refresh: asyncio.Task | None = None
        self._search_task: asyncio.Task | None = None
        self._dirty = False

    def _spawn(self, coro) -> asyncio.Task:
        """Run `coro` as a task; once the archive is closed (the window is closing), nothing runs."""
        if self.archive.closed:
            coro.close()
            coro = asyncio.sleep(0)
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _read(self, fn, *args: Any, name: str = "archive-read") -> Any:
        return await run_blocking(fn, *args, name=name)

    # -- search and children ---------------------------------------------------------------------------
    def search(self, keys: QueryKeys) -> asyncio.Task:
        """Search the archive (a search under way is dropped)."""
        if self._search_task is not None and not self._search_task.done():
            self._search_task.cancel()
        self.keys = keys
        self._search_task = self._spawn(self._search(keys))
        return self._search_task

    async def _search(self, keys: QueryKeys) -> None:
        started = time.perf_counter()
        try:
            found = await self._read(archive_search.search, self.archive, keys, name="archive-search")
        except (ArchiveError, ValueError) as exc:
            if self.archive.closed:
                return
            self.failed.emit(f"This computer's archive cannot be searched: {exc}", "")
            return
        # a few hundred rows at a time, with a turn of the loop between (thousands at once stall the window)
        for first in range(0, len(found), self.ROWS_PER_TURN):
            self.results.emit(found[first : first + self.ROWS_PER_TURN])
            if first + self.ROWS_PER_TURN < len(found):
                await asyncio.sleep(0)
        self.finished.emit(len(found), time.perf_counter() - started)

    def load_children(self, node: Node) -> asyncio.Task:
        return self._spawn(self._children(node))

    async def _children(self, node: Node) -> None:
        r = node.result
        if node.kind is Kind.PATIENT:
            fn, arg = archive_search.studies_of_patient, r
        elif node.kind is Kind.STUDY:
            fn, arg = archive_search.series_of_study, r.study_instance_uid
        else:
            fn, arg = archive_search.instances_of_series, r.series_instance_uid
        try:
            found = await self._read(fn, self.archive, arg)
        except ArchiveError as exc:
            self.children_failed.emit(node, f"Could not load: {exc}")
            return
        self.children_loaded.emit(node, found)

    # -- the archive changed -------------------------------------------------------------------------------
    def archive_changed(self, *_args: Any) -> None:
        """Images arrived or were removed: refresh the counts and the current search, at most every
        REFRESH_SECONDS (a modality pushing 500 images makes a few refreshes, not 500)."""
        self._dirty = True
        if self._refresh is None or self._refresh.done():
            self._refresh = self._spawn(self._refresh_soon())

    async def _refresh_soon(self) -> None:
        while self._dirty:
            self._dirty = False
            await self.update_counts()
            if self.keys is not None:
                try:
                    found = await self._read(archive_search.search, self.archive, self.keys, name="archive-search")
                except (ArchiveError, ValueError) as exc:
                    log.warning("cannot refresh the local search: %s", exc)
                else:
                    self.refreshed.emit(found)
            await asyncio.sleep(self.REFRESH_SECONDS)

    async def update_counts(self) -> None:
        try:
            counts = await self._read(self.archive.counts, name="archive-counts")
        except ArchiveError:
            return
        self.counts_changed.emit(counts)

    def refresh_counts(self) -> asyncio.Task:
        return self._spawn(self.update_counts())

    # -- delete, show, import ----------------------------------------------------------------------------
    def delete(self, items: list[Any]) -> asyncio.Task:
        """Delete studies and series (StudyResult, SeriesResult; a patient's studies with it)."""
        return self._spawn(self._delete(list(items)))

    async def _delete(self, items: list[Any]) -> None:
        total = DeleteReport()

        def work() -> None:
            for item in items:
                if isinstance(item, PatientResult):
                    reports = [self.archive.delete_study(s.study_instance_uid)
                               for s in archive_search.studies_of_patient(self.archive, item)]
                elif isinstance(item, StudyResult):
                    reports = [self.archive.delete_study(item.study_instance_uid)]
                elif isinstance(item, SeriesResult):
                    reports = [self.archive.delete_series(item.series_instance_uid)]
                else:
                    continue
                for report in reports:
                    total.instances += report.instances
                    total.bytes += report.bytes
                    total.kept += report.kept

        try:
            await run_blocking(work, name="archive-delete")
        except ArchiveError as exc:
            self.failed.emit(f"Could not delete from this computer: {exc}", "")
        self.deleted.emit(total)
        self.archive_changed()

    def find_folder(self, item: Any) -> asyncio.Task:
        """The folder holding a study, series or instance (emitted as `folder_found`)."""
        return self._spawn(self._find_folder(item))

    def _rows_of(self, item: Any) -> list:
        """The archive's instance rows of a patient, study, series or instance result (worker thread)."""
        archive = self.archive
        if isinstance(item, PatientResult):
            return [row for study in archive_search.studies_of_patient(archive, item)
                    for row in archive.instances(study_uid=study.study_instance_uid)]
        if isinstance(item, StudyResult):
            return archive.instances(study_uid=item.study_instance_uid)
        if isinstance(item, SeriesResult):
            return archive.instances(item.series_instance_uid)
        if isinstance(item, InstanceResult):
            row = archive.instance(item.sop_instance_uid)
            return [row] if row is not None else []
        return []

    async def _find_folder(self, item: Any) -> None:
        def folder() -> Path | None:
            if not isinstance(item, (InstanceResult, SeriesResult, StudyResult)):
                return self.archive.root
            rows = self._rows_of(item)
            if not rows:
                return None
            return rows[0].path.parent.parent if isinstance(item, StudyResult) else rows[0].path.parent

        try:
            path = await run_blocking(folder, name="archive-folder")
        except ArchiveError as exc:
            self.failed.emit(str(exc), "")
            return
        if path is not None:
            self.folder_found.emit(path)

    def find_files(self, items: list[Any], purpose: Any = None) -> asyncio.Task:
        """The archived files of patients, studies, series or instances (emitted as `files_found`)."""
        return self._spawn(self._find_files(list(items), purpose))

    async def _find_files(self, items: list[Any], purpose: Any) -> None:
        def rows() -> list:
            found = [row for item in items for row in self._rows_of(item)]
            return list({row.path: row for row in found}.values())

        try:
            found = await run_blocking(rows, name="archive-files")
        except ArchiveError as exc:
            self.failed.emit(str(exc), "")
            return
        self.files_found.emit(purpose, FileScan(files=[r.path for r in found], bytes=sum(r.size for r in found)))

    def import_files(self, scan: FileScan) -> asyncio.Task:
        return self._spawn(self._import(scan))

    async def _import(self, scan: FileScan) -> None:
        problems: list[Unusable] = []

        def work() -> int:
            done = 0
            for path in scan.files:
                try:
                    self.archive.import_file(path, source_ae="")
                    done += 1
                except (OSError, ValueError, ArchiveError) as exc:  # MalformedDataset is a ValueError
                    problems.append(Unusable(path, str(exc), damaged=True))
            return done

        done = await run_blocking(work, name="archive-import")
        self.imported.emit(done, problems)
        self.archive_changed()

    async def shutdown(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
