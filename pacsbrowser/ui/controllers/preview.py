"""Frames for the preview, rendered off the GUI thread by core.frames (each file decoded once,
then only the display pipeline of one frame per window or frame change).

Requests are "latest wins": while one frame renders, newer requests replace the waiting one, so a
fast wheel or drag never queues work. Neighbours of the frame shown are rendered ahead with the
same window (`prefetch`) into a small cache of finished images, which keeps scrolling through a
series fluid.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from ...core.frames import DecodedCache, FrameKey, ImageInfo, render_frame
from ...core.imaging import Thumbnail
from ..images import to_qimage
from ..workers import WorkerThreads

log = logging.getLogger(__name__)

RENDERED_BYTES = 96 * 1024 * 1024  # finished frames kept for scrolling back and forth


@dataclass
class Frame:
    key: FrameKey
    thumbnail: Thumbnail
    info: ImageInfo
    image: QImage | None = field(default=None, repr=False)  # None for a placeholder

    @property
    def nbytes(self) -> int:
        return int(self.thumbnail.pixels.nbytes) + (self.image.sizeInBytes() if self.image is not None else 0)


def _frame(cache: DecodedCache, key: FrameKey, path: Path) -> Frame:
    """Worker thread: the frame and its QImage (QImage may be used off the GUI thread), in the
    format the painter scales fastest (grey would be converted at every paint)."""
    thumbnail, info = render_frame(cache, key, path)
    image = None
    if not thumbnail.is_placeholder:
        image = to_qimage(thumbnail.pixels).convertToFormat(QImage.Format.Format_RGB32)
    return Frame(key, thumbnail, info, image)


# --------------------------------------------------------------------------------------------
# GUI side


class PreviewRenderer(QObject):
    """Renders frames on worker threads: `request` (latest wins) and `prefetch` (ahead of use)."""

    rendered = Signal(object)  # Frame

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.decoded = DecodedCache()
        self._frames: OrderedDict[FrameKey, Frame] = OrderedDict()
        self._frame_bytes = 0
        self._next: tuple[FrameKey, Path] | None = None
        self._ahead: deque[tuple[FrameKey, Path]] = deque()
        self._render_task: asyncio.Task | None = None
        self._prefetch_task: asyncio.Task | None = None
        self._closed = False
        self._threads = WorkerThreads(2, "preview")  # not a thread per frame: see ui/workers.py
        self.renders = 0  # frames rendered (for tests and figures)

    def cached(self, key: FrameKey) -> Frame | None:
        frame = self._frames.get(key)
        if frame is not None:
            self._frames.move_to_end(key)
        return frame

    def request(self, key: FrameKey, path: Path) -> None:
        """Render `key` soon; a request still waiting is replaced. A frame already rendered is
        emitted at once."""
        if self._closed:
            return
        frame = self.cached(key)
        if frame is not None:
            self._next = None
            self.rendered.emit(frame)
            return
        self._next = (key, path)
        if self._render_task is None or self._render_task.done():
            self._render_task = asyncio.ensure_future(self._render_loop())

    def prefetch(self, items: list[tuple[FrameKey, Path]]) -> None:
        """Render these ahead, in order, instead of what was asked before."""
        if self._closed:
            return
        self._ahead = deque(item for item in items if item[0] not in self._frames)
        if self._ahead and (self._prefetch_task is None or self._prefetch_task.done()):
            self._prefetch_task = asyncio.ensure_future(self._prefetch_loop())

    async def _render_loop(self) -> None:
        while self._next is not None and not self._closed:
            key, path = self._next
            self._next = None
            frame = self.cached(key) or await self._render(key, path)
            self.rendered.emit(frame)

    async def _prefetch_loop(self) -> None:
        while self._ahead and not self._closed:
            key, path = self._ahead.popleft()
            if key not in self._frames:
                await self._render(key, path)

    async def _render(self, key: FrameKey, path: Path) -> Frame:
        frame = await self._threads.run(_frame, self.decoded, key, path)
        self.renders += 1
        self._keep(frame)
        return frame

    def _keep(self, frame: Frame) -> None:
        old = self._frames.pop(frame.key, None)
        if old is not None:
            self._frame_bytes -= old.nbytes
        self._frames[frame.key] = frame
        self._frame_bytes += frame.nbytes
        while self._frame_bytes > RENDERED_BYTES and len(self._frames) > 1:
            _, dropped = self._frames.popitem(last=False)
            self._frame_bytes -= dropped.nbytes

    async def shutdown(self) -> None:
        self._closed = True
        self._next = None
        self._ahead.clear()
        tasks = [t for t in (self._render_task, self._prefetch_task) if t is not None and not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)  # each step is one frame: they end soon
        await self._threads.shutdown()
        self._frames.clear()
        self.decoded.clear()
