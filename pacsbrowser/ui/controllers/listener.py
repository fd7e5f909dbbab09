"""Our listener (Storage SCP) for the window: at most one ArchiveServer over the window's archive.

Started with the app when the settings say so, or from the menu; what it receives is counted and
announced study by study (`received`). Errors (port in use, no permission, TLS files) are kept in
words for the status bar. Nothing here blocks the GUI thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from enum import Enum

from PySide6.QtCore import QObject, Signal

from ...core.archive import Archive
from ...core.config import ConfigError, ListenerSettings, SettingsStore
from ...core.errors import ListenerError
from ...core.hostaddress import address_for_peers
from ...core.server import ArchiveServer

log = logging.getLogger(__name__)


class ListenerState(str, Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    ERROR = "error"


class ListenerController(QObject):
    state_changed = Signal()
    received = Signal(str)  # the Study Instance UID of an instance that arrived (and is indexed)

    def __init__(self, archive: Archive, settings: SettingsStore | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.archive = archive
        self.store = settings or SettingsStore()
        self.settings_error = ""
        try:
            self.settings = self.store.listener()
        except ConfigError as exc:
            self.settings = ListenerSettings()
            self.settings_error = str(exc)
        self.state = ListenerState.STOPPED
        self.error = ""  # in words, when state is ERROR
        self.error_detail = ""
        self.received_count = 0
        self._arrivals: Counter[str] = Counter()  # images by calling AE since take_arrivals()
        self._server: ArchiveServer | None = None
        self._task: asyncio.Task | None = None  # start or stop under way
        self._consumer: asyncio.Task | None = None
        self._host_for: tuple[str, str] | None = None  # (bound host, the address peers would use)

    # -- what the window shows ---------------------------------------------------------------------
    @property
    def server(self) -> ArchiveServer | None:
        """The running ArchiveServer, or None."""
        return self._server if self._server is not None and self._server.is_running else None

    @property
    def running(self) -> bool:
        return self.state is ListenerState.RUNNING

    def address(self) -> tuple[str, int]:
        """(host, port) a PACS would use to reach the listener: its bound port while running."""
        port = self._server.address[1] if self.server is not None else self.settings.port
        if self._host_for is None or self._host_for[0] != self.settings.host:
            self._host_for = (self.settings.host, address_for_peers(self.settings.host))
        return self._host_for[1], port

    def describe(self) -> str:
        """One line: who we are, where, and how it goes."""
        host, port = self.address()
        who = f"{self.settings.ae_title} @ {host}:{port}"
        if self.state is ListenerState.RUNNING:
            count = f" · {self.received_count} image{'s' if self.received_count != 1 else ''} received"
            tls = " (TLS)" if self.settings.tls else ""
            return f"Listener {who}{tls} · running{count}"
        if self.state is ListenerState.STARTING:
            return f"Listener {who} · starting…"
        if self.state is ListenerState.ERROR:
            return f"Listener {who} · not running: {self.error}"
        return f"Listener {who} · stopped"

    def take_arrivals(self) -> Counter[str]:
        """Images received by calling AE title since the last call."""
        arrivals, self._arrivals = self._arrivals, Counter()
        return arrivals

    # -- settings ---------------------------------------------------------------------------------------
    def apply(self, settings: ListenerSettings) -> asyncio.Task | None:
        """Save new settings; a running listener restarts with them. Returns the restart, if any."""
        try:
            self.store.save_listener(settings)
        except (ConfigError, OSError) as exc:
            self.settings_error = f"The listener settings could not be saved: {exc}"
            self.state_changed.emit()
            return None
        self.settings, self.settings_error = settings, ""
        if self.state in (ListenerState.RUNNING, ListenerState.STARTING) or settings.start_with_app:
            return self.restart()
        self.state_changed.emit()
        return None

    def start_if_wanted(self) -> asyncio.Task | None:
        """At the app's start: start when the settings say so."""
        return self.start() if self.settings.start_with_app else None

    # -- start and stop --------------------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        return self._after_current(self._start())

    def stop(self) -> asyncio.Task:
        return self._after_current(self._stop())

    def restart(self) -> asyncio.Task:
        async def both() -> None:
            await self._stop()
            await self._start()
        return self._after_current(both())

    def _after_current(self, coro) -> asyncio.Task:
        previous = self._task

        async def run() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            await coro

        self._task = asyncio.ensure_future(run())
        return self._task

    def _set(self, state: ListenerState, error: str = "", detail: str = "") -> None:
        if (state, error, detail) == (self.state, self.error, self.error_detail):
            return
        self.state, self.error, self.error_detail = state, error, detail
        self.state_changed.emit()

    async def _start(self) -> None:
        if self.server is not None:
            return
        s = self.settings
        self._set(ListenerState.STARTING)
        try:
            server = ArchiveServer(s.port, s.ae_title, self.archive, tls=s.tls,
                                   allowed_calling_aes=s.allowed_calling_aes or None, host=s.host)
            await server.start()
        except ListenerError as exc:
            self._set(ListenerState.ERROR, _reason(exc), exc.detail)
            log.warning("listener: %s", exc)
            return
        except (ValueError, OSError) as exc:
            self._set(ListenerState.ERROR, str(exc), repr(exc))
            return
        self._server = server
        self.received_count = 0
        self._consumer = asyncio.ensure_future(self._consume(server))
        host, port = self.address()
        log.info("listener %s running on %s:%d", s.ae_title, host, port)
        self._set(ListenerState.RUNNING)

    async def _consume(self, server: ArchiveServer) -> None:
        """The one place that reads what the server received (its record stream)."""
        async for record in server:
            self.received_count += 1
            self._arrivals[record.calling_ae] += 1
            self.received.emit(record.study_instance_uid)
            self.state_changed.emit()

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()  # the record stream ends once drained
        if self._consumer is not None:
            await asyncio.wait([self._consumer], timeout=10)
            self._consumer = None
        if self.state is not ListenerState.ERROR or server is not None:
            self._set(ListenerState.STOPPED)

    async def shutdown(self) -> None:
        await self._after_current(self._stop())


def _reason(exc: ListenerError) -> str:
    text = exc.reason
    if exc.hint:
        text += f" ({exc.hint})"
    return text
