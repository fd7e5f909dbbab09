"""executor.LoopPoster: calls from other threads run on the loop in their order, in groups."""

from __future__ import annotations

import asyncio
import threading
import time

from pacsbrowser.core.executor import LoopPoster


def test_calls_from_a_thread_run_on_the_loop_in_their_order_in_groups():
    """500 calls posted while the loop is busy for 0.2 s come in a handful of runs, all of them,
    in order, on the loop's thread; a loop woken per call would have taken 500 turns."""
    seen: list[int] = []
    threads: set[int] = set()
    runs: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        poster = LoopPoster(loop)
        real = poster._run

        def counted() -> None:
            runs.append(len(poster._calls))
            real()

        poster._run = counted  # type: ignore[method-assign]  # counting the runs of this one poster

        def take(n: int) -> None:
            seen.append(n)
            threads.add(threading.get_ident())

        def produce() -> None:
            for n in range(500):
                assert poster.post(take, n)

        loop.call_soon(time.sleep, 0.2)  # the loop is busy while the thread posts
        await asyncio.to_thread(produce)
        for _ in range(100):
            if len(seen) == 500:
                break
            await asyncio.sleep(0.01)
        assert threads == {threading.get_ident()}

    asyncio.run(asyncio.wait_for(main(), 30))
    assert seen == list(range(500))
    assert sum(runs) == 500 and len(runs) < 50


def test_a_call_that_raises_is_reported_and_the_others_still_run():
    seen: list[str] = []
    reported: list[BaseException] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
        poster = LoopPoster(loop)

        def broken() -> None:
            raise ValueError("a bug in a callback")

        def produce() -> None:
            poster.post(seen.append, "before")
            poster.post(broken)
            poster.post(seen.append, "after")

        await asyncio.to_thread(produce)
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(main(), 30))
    assert seen == ["before", "after"]
    assert len(reported) == 1 and isinstance(reported[0], ValueError)


def test_a_closed_loop_drops_the_call_and_says_so():
    loop = asyncio.new_event_loop()
    poster = LoopPoster(loop)
    loop.close()
    assert poster.post(print, "nobody is there") is False
    assert poster.post(print, "still nobody") is False  # not stuck waiting for a run that never comes


def test_a_stream_ends_when_its_producer_does_not_when_the_batch_interval_does():
    """The last batch comes as soon as the producer returns, even when the consumer is waiting out
    the interval between batches (5 s here): the stream used to end only once it had passed."""
    from pacsbrowser.core.executor import stream_blocking

    batches: list[list[int]] = []

    def producer(emit) -> None:
        emit(1)  # the first batch goes at once
        time.sleep(0.05)
        emit(2)  # the consumer now waits for the interval to pass...
        time.sleep(0.05)  # ...and the producer ends long before it does

    async def main() -> float:
        started = time.monotonic()
        async for batch in stream_blocking(producer, batch_seconds=5.0):
            batches.append(batch)
        return time.monotonic() - started

    took = asyncio.run(asyncio.wait_for(main(), 30))
    assert batches == [[1], [2]]
    assert took < 2.5, f"the stream ended {took:.2f} s after it started, waiting out the batch interval"
