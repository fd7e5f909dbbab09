"""The Images panel and the preview, with the event-loop stall probe of benchmarks/gui.py.

    PYTHONPATH=. QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks.gui_images [--count 100] [--slices 300]

1. thumbnails of a `count`-image CT series (512 x 512, every 4th slice RLE) in a fresh archive:
   time to the first and to all thumbnails, cold (worker processes start, nothing cached) and
   warm (the disk cache of the first pass, as when the study is opened again);
2. the preview scrolled through a `slices`-slice series at 60 wheel steps a second: frames shown,
   time from the last step to its frame, and the longest stall of the event loop.
Figures are printed, not checked. A 2 ms QTimer records the longest gap between its ticks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TICK_MS = 2


class Probe:
    """The longest gap between ticks of a 2 ms timer: how long the window could not react."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def start(self) -> None:
        self.gaps.clear()
        self.last = time.perf_counter()
        self.cpu = time.thread_time()
        self.timer.start()

    def stop(self) -> tuple[float, list[float]]:
        self.timer.stop()
        self.cpu = time.thread_time() - self.cpu  # CPU time of the GUI thread meanwhile
        worst = sorted(self.gaps, reverse=True)[:5]
        return (worst[0] if worst else 0.0), [round(g * 1000, 1) for g in worst]


def _archive(root: Path, count: int, rle_every: int):
    from pacsbrowser.core.archive import Archive
    from tests.imaging.samples import make_series

    paths = make_series(root / f"series{count}", count, side=512, rle_every=rle_every)
    archive = Archive(root / f"archive{count}")
    for path in paths:
        archive.import_file(path)
    archive.flush()
    study = archive.studies()[0].study_uid
    return archive, study


async def _wait(condition, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the condition was not met in time")
        await asyncio.sleep(0.005)


async def idle_case(seconds: float = 3.0) -> None:
    """The probe with nothing to do: the noise floor of this machine (other processes)."""
    probe = Probe()
    probe.start()
    await asyncio.sleep(seconds)
    stall, worst = probe.stop()
    print(f"idle loop for {seconds:.0f} s: longest stall {1000 * stall:.1f} ms (worst {worst}); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)


async def thumbnails_case(root: Path, count: int) -> None:
    from pacsbrowser.ui.widgets.thumbnails import ThumbnailsPanel

    archive, study = _archive(root, count, 4)
    try:
        for label in ("cold", "warm"):
            panel = ThumbnailsPanel(archive)
            panel.resize(1000, 600)
            panel.show()
            await asyncio.sleep(0.2)
            probe = Probe()
            probe.start()
            started = time.perf_counter()
            panel.show_study(study)
            await _wait(lambda p=panel: p.model.counts() == (count, count), 120)
            await asyncio.sleep(0.05)  # the last paint
            stall, worst = probe.stop()
            t = panel.controller.timings
            service = panel.controller._service
            rendered = service.stats.rendered if service else 0
            print(f"thumbnails, {count} images, {label}: first {1000 * (t['first'] - started):.0f} ms, "
                  f"all {1000 * (t['all'] - started):.0f} ms; rendered by workers {rendered}; "
                  f"longest stall {1000 * stall:.1f} ms (worst {worst}); GUI thread busy {probe.cpu:.2f} s", flush=True)
            await panel.shutdown()
            panel.close()
    finally:
        archive.close()


async def preview_case(root: Path, slices: int) -> None:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    from pacsbrowser.ui.widgets.thumbnails import ThumbnailsPanel

    archive, study = _archive(root, slices, 4)
    panel = ThumbnailsPanel(archive)
    try:
        panel.controller.show_study(study)
        await _wait(lambda: panel.model.counts()[0] == slices, 60)
        tiles = panel.model.instance_tiles()
        preview = panel.open_preview(tiles[0].sop_instance_uid)
        await _wait(lambda: preview.canvas.frame is not None, 30)
        shown: list[str] = []
        preview.shown.connect(lambda frame: shown.append(frame.key.sop_instance_uid))
        canvas = preview.canvas
        pos = QPointF(canvas.width() / 2, canvas.height() / 2)
        probe = Probe()
        probe.start()
        started = time.perf_counter()
        for _ in range(slices - 1):
            event = QWheelEvent(pos, canvas.mapToGlobal(pos), QPoint(0, 0), QPoint(0, -120), Qt.MouseButton.NoButton,
                                Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
            QApplication.sendEvent(canvas, event)
            await asyncio.sleep(1 / 60)
        last_step = time.perf_counter()
        await _wait(lambda: preview.canvas.frame.key.sop_instance_uid == tiles[-1].sop_instance_uid, 30)
        done = time.perf_counter()
        stall, worst = probe.stop()
        print(f"preview, {slices} slices of 512 x 512 scrolled at 60 steps/s in {last_step - started:.1f} s: "
              f"{len(set(shown))} distinct slices shown, last one {1000 * (done - last_step):.0f} ms after the "
              f"last step; {preview.renderer.renders} renders; longest stall {1000 * stall:.1f} ms "
              f"(worst {worst}); GUI thread busy {probe.cpu:.2f} s", flush=True)
    finally:
        await panel.shutdown()
        panel.close()
        archive.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gui_images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import qasync
    from PySide6.QtWidgets import QApplication

    from pacsbrowser.core.logs import quiet_pydicom

    quiet_pydicom(True)
    app = QApplication.instance() or QApplication(["pacsbrowser-bench"])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    root = Path(tempfile.mkdtemp(prefix="pacsbrowser-bench-images-"))
    try:
        with loop:
            loop.run_until_complete(idle_case())
            loop.run_until_complete(thumbnails_case(root, args.count))
            loop.run_until_complete(preview_case(root, args.slices))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
