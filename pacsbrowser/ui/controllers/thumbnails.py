"""Fills the thumbnails model from the local archive: what it holds for the study (or series)
shown, read off the GUI thread, then the thumbnails, from the disk cache on a worker thread when
they are there, else rendered by core's ThumbnailService on its worker processes.

Showing another study drops what was under way for the previous one. `archive_changed(study)`
for the study shown re-reads the archive (one read at a time; calls that come meanwhile make one
more read after it) and renders only the instances that are new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ...core.archive import Archive, InstanceRow, SeriesRow
from ...core.errors import ArchiveError
from ...core.frames import ImageInfo, read_info
from ...core.imaging import DEFAULT_SIZE, Thumbnail
from ...core.thumbcache import ThumbnailCache
from ...core.thumbnails import ThumbnailRequest, ThumbnailService
from ..models.thumbnails import ThumbnailsModel, Tile
from ..workers import WorkerThreads

log = logging.getLogger(__name__)

CACHE_CHUNK = 24  # cached thumbnails read per worker call (each chunk shows at once)


class ThumbnailsController(QObject):
    loaded = Signal(str, str)  # study UID, series UID ("" for the whole study): the archive was read
    progress = Signal(int, int)  # thumbnails ready, instances shown
    failed = Signal(str)  # the archive could not be read

    def __init__(self, archive: Archive, model: ThumbnailsModel, parent: QObject | None = None, *,
                 size: int = DEFAULT_SIZE, processes: bool = True) -> None:
        super().__init__(parent)
        self.archive = archive
        self.model = model
        self.size = size
        self.processes = processes
        self.cache = ThumbnailCache(Path(archive.root) / "thumbnails")
        self._service: ThumbnailService | None = None
        self._threads = WorkerThreads(1, "thumbnails")  # archive reads, cached thumbnails
        self._pending: deque[Tile] = deque()  # new tiles, not yet looked up in the cache
        self._queue: deque[Tile] = deque()  # cache misses not yet handed to the service
        self._pump: asyncio.Task | None = None
        self._read: asyncio.Task | None = None
        self._again = False
        self._closed = False
        self.timings: dict[str, float] = {}  # "shown", "first", "all": perf_counter() stamps
        self.info = ImageInfo()  # the header of the study's first file: description and date

    # -- what is shown -----------------------------------------------------------------------
    def show_study(self, study_uid: str, series_uid: str = "") -> None:
        """Show what the archive holds for the study (or only that series); no network."""
        if self._closed:
            return
        if (study_uid, series_uid) == (self.model.study_uid, self.model.series_uid):
            self.archive_changed(study_uid)  # the same again: only what is new
            return
        self._stop_work()
        self.model.reset(study_uid, series_uid)
        self.info = ImageInfo()
        self.timings = {"shown": time.perf_counter()}
        if study_uid:
            self._start_read()

    def clear(self) -> None:
        self.show_study("")

    def archive_changed(self, study_uid: str) -> None:
        """The archive's holdings of `study_uid` changed: add what is new if it is shown."""
        if self._closed or not study_uid or study_uid != self.model.study_uid:
            return
        if self._read is not None and not self._read.done():
            self._again = True
            return
        self._start_read()

    def _start_read(self) -> None:
        self._again = False
        self._read = asyncio.ensure_future(self._read_archive(self.model.study_uid, self.model.series_uid))

    async def _read_archive(self, study_uid: str, series_uid: str) -> None:
        while True:
            try:
                series, instances, info = await self._threads.run(
                    _holdings, self.archive, study_uid, series_uid, not self.model.rowCount())
            except ArchiveError as exc:
                self.failed.emit(str(exc))
                return
            if (study_uid, series_uid) != (self.model.study_uid, self.model.series_uid):
                return  # another study is shown now
            if info is not None:
                self.info = info
            new = self.model.merge(series, instances)
            self.loaded.emit(study_uid, series_uid)
            self._emit_progress()
            if new:
                self._pending.extend(new)
                if self._pump is None or self._pump.done():
                    self._pump = asyncio.ensure_future(self._render_pending())
            if not self._again:
                return
            self._again = False

    # -- thumbnails --------------------------------------------------------------------------
    async def _render_pending(self) -> None:
        while self._pending:
            batch = list(self._pending)
            self._pending.clear()
            misses = await self._from_cache(batch)
            if not misses:
                continue  # all cached; anything that arrived meanwhile goes round again
            service = self._ensure_service()
            by_path = {}
            requests = self._requests(misses, by_path)
            async with contextlib.aclosing(service.thumbnails(requests, self.size)) as stream:
                async for path, thumbnail in stream:
                    self._deliver(by_path.get(path), thumbnail)

    async def _from_cache(self, tiles: list[Tile]) -> list[Tile]:
        """Show the cached thumbnails of `tiles` (read on a worker thread); returns the misses."""
        misses: list[Tile] = []
        for start in range(0, len(tiles), CACHE_CHUNK):
            chunk = tiles[start:start + CACHE_CHUNK]
            items = [(t.sop_instance_uid, t.path) for t in chunk]
            found = await self._threads.run(_cached, self.cache, items, self.size)
            for tile, thumbnail in zip(chunk, found):
                if thumbnail is None:
                    misses.append(tile)
                else:
                    self._deliver(tile, thumbnail)
        return misses

    def _requests(self, misses: list[Tile], by_path: dict[Path, Tile]) -> Iterator[ThumbnailRequest]:
        """The misses, then whatever arrives meanwhile (read lazily by the service)."""
        self._queue = deque(misses)
        while self._queue or self._pending:
            tile = self._queue.popleft() if self._queue else self._pending.popleft()
            if tile.path is None or self.model.tile_of(tile.sop_instance_uid) is not tile:
                continue
            by_path[tile.path] = tile
            yield ThumbnailRequest(tile.path, tile.sop_instance_uid)

    def prioritize(self, tiles: list[Tile]) -> None:
        """Render these first (the ones on screen), in this order, before the rest waiting."""
        first = set(map(id, tiles))
        for waiting in (self._queue, self._pending):
            if waiting and first:
                ahead = [t for t in waiting if id(t) in first]
                if ahead:
                    rest = [t for t in waiting if id(t) not in first]
                    waiting.clear()
                    waiting.extend(ahead + rest)

    def _deliver(self, tile: Tile | None, thumbnail: Thumbnail) -> None:
        if tile is None or not self.model.set_thumbnail(tile.sop_instance_uid, thumbnail):
            return
        self._emit_progress()

    def _emit_progress(self) -> None:
        total, ready = self.model.counts()
        now = time.perf_counter()
        if ready and "first" not in self.timings:
            self.timings["first"] = now
        if total and ready == total:
            self.timings.setdefault("all", now)
        else:
            self.timings.pop("all", None)
        self.progress.emit(ready, total)

    def _ensure_service(self) -> ThumbnailService:
        if self._service is None:
            self._service = ThumbnailService(cache=self.cache, processes=self.processes)
        return self._service

    @property
    def busy(self) -> bool:
        return any(t is not None and not t.done() for t in (self._read, self._pump))

    # -- stopping ----------------------------------------------------------------------------
    def _stop_work(self) -> list[asyncio.Task]:
        self._pending.clear()
        self._queue.clear()
        self._again = False
        tasks = [t for t in (self._read, self._pump) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        self._read = self._pump = None
        return tasks

    async def shutdown(self) -> None:
        """Stop rendering and the worker processes."""
        self._closed = True
        tasks = self._stop_work()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await self._threads.shutdown()
        if self._service is not None:
            await self._service.aclose()
            self._service = None


def _holdings(archive: Archive, study_uid: str, series_uid: str,
              with_info: bool) -> tuple[list[SeriesRow], list[InstanceRow], ImageInfo | None]:
    """The archive's series and instances of the study (or series); with `with_info`, what the
    header of its first file says too."""
    series = archive.series(study_uid)
    if series_uid:
        series = [s for s in series if s.series_uid == series_uid]
        instances = archive.instances(series_uid)
    else:
        instances = archive.instances(study_uid=study_uid)
    info = None
    if with_info and instances:  # a file of the first series (all say the same of the study)
        first = series[0].series_uid if series else ""
        info = read_info(next((i.path for i in instances if i.series_uid == first), instances[0].path))
    return series, instances, info


def _cached(cache: ThumbnailCache, items: list[tuple[str, Path | None]], size: int) -> list[Thumbnail | None]:
    out: list[Thumbnail | None] = []
    for uid, path in items:
        thumbnail = cache.get(uid, size, path) if uid and path is not None else None
        if thumbnail is not None:
            thumbnail.pixels.flags.writeable = False
        out.append(thumbnail)
    return out
