"""Qt tests run offscreen on qasync's loop, as the application does."""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def _collect_on_the_gui_thread(qapp):
    """As the application does (pacsbrowser.ui.collector): cycles are collected on the GUI thread
    only, never on a worker thread that would destroy a Qt object there."""
    from pacsbrowser.ui.collector import GuiThreadCollector

    collector = GuiThreadCollector()
    collector.start()
    yield
    collector.stop()


@pytest.fixture(autouse=True)
def _windows_die_on_the_gui_thread(qapp):
    """After each test, delete its windows here, on the GUI thread. Left to the garbage collector, a
    window in a reference cycle is destroyed on whichever thread happens to collect, often a worker
    thread of a later test, and Qt crashes (timers and event filters belong to the GUI thread)."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    yield
    for widget in qapp.topLevelWidgets():
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


@pytest.fixture
def qloop(qapp, tmp_path, monkeypatch):
    """qasync's event loop over pytest-qt's QApplication; settings kept in a temporary place."""
    import qasync
    from PySide6.QtCore import QSettings

    monkeypatch.setenv("PACSBROWSER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PACSBROWSER_ARCHIVE_DIR", str(tmp_path / "archive"))  # a window without one opens this
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()
    # Keep the closed loop: Qt timers of callbacks still scheduled on it (a thread's result that
    # came after the test) fire later and call into its timer object; freed, that is a crash in
    # QTimerInfoList::activateTimers during a later test.
    _closed_loops.append(loop)


_closed_loops: list = []


class StallProbe:
    """A 5 ms QTimer's gaps between ticks while the probe is on: `longest` is the event loop's
    longest stall (seconds). `with StallProbe() as probe: ...`"""

    def __init__(self, interval_ms: int = 5) -> None:
        import time

        from PySide6.QtCore import QTimer

        self._clock = time.perf_counter
        self.gaps: list[float] = []
        self._last = self._clock()
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = self._clock()
        self.gaps.append(now - self._last)
        self._last = now

    def __enter__(self) -> "StallProbe":
        self._last = self._clock()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.stop()

    @property
    def longest(self) -> float:
        return max(self.gaps, default=0.0)


def run_until(loop, condition, timeout: float = 10.0, *, settle: bool = True) -> None:
    """Run the loop until `condition()` is true, at most `timeout` seconds; with `settle`, then
    until the tasks running by then have finished too (within the same bound)."""

    async def wait() -> None:
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)
        # Let what the last step started settle while the loop runs (in the application the loop
        # always runs; a task left pending here would take its first step outside it).
        me = asyncio.current_task()
        while settle:
            pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            if not pending or loop.time() > deadline:
                break
            await asyncio.wait(pending, timeout=max(0.01, deadline - loop.time()))

    loop.run_until_complete(wait())


@pytest.fixture(scope="module")
def big_study(lab_dir, orthanc):
    """400 small CT images in 2 series, in the session's Orthanc for one test module."""
    from tests.retrieve.helpers import make_big_study

    study = make_big_study(lab_dir / "ui-big", 400, size=64, label="uibig")
    orthanc.load(study.paths())
    yield study
    orthanc.delete_uid(study.study_uid)
