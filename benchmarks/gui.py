"""The GUI case: MainWindow (offscreen, under qasync) showing a query that streams every study of
the Orthanc into the results tree, while a 2 ms QTimer records the longest gap between its ticks
(the longest time the event loop was busy elsewhere: what a user feels as a freeze).

Worker side: `python -m benchmarks.gui <answer fd>` speaks the worker protocol (benchmarks.worker).
Harness side: `case_gui(ctx)`, alternating with findscu for the same query.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

TICK_MS = 2


class GuiCase:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        os.environ["PACSBROWSER_CONFIG_DIR"] = str(Path(config["tmp"]) / "config")
        os.environ["PACSBROWSER_ARCHIVE_DIR"] = str(Path(config["tmp"]) / "archive")  # the window's own archive
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        import qasync
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication

        from pacsbrowser.core.config import ProfileStore
        from pacsbrowser.core.records import ServerProfile
        from pacsbrowser.ui.main_window import MainWindow

        tmp = Path(config["tmp"])
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "qsettings"))
        self.app = QApplication.instance() or QApplication(["pacsbrowser-bench"])
        import asyncio

        self.loop = qasync.QEventLoop(self.app)
        asyncio.set_event_loop(self.loop)
        store = ProfileStore(tmp / "profiles")
        store.add(ServerProfile(name="Bench Orthanc", host=config["host"], port=config["port"],
                                called_ae=config["aet"]))
        self.window = MainWindow(store)
        self.window.show()
        self.window.profiles.list.setCurrentRow(0)
        self._settle(0.3)

    def _settle(self, seconds: float) -> None:
        import asyncio

        self.loop.run_until_complete(asyncio.sleep(seconds))

    def run(self) -> dict[str, Any]:
        import asyncio

        from PySide6.QtCore import QTimer

        from pacsbrowser.core.records import QueryKeys

        win = self.window
        expected = self.config["expected"]
        gaps: list[float] = []
        stamps = {"last": 0.0, "first_row": None}

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - stamps["last"])
            stamps["last"] = now
            if stamps["first_row"] is None and win.results_model.top_level_count():
                stamps["first_row"] = now - started

        done: asyncio.Future = self.loop.create_future()

        def finished(*_: Any) -> None:
            if not done.done():
                done.set_result(True)

        win.query.finished.connect(finished)
        win.query.failed.connect(finished)
        timer = QTimer()
        timer.setInterval(TICK_MS)
        timer.timeout.connect(tick)

        async def work() -> None:
            await asyncio.wait_for(done, timeout=120)
            # the rows are in; let the view lay them out and paint once more
            await asyncio.sleep(0.05)

        win.query.last_outcome = None
        stamps["last"] = started = time.perf_counter()
        timer.start()
        # What "Search" does once the user has confirmed "Search everything?" (no key given)
        win.search(QueryKeys.studies(), confirmed=True)
        self.loop.run_until_complete(work())
        rows_at = time.perf_counter() - started - 0.05
        timer.stop()
        win.query.finished.disconnect(finished)
        win.query.failed.disconnect(finished)
        count = win.results_model.top_level_count()
        if count != expected:
            raise RuntimeError(f"{count} rows in the tree, expected {expected}")
        longest = max(gaps) if gaps else 0.0
        slow = sorted(gaps, reverse=True)[:5]
        return {"seconds": rows_at, "stall": longest, "ticks": len(gaps), "first_row": stamps["first_row"],
                "worst_gaps_ms": [round(g * 1000, 1) for g in slow]}

    def teardown(self) -> None:
        self.loop.run_until_complete(self.window.shutdown())
        self.window.close()
        self.window.deleteLater()
        self._settle(0.05)


def main(argv: list[str]) -> int:
    import resource

    from .worker import _status_kb

    answers = os.fdopen(int(argv[0]), "w", buffering=1)
    case: GuiCase | None = None

    def reply(ok: bool, **data: Any) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        answers.write(json.dumps({"ok": ok, **data, "rss_kb": _status_kb("VmHWM"),
                                  "cpu": usage.ru_utime + usage.ru_stime}, default=str) + "\n")

    for line in sys.stdin:
        try:
            request = json.loads(line)
            cmd = request.pop("cmd")
            if cmd == "setup":
                from .worker import polling_baseline

                polling_baseline()
                case = GuiCase(request)
                reply(True, rss_now_kb=_status_kb("VmRSS"))
            elif cmd == "quit":
                if case is not None:
                    case.teardown()
                reply(True)
                break
            else:
                assert case is not None
                reply(True, **getattr(case, cmd)())
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            reply(False, error=f"{exc.__class__.__name__}: {exc}")
    return 0


# ------------------------------------------------------------------------------------------------
# harness side


def case_gui(ctx):
    from .cases import Row, WorkerSide, _finish, _record_seconds, findscu, orthanc_target
    from .procs import run_tools

    lab = ctx.lab
    expected = lab.tiny_count + 1
    target = orthanc_target(ctx)
    rows_row = Row("gui_rows", f"GUI: {expected:,} studies streamed into the results tree", "findscu (exit)")
    stall = Row("gui_stall", "GUI: longest event-loop stall meanwhile", "— (no GUI)", unit="ms")
    command = findscu(target["host"], target["port"], target["aet"])

    def record(rows, side, m):
        _record_seconds([rows_row], side, m)
        if side == "ours":
            stall.ours.append(m.extra["stall"])
            stall.extra.setdefault("worst_gaps_ms", []).append(m.extra["worst_gaps_ms"])
            stall.extra.setdefault("ticks", []).append(m.extra["ticks"])
            stall.ours_rss_kb = max(stall.ours_rss_kb, m.rss_kb)

    from .cases import alternate

    with ctx.worker("gui", module="benchmarks.gui", **target, expected=expected) as worker:
        alternate(ctx, [rows_row, stall], WorkerSide(worker), lambda: run_tools([command], timeout=120), record)
        _finish([rows_row, stall], worker)
    stall.note = (f"a {TICK_MS} ms QTimer's largest gap between ticks, from Search to the last row; "
                  f"the 5 worst gaps per repetition (ms): {stall.extra.get('worst_gaps_ms')}")
    return [rows_row, stall]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
