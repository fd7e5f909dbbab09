"""What every job handle shares, whatever the protocol under it (DIMSE or DICOMweb).

- `ResultStream`: the reading side of a find job (core.query.FindJob, core.web.qido.WebFindJob):
  `batches()` once, or `async for` result by result, `collect()`, `aclose()`, `async with`. The
  job writes `_run()` (an async generator of result batches) and sets `outcome` when it ends.
- `ProgressHandle`: the handle of a retrieve job (core.retrieve.RetrieveJob,
  core.web.wado.WebRetrieveJob): it starts when first iterated or awaited (or `start()`), `async for`
  gives each new `progress`, `await` gives the `summary` or raises `error`, `aclose()` cancels and
  waits, bounded. The job writes `_main()`, `cancel()`, `summary`, `_stop_bound()` (how long to wait
  for a cancelled job) and calls `_wake()` whenever `progress` changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from typing import Any, Generic, TypeVar

R = TypeVar("R")
P = TypeVar("P")
S = TypeVar("S")


class ResultStream(Generic[R]):
    """Results read once, in batches or one by one (see the module)."""

    outcome: Any = None
    _batches: AsyncGenerator[list[R], None] | None = None
    _items: AsyncGenerator[R, None] | None = None

    def _run(self) -> AsyncGenerator[list[R], None]:
        raise NotImplementedError

    def batches(self) -> AsyncGenerator[list[R], None]:
        """Results in batches as they arrive."""
        if self._batches is not None:
            raise RuntimeError("a find is read once")
        self._batches = self._run()
        return self._batches

    def __aiter__(self) -> AsyncIterator[R]:
        if self._items is None:
            self._items = self._flatten()
        return self._items

    async def _flatten(self) -> AsyncGenerator[R, None]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for item in batch:
                    yield item

    async def collect(self) -> list[R]:
        """Every result (until the end, the limit or a cancel)."""
        async with self:
            return [item async for item in self]

    @property
    def running(self) -> bool:
        return self._batches is not None and self.outcome is None

    async def aclose(self) -> None:
        """Stop reading: the generators are closed (the find under way ends with them)."""
        if self._items is not None:
            await self._items.aclose()
        if self._batches is not None:
            await self._batches.aclose()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.aclose()


class ProgressHandle(Generic[P, S]):
    """A running job's handle: progress, summary, error, cancel (see the module)."""

    progress: P
    error: BaseException | None = None
    _task: asyncio.Task | None = None
    _next: asyncio.Future | None = None
    _done = False

    # -- what the job writes

    async def _main(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    @property
    def summary(self) -> S | None:
        raise NotImplementedError

    def _stop_bound(self) -> float:
        """Seconds to wait for the job to end after a cancel."""
        raise NotImplementedError

    def _task_name(self) -> str:
        return type(self).__name__

    # -- the handle

    @property
    def done(self) -> bool:
        return self._done

    @property
    def running(self) -> bool:
        return self._task is not None and not self._done

    def start(self) -> asyncio.Task:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            self._task = loop.create_task(self._main(), name=self._task_name())
        return self._task

    def _wake(self) -> None:
        """Tell the consumers waiting in `updates()` that `progress` changed."""
        waiter = self._next
        if waiter is None:
            return
        self._next = asyncio.get_running_loop().create_future()
        if not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> S:
        """Run to the end; the summary (or the error). Cancelling the awaiting task cancels the job
        (bounded) before the CancelledError goes on."""
        task = self.start()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                self.cancel()
                await asyncio.wait({task}, timeout=self._stop_bound())
            raise
        if self.error is not None:
            raise self.error
        summary = self.summary
        assert summary is not None
        return summary

    def __await__(self) -> Generator[Any, None, S]:
        return self.wait().__await__()

    def __aiter__(self) -> AsyncIterator[P]:
        return self.updates()

    async def updates(self) -> AsyncIterator[P]:
        """Progress records as they change; the last one is the job's end. Raises the job's error."""
        self.start()
        last = None
        while True:
            waiter = self._next
            current = self.progress
            if current is not last:
                last = current
                yield current
            if self._done:
                break
            assert waiter is not None
            await asyncio.wait({waiter})
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        """Cancel when still running and wait (bounded) until it has ended. Never raises its error."""
        if self._task is None:
            self._done = True
            return
        if not self._task.done():
            self.cancel()
            await asyncio.wait({self._task}, timeout=self._stop_bound())

    async def __aenter__(self) -> Any:
        self.start()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.aclose()


__all__ = ["ProgressHandle", "ResultStream"]
