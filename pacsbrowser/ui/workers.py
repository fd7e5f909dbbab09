"""A few worker threads kept for the life of a window part, for many short blocking jobs (reading
the archive index, cached thumbnails, rendering preview frames).

core.executor starts a thread per call, and Thread.start() returns only once the new thread runs:
when other threads and processes keep the CPU and the GIL busy, that wait on the GUI thread was
the longest stall measured while scrolling the preview (up to 200 ms). Threads started once avoid
it; they are shut down with their owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..core import executor

T = TypeVar("T")


class WorkerThreads:
    def __init__(self, count: int, name: str) -> None:
        self.count = count
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on one of the threads (started on first use); its result or exception."""
        if self._closed:
            raise RuntimeError(f"the {self.name} threads are shut down")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.count, thread_name_prefix=f"pacsbrowser-{self.name}")
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    async def shutdown(self) -> None:
        """Drop the jobs not started; wait for the running ones (short by design) and the threads."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            await executor.run_blocking(pool.shutdown, True, name=f"{self.name}-shutdown")
