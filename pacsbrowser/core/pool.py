"""A pool of associations with one PACS: at most N open at once, each used by one task at a time,
reused from one request to the next.

    async with ConnectionPool(profile, max_connections=4) as pool:
        async with pool.connection(contexts) as client:
            ... run_blocking(something, client.association) ...

Associations are keyed by the presentation contexts they were opened with: a task asking for the
same contexts gets an idle association back; asking for others when the pool is full releases an
idle association of another kind to make room. An association that fails (an exception inside the
`async with`, or no longer established at its end) is aborted and not given to anybody again.
Association establishment retries per the profile's policy (DICOMClient.associate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from .client import DICOMClient
from .errors import DICOMNetworkError
from .records import ServerProfile

log = logging.getLogger(__name__)

ContextKey = tuple[tuple[str, tuple[str, ...]], ...]


def context_key(contexts: Sequence[Any]) -> ContextKey:
    return tuple((str(cx.abstract_syntax), tuple(str(ts) for ts in cx.transfer_syntax)) for cx in contexts)


class PoolClosed(DICOMNetworkError):
    def __init__(self) -> None:
        super().__init__("The connection pool is closed")


class ConnectionPool:
    """Up to `max_connections` associations with the PACS of `profile` (see the module doc)."""

    def __init__(
        self,
        profile: ServerProfile,
        max_connections: int = 4,
        *,
        client_factory: Callable[[ServerProfile], DICOMClient] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("a pool needs at least one connection")
        self.profile = profile
        self.max_connections = max_connections
        self._factory = client_factory or DICOMClient.from_profile
        self._cond: asyncio.Condition | None = None
        self._idle: list[tuple[ContextKey, DICOMClient]] = []
        self._busy: set[DICOMClient] = set()
        self._slots = 0  # open or opening associations
        self._closed = False
        self.opened = 0  # associations opened over the pool's life (tests and statistics)
        self.peak = 0  # most associations in use at once

    def __repr__(self) -> str:
        return (f"<ConnectionPool {self.profile.called_ae}@{self.profile.host}:{self.profile.port} "
                f"{len(self._busy)} busy, {len(self._idle)} idle, max {self.max_connections}>")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def open_connections(self) -> int:
        return len(self._busy) + len(self._idle)

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    @asynccontextmanager
    async def connection(self, contexts: Sequence[Any], **associate_kwargs: Any) -> AsyncIterator[DICOMClient]:
        """An associated DICOMClient for `contexts`, its lock held, for this task alone."""
        client = await self._acquire(list(contexts), associate_kwargs)
        healthy = False
        try:
            async with client.lock:
                yield client
            healthy = client.is_associated
        finally:
            await self._give_back(client, context_key(contexts), healthy)

    async def _acquire(self, contexts: list[Any], kwargs: dict[str, Any]) -> DICOMClient:
        key = context_key(contexts)
        cond = self._condition()
        victim: DICOMClient | None = None
        async with cond:
            while True:
                if self._closed:
                    raise PoolClosed()
                same = next((i for i, (idle_key, _) in enumerate(self._idle) if idle_key == key), None)
                if same is not None:
                    _, idle = self._idle.pop(same)
                    if idle.is_associated:
                        self._use(idle)
                        return idle
                    idle.abort()  # the peer ended it while it was idle
                    self._slots -= 1
                    continue
                if self._slots < self.max_connections:
                    self._slots += 1
                    break
                if self._idle:  # full, with an idle association of another kind: replace it
                    _, victim = self._idle.pop(0)
                    break
                await cond.wait()  # a busy association comes back within its DIMSE timeout
        client: DICOMClient | None = None
        try:
            if victim is not None:
                await _release_quietly(victim)
            client = self._factory(self.profile)
            await client.associate(contexts=contexts, **kwargs)
        except BaseException:
            if victim is not None:
                victim.abort()
            if client is not None:
                client.abort()
            async with cond:
                self._slots -= 1
                cond.notify_all()
            raise
        self.opened += 1
        async with cond:
            if self._closed:
                self._slots -= 1
                client.abort()
                raise PoolClosed()
            self._use(client)
        return client

    def _use(self, client: DICOMClient) -> None:
        self._busy.add(client)
        self.peak = max(self.peak, len(self._busy))

    async def _give_back(self, client: DICOMClient, key: ContextKey, healthy: bool) -> None:
        cond = self._condition()
        keep = healthy and not self._closed
        if not keep:
            client.abort()
        async with cond:
            self._busy.discard(client)
            if keep:
                self._idle.append((key, client))
            else:
                self._slots -= 1
            cond.notify_all()

    def abort_all(self) -> None:
        """Abort every association now, busy ones too (cancel): their blocking calls return."""
        for client in list(self._busy):
            client.abort()
        for _, client in self._idle:
            client.abort()

    async def close(self) -> None:
        """Release the idle associations; busy ones are aborted when given back. Idempotent."""
        self._closed = True
        cond = self._condition()
        async with cond:
            idle, self._idle = self._idle, []
            self._slots -= len(idle)
            cond.notify_all()
        await asyncio.gather(*(_release_quietly(client) for _, client in idle))

    async def __aenter__(self) -> "ConnectionPool":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort_all()
        await self.close()


async def _release_quietly(client: DICOMClient) -> None:
    try:
        await client.release()
    except Exception as exc:  # noqa: BLE001 - releasing a dead association: abort is enough
        log.debug("release failed (%s); aborting", exc)
        client.abort()


__all__ = ["ConnectionPool", "PoolClosed", "context_key"]
