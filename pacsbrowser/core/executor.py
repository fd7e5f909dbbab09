"""Where blocking pynetdicom work runs: worker threads owned by core, results handed back to the loop.

Each call gets its own daemon thread. Threads are cheap next to a network round trip, a daemon
thread never holds up the interpreter's exit (the loop's default executor does), and every call
is bounded by the network timeouts it is given. Results come back with `call_soon_threadsafe`,
a stream of them in groups (`stream_blocking`, `LoopPoster`).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

T = TypeVar("T")

_counter = itertools.count(1)
_active: set[threading.Thread] = set()
_active_lock = threading.Lock()
THREAD_PREFIX = "pacsbrowser-worker"


def _deliver(future: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


class LoopPoster:
    """Calls posted from other threads, run on `loop` in the order they were posted, with the loop
    woken once per group: a call posted while an earlier one still waits to run goes with it.

    `loop.call_soon_threadsafe` per call wakes the loop (a write to its self-pipe, the loop
    thread taking the GIL) for every image of a transfer; posted through one of these, what
    arrives while the loop is busy waits for its next turn instead. A call that raises is reported
    to the loop's exception handler, as `call_soon_threadsafe` would, and the rest still run.
    `post` returns False when the loop is closed (the call is dropped)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._posted = False

    def post(self, callback: Callable[..., Any], *args: Any) -> bool:
        with self._lock:
            self._calls.append((callback, args))
            if self._posted:
                return True  # the run already on its way takes this one too
            self._posted = True
        try:
            self._loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # the loop is closed: nobody is there any more
            with self._lock:
                self._calls.clear()
                self._posted = False
            return False
        return True

    def _run(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
            self._posted = False
        for callback, args in calls:
            try:
                callback(*args)
            except Exception as exc:  # noqa: BLE001 - reported as the loop reports a callback's
                self._loop.call_exception_handler({"message": f"Exception in callback {callback!r}",
                                                   "exception": exc})


def _start(target: Callable[[], None], name: str) -> threading.Thread:
    def wrapper() -> None:
        try:
            target()
        finally:
            with _active_lock:
                _active.discard(thread)

    thread = threading.Thread(target=wrapper, name=f"{THREAD_PREFIX}-{next(_counter)}-{name}", daemon=True)
    with _active_lock:
        _active.add(thread)
    thread.start()
    return thread


def start_detached(fn: Callable[[], Any], *, name: str = "detached") -> threading.Thread:
    """Run `fn()` on a worker thread without waiting for it (its result and errors are dropped):
    for fire-and-forget work such as sending a C-CANCEL from a plain callback."""

    def target() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - nobody waits for it
            pass

    return _start(target, name)


async def run_blocking(fn: Callable[..., T], *args: Any, name: str = "call", **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` on a worker thread and await its result (or exception)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def target() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            _post(loop, _deliver, future, None, exc)
        else:
            _post(loop, _deliver, future, result)

    _start(target, name)
    return await future


async def stream_blocking(
    producer: Callable[[Callable[[T], None]], Any],
    *,
    name: str = "stream",
    batch_seconds: float = 0.05,
) -> AsyncIterator[list[T]]:
    """Run `producer(emit)` on a worker thread; yield what it emits, in batches, as it comes.

    The first batch is handed over as soon as the first item exists; later batches at most every
    `batch_seconds`, so a 10,000-row answer becomes a few dozen loop wake-ups, not 10,000; the
    producer's end cuts that wait short (the last batch used to wait out the interval: 0-50 ms
    added to every C-GET, C-MOVE and C-FIND, 20-40 ms in most). The
    producer's exception is raised after the items emitted before it. Leaving the iteration early
    does not stop the producer: the caller stops it by its own means (C-CANCEL, abort).
    """
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    finished = asyncio.Event()  # the producer has returned or raised
    lock = threading.Lock()
    pending: list[T] = []
    state: dict[str, Any] = {"scheduled": False, "done": False, "error": None}

    def signal_locked() -> None:
        if not state["scheduled"]:
            state["scheduled"] = True
            _post(loop, wake.set)

    def emit(item: T) -> None:
        with lock:
            pending.append(item)
            signal_locked()

    def target() -> None:
        error = None
        try:
            producer(emit)
        except BaseException as exc:  # noqa: BLE001 - raised in the consumer
            error = exc
        with lock:
            state["done"], state["error"] = True, error
            signal_locked()
        _post(loop, finished.set)

    _start(target, name)
    last_yield = None
    while True:
        await wake.wait()
        if last_yield is not None:
            remaining = batch_seconds - (loop.time() - last_yield)
            if remaining > 0 and not state["done"]:
                try:
                    await asyncio.wait_for(finished.wait(), remaining)
                except TimeoutError:
                    pass
        with lock:
            wake.clear()
            state["scheduled"] = False
            batch = pending.copy()
            pending.clear()
            done, error = state["done"], state["error"]
        if batch:
            last_yield = loop.time()
            yield batch
        if done:
            if error is not None:
                raise error
            return


def active_threads() -> list[threading.Thread]:
    """Worker threads still running (tests check none is left behind)."""
    with _active_lock:
        return [t for t in _active if t.is_alive()]


def join_all(timeout: float) -> bool:
    """Wait up to `timeout` seconds for every worker thread to end; True when none is left."""
    import time

    deadline = time.monotonic() + timeout
    for thread in active_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    return not active_threads()
