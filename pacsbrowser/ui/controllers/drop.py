"""Files and folders dropped on the window: read them off the GUI thread, then, once the user has
confirmed, ask for a send (`send_requested`) or import them into this computer's archive."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ...core.executor import run_blocking
from ...core.filescan import FileScan, scan_paths
from ...core.records import ServerProfile

LOCAL = "this computer"  # the drop target that imports into the local archive


class DropController(QObject):
    scanning = Signal(int)  # files looked at so far
    scanned = Signal(object, object)  # target (ServerProfile or LOCAL), FileScan
    send_requested = Signal(object, list)  # ServerProfile, list[Path]: the good files, after confirmation
    import_requested = Signal(object)  # FileScan whose files go into the local archive

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._task: asyncio.Task | None = None
        self._stop = threading.Event()

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def drop(self, target: Any, paths: list[Path]) -> asyncio.Task:
        """Read what was dropped (a scan under way is stopped first)."""
        self.cancel()
        self._stop = threading.Event()
        self._task = asyncio.ensure_future(self._scan(target, list(paths), self._stop))
        return self._task

    async def _scan(self, target: Any, paths: list[Path], stop: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        last = [0.0]

        def progress(count: int) -> None:  # worker thread: tell the loop now and then
            now = loop.time()
            if now - last[0] > 0.2:
                last[0] = now
                loop.call_soon_threadsafe(self.scanning.emit, count)

        scan = await run_blocking(scan_paths, paths, stop=stop, on_file=progress, name="drop-scan")
        if not scan.stopped:
            self.scanned.emit(target, scan)

    def confirm(self, target: Any, scan: FileScan) -> None:
        """The user said yes: send, or import into this computer."""
        if not scan.files:
            return
        if isinstance(target, ServerProfile):
            self.send_requested.emit(target, list(scan.files))
        elif target == LOCAL:
            self.import_requested.emit(scan)

    def cancel(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        self.cancel()
        if self.busy:
            await asyncio.wait([self._task], timeout=10)
