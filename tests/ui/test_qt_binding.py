"""Guard against a Qt binding that miscounts references (PySide6 6.12.0 crashed with none_dealloc)."""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QEventLoop, QTimer


def test_python_slots_do_not_leak_or_over_release_references(qapp):
    calls = []
    timer = QTimer()
    timer.setInterval(1)
    timer.timeout.connect(lambda: calls.append(1))
    before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    timer.start()
    deadline = time.monotonic() + 30  # a bound, not a measure: ~0.2 s unloaded
    while len(calls) < 200 and time.monotonic() < deadline:
        qapp.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
    timer.stop()
    after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    assert len(calls) >= 200
    drift = [a - b for a, b in zip(after, before)]
    assert all(abs(d) < len(calls) // 2 for d in drift), f"references drift by {drift} over {len(calls)} slot calls"
