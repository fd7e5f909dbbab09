"""The async face of our SCP: where retrieved (C-MOVE) and pushed images arrive, and, with
`query_retrieve=True`, a Query/Retrieve SCP serving the archive (C-FIND, C-GET, C-MOVE to the
`destinations` given) to other workstations.

    archive = Archive()
    scp = ArchiveServer(11112, "PACSBROWSER", archive)
    await scp.start()
    with scp.subscribe(show):       # every Received record, as it is indexed, to `show`
        ...
    async for received in scp:      # or: the records as a stream
        ...
    await scp.stop()

pynetdicom's threads write each instance into the archive and answer the sender at once; the
archive's indexer thread commits; then the record comes to the loop, to every subscriber and to
the `async for` stream. Records travel to the loop in groups: the indexer thread queues each one
and wakes the loop only when no delivery is already on its way (`executor.LoopPoster`;
`call_soon_threadsafe` per record woke the loop, and took the GIL, 500 times for a 500-image
C-MOVE to us). A record arrives only once its instance is in the
index, so `archive.instance(uid)` finds it.

Subscribers (a window showing what arrives, a C-MOVE job counting its instances) come and go while
the server runs; each is called on the loop, in the order they subscribed; a coroutine it returns
runs as a task; its exception is logged and stops neither the server nor the other subscribers.

The stream is for one consumer. Until someone iterates, records wait in a buffer of `buffer`
entries (oldest dropped beyond that, counted in `dropped`).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from . import validation
from .archive import Archive, StoredInstance
from .dicom.server import DicomServer, ServerSettings, StoreStats
from .errors import ListenerError
from .executor import LoopPoster, run_blocking
from .records import DEFAULT_MAX_PDU, Received, Timeouts, TLSConfiguration, validate_ae_title

log = logging.getLogger(__name__)


Subscriber = Callable[[Received], Any]


class Subscription:
    """One subscriber of an ArchiveServer: `cancel()` (or leave the `with` block) to stop it."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel: Callable[[], None] | None = cancel

    @property
    def active(self) -> bool:
        return self._cancel is not None

    def cancel(self) -> None:
        """Stop receiving; records already delivered stay delivered. Safe to call twice."""
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class ArchiveServer:
    """An SCP over `archive`, on `host`:`port` ("" = every interface; port 0 = any free
    port, see `address`). `allowed_calling_aes`: when given, other calling AE titles are rejected
    at association (calling AE title not recognised). `on_image_received`: a first subscriber.
    `query_retrieve`: also answer C-FIND, C-GET and C-MOVE from the archive; `destinations`: the
    C-MOVE destinations (AE title -> (host, port)); any other is refused (0xA801). `batched`: the
    durability of a C-GET (reply before fsync and rename, core.archive.committer), for a listener
    whose senders keep what they send (the one a C-MOVE job starts for itself), never a modality's."""

    def __init__(
        self,
        port: int,
        ae_title: str,
        archive: Archive,
        tls: TLSConfiguration | None = None,
        allowed_calling_aes: Iterable[str] | None = None,
        max_associations: int = 10,
        *,
        host: str = "",
        on_image_received: Subscriber | None = None,
        timeouts: Timeouts | None = None,
        max_pdu: int = DEFAULT_MAX_PDU,
        require_called_ae: bool = False,
        query_retrieve: bool = False,
        destinations: Mapping[str, tuple[str, int]] | None = None,
        grace: float = 5.0,
        buffer: int = 10_000,
        batched: bool = False,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be a whole number from 0 to 65535, not {port!r}")
        if max_associations < 1:
            raise ValueError("max_associations must be at least 1")
        allowed = tuple(validate_ae_title(a, "allowed calling AE title") for a in allowed_calling_aes or ())
        moves = tuple((validate_ae_title(ae, "move destination AE title"), str(host), int(port))
                      for ae, (host, port) in (destinations or {}).items())
        self.settings = ServerSettings(
            host=host, port=port, ae_title=validate_ae_title(ae_title, "listener AE title"),
            tls=validation.server_tls(tls),
            allowed_calling_aes=allowed, max_associations=max_associations, timeouts=timeouts or Timeouts(),
            max_pdu=max_pdu, require_called_ae=require_called_ae, query_retrieve=query_retrieve,
            destinations=moves, batched=batched)
        self.archive = archive
        self.grace = grace
        self.dropped = 0
        self._subscribers: dict[int, Subscriber] = {}
        self._subscription_ids = itertools.count()
        self._buffer: collections.deque[Received] = collections.deque(maxlen=max(1, buffer))
        self._poster: LoopPoster | None = None  # the indexer thread's records to the loop, in groups
        self._wake: asyncio.Event | None = None
        self._server: DicomServer | None = None
        self._stopped = True
        self._tasks: set[asyncio.Task] = set()
        self._last_stats = StoreStats()
        if on_image_received is not None:
            self.subscribe(on_image_received)

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        """The port asked for (0: any free one; `address` says which was bound)."""
        return self.settings.port

    @property
    def ae_title(self) -> str:
        return self.settings.ae_title

    def __repr__(self) -> str:
        host, port = self.address
        state = "running" if self.is_running else "stopped"
        return f"<ArchiveServer {self.ae_title}@{host or '*'}:{port} {state}>"

    @property
    def is_running(self) -> bool:
        return self._server is not None and self._server.running

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) bound while running: the port to give the PACS when `port` was 0."""
        if self._server is not None and self._server.running:
            return self._server.address
        return self.host, self.port

    def link_idle_for(self) -> float | None:
        """Seconds since any association of the running server last moved a byte (None: not running).
        What a C-MOVE's idle watch reads: an object arriving slowly is not silence."""
        server = self._server
        return server.link_activity.idle_for() if server is not None else None

    @property
    def stats(self) -> StoreStats:
        """Counters of the running server, or of the last run once stopped."""
        return self._server.stats if self._server is not None else self._last_stats

    def expect_move(self, pacs_ae: str, our_ae: str, message_id: int) -> Callable[[], None]:
        """The C-STOREs of our own C-MOVE `message_id` (from `pacs_ae`, requested as `our_ae`) are
        stored batched, as a C-GET's are: the PACS keeps what a crash would lose (README, "What a
        reply promises"). Everything else stays durable before the reply. Returns the function that
        ends it; does nothing when the listener is not running."""
        server = self._server
        if server is None:
            return lambda: None
        return server.handler.expect_move(pacs_ae, our_ae, message_id)

    async def start(self) -> None:
        """Bind and listen. Raises ListenerError (port in use, privileged port, TLS files...)."""
        if self.is_running:
            raise RuntimeError("the listener is running already")
        if self.archive.readonly or self.archive.closed:
            raise ListenerError(self.host, self.port, "the archive is not open for writing")
        self._poster = LoopPoster(asyncio.get_running_loop())
        self._wake = asyncio.Event()
        self._stopped = False
        server = DicomServer(self.settings, self.archive, on_indexed=self._on_indexed)
        try:
            await run_blocking(server.start, name="scp-start")
        except BaseException:
            self._stopped = True
            raise
        self._server = server

    async def stop(self) -> None:
        """Stop listening; running associations get `grace` seconds, then are aborted. Returns when
        what was received is indexed and handed over; the `async for` stream then ends."""
        server, self._server = self._server, None
        if server is not None:
            self._last_stats = server.stats  # the same object: it keeps counting until the end
            try:
                await run_blocking(server.shutdown, self.grace, name="scp-stop")
            finally:
                if not self.archive.closed:
                    await run_blocking(self.archive.flush, name="archive-flush")
        # Records posted by the indexer before the flush returned are queued on the loop ahead of this.
        self._stopped = True
        if self._wake is not None:
            self._wake.set()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def __aenter__(self) -> ArchiveServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- received records

    def subscribe(self, callback: Subscriber) -> Subscription:
        """Call `callback(record)` on the loop for every Received record from now on, until the
        Subscription returned is cancelled. Works whether or not the server is running."""
        key = next(self._subscription_ids)
        self._subscribers[key] = callback

        def unsubscribe() -> None:
            self._subscribers.pop(key, None)

        return Subscription(unsubscribe)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _on_indexed(self, stored: StoredInstance, replaced: bool, calling_ae: str, peer: str) -> None:
        """Indexer thread: make the record and post it to the loop."""
        info = stored.info
        record = Received(
            sop_instance_uid=info.sop_instance_uid,
            sop_class_uid=info.sop_class_uid,
            transfer_syntax_uid=stored.transfer_syntax_uid,
            study_instance_uid=info.study_uid,
            series_instance_uid=info.series_uid,
            path=Path(stored.path),
            size=stored.size,
            calling_ae=calling_ae,
            peer=peer,
            received_at=stored.received_at,
            replaced=replaced,
            modality=info.modality,
            patient_id=info.patient_id,
            patient_name=info.patient_name,
        )
        poster = self._poster
        if poster is not None:
            poster.post(self._deliver, record)  # dropped when the loop is closed: nobody is there

    def _deliver(self, record: Received) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(record)
        if self._wake is not None:
            self._wake.set()
        for callback in list(self._subscribers.values()):
            try:
                result = callback(record)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._task_done)
            except Exception:  # noqa: BLE001 - a subscriber's bug must not stop the listener
                log.exception("error in a subscriber of %r", self)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("error in a subscriber of %r: %r", self, task.exception())

    def __aiter__(self) -> AsyncIterator[Received]:
        return self.received()

    async def received(self) -> AsyncIterator[Received]:
        """Received records as they come; ends after `stop()` once the buffer is drained."""
        while True:
            while self._buffer:
                yield self._buffer.popleft()
            if self._stopped or self._wake is None:
                return
            self._wake.clear()
            if self._buffer:
                continue
            await self._wake.wait()


__all__ = ["ArchiveServer", "Received", "ServerSettings", "Subscription"]
