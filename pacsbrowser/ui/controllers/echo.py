"""Checks that a server answers, for the window: C-ECHO for a DIMSE profile, a tiny QIDO-RS request
for a DICOMweb one (core.services.verify picks); the widgets see only its signals."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QObject, Signal

from ...core import services
from ...core.errors import DICOMNetworkError
from ...core.records import ServerProfile


class EchoController(QObject):
    started = Signal(str)  # profile name
    succeeded = Signal(str, float)  # profile name, round trip in seconds
    failed = Signal(str, str, str)  # profile name, message, DICOM detail

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._task: asyncio.Task | None = None
        self.profile: ServerProfile | None = None  # the server of the latest echo

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def echo(self, profile: ServerProfile) -> asyncio.Task:
        if self.busy:
            self._task.cancel()
        self.profile = profile
        self._task = asyncio.ensure_future(self._echo(profile))
        return self._task

    async def _echo(self, profile: ServerProfile) -> None:
        self.started.emit(profile.name)
        try:
            rtt = await services.verify(profile)
        except DICOMNetworkError as exc:
            self.failed.emit(profile.name, str(exc), exc.detail)
        else:
            self.succeeded.emit(profile.name, rtt)

    async def shutdown(self) -> None:
        if self.busy:
            self._task.cancel()
