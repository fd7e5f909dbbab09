"""Runs the demo PACS (core.demo) for the window: started on request or when its profile exists,
stopped with the application."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ...core.config import ProfileStore
from ...core.demo import PROFILE_NAME, DemoPacs
from ...core.errors import PacsbrowserError
from ...core.records import ServerProfile

log = logging.getLogger(__name__)


class DemoController(QObject):
    started = Signal()  # creating (the first time) and starting
    ready = Signal(object)  # ServerProfile of the running demo PACS
    failed = Signal(str, str)  # message, detail

    def __init__(self, store: ProfileStore, root: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.demo = DemoPacs(root, store=store)
        self._task: asyncio.Task | None = None

    @staticmethod
    def has_profile(profiles: list[ServerProfile]) -> bool:
        return any(p.name == PROFILE_NAME for p in profiles)

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def running(self) -> bool:
        return self.demo.running

    def start(self) -> asyncio.Task | None:
        if self.busy or self.running:
            return self._task
        self._task = asyncio.ensure_future(self._start())
        return self._task

    async def _start(self) -> None:
        self.started.emit()
        try:
            profile = await self.demo.start()
        except (PacsbrowserError, OSError, ValueError) as exc:
            log.error("the demo PACS could not be started: %s", exc)
            self.failed.emit("The demo PACS could not be started", str(exc))
            return
        self.ready.emit(profile)

    async def shutdown(self) -> None:
        if self.busy and self._task is not None:
            await asyncio.wait([self._task], timeout=30)
        await self.demo.stop()
