"""Python's cyclic garbage collector, run on the GUI thread only.

Left automatic, the collector runs on whichever thread happens to allocate when a threshold is
crossed: often one of core's worker threads (pynetdicom, decoding). A Qt object in a reference cycle
(a widget, a timer, a model with a Python slot) is then destroyed on that thread, while the GUI
thread may still deliver an event to it, and Qt crashes. So the automatic collector is switched off
and a timer on the GUI thread collects instead, generation by generation, with the same thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadCollector(QObject):
    """While it lives (between `start()` and `stop()`), cycles are collected on this thread only."""

    def __init__(self, interval_ms: int = 200, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self._thresholds = gc.get_threshold()
        self._was_enabled = gc.isenabled()

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        gc.collect()  # here, on the GUI thread, before automatic collection may resume elsewhere
        if self._was_enabled:
            gc.enable()

    def collect_if_due(self) -> None:
        """What the automatic collector would do now: the youngest generation over its threshold,
        and with it each older one that is over its own."""
        counts = gc.get_count()
        generation = -1
        for level, (count, threshold) in enumerate(zip(counts, self._thresholds, strict=True)):
            if threshold and count > threshold:
                generation = level
            else:
                break
        if generation >= 0:
            gc.collect(generation)
