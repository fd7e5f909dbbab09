"""Reference cycles die on the GUI thread, whatever thread allocated when a threshold was crossed."""

from __future__ import annotations

import gc
import threading


class _Cyclic:
    def __init__(self, died_on: list[threading.Thread]) -> None:
        self.me = self
        self.died_on = died_on

    def __del__(self) -> None:
        self.died_on.append(threading.current_thread())


def test_a_cycle_is_collected_on_the_gui_thread_not_on_the_worker_that_allocated(qapp, qtbot):
    assert not gc.isenabled()  # tests/ui/conftest.py runs the application's collector
    died_on: list[threading.Thread] = []
    _Cyclic(died_on)  # garbage, kept alive only by its cycle

    def churn() -> None:  # cyclic garbage of its own, far over the youngest generation's threshold
        for _ in range(20 * gc.get_threshold()[0]):
            loop: list = []
            loop.append(loop)

    worker = threading.Thread(target=churn, name="churn")
    worker.start()
    worker.join(timeout=30)
    assert died_on == []  # the worker's allocations collected nothing
    qtbot.waitUntil(lambda: bool(died_on), timeout=5000)
    assert died_on == [threading.main_thread()]
