"""Make docs/thumbnails.png (the window with the Images panel) and docs/preview.png (the preview),
from a real Orthanc of the test lab and a local archive holding its studies (as if retrieved), plus
a structured report, a PDF and a damaged slice in the CT chest study.

Run: QT_QPA_PLATFORM=offscreen PYTHONPATH=. .venv/bin/python docs/images_screenshot.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def _until(condition, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the window did not get there in time")


def main() -> int:
    import qasync
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from pacsbrowser.core.archive import Archive
    from pacsbrowser.core.config import ProfileStore
    from pacsbrowser.core.records import ServerProfile
    from pacsbrowser.ui.main_window import MainWindow
    from tests.lab.data import generate
    from tests.lab.peers import OrthancPeer, free_port
    from tests.ui.thumbs_data import EXTRA_STUDY, extras, fill

    work = Path(tempfile.mkdtemp(prefix="pacsbrowser-shot-"))
    os.environ["PACSBROWSER_CONFIG_DIR"] = str(work / "config")
    catalog = generate(work / "data")
    peer = OrthancPeer(move_port=free_port())
    peer.start()
    archive = Archive(work / "archive")
    try:
        peer.load(catalog.paths())
        fill(archive, [*catalog.paths(), *extras(work / "extras", catalog).values()])
        app = QApplication(sys.argv[:1])
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        store = ProfileStore(work / "config")
        store.add(ServerProfile(name="Radiology PACS (lab Orthanc)", host="127.0.0.1", port=peer.port,
                                called_ae=peer.aet))
        window = MainWindow(store, archive=archive)
        window.resize(1380, 900)
        window.show()
        window.profiles.list.setCurrentRow(0)

        async def scenario() -> None:
            await asyncio.sleep(0.1)
            window._size_images_dock()  # for the window's size here (it runs once at start)
            window.query_form.patient_name.setText("smith")
            window.query_form.search_button.click()
            await _until(lambda: window.query.last_outcome is not None and not window.query.running)
            model = window.results_model
            row = next(n for n in model.root.children if n.result.accession_number == EXTRA_STUDY)
            view = window.results
            view.tree.setCurrentIndex(view.proxy.mapFromSource(model.index_of(row)))
            panel = window.thumbnails
            await _until(lambda: panel.model.counts()[0] > 0 and not panel.controller.busy)
            await asyncio.sleep(0.3)
            window.grab().save(str(ROOT / "docs" / "thumbnails.png"))
            slice_ = panel.model.instance_tiles()[4]
            preview = panel.open_preview(slice_.sop_instance_uid)
            preview.resize(760, 800)
            await _until(lambda: preview.canvas.frame is not None)
            canvas = preview.canvas
            for kind, x, y in ((QEvent.Type.MouseButtonPress, 300, 300), (QEvent.Type.MouseMove, 330, 288),
                               (QEvent.Type.MouseButtonRelease, 330, 288)):
                pos = QPointF(x, y)
                button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
                QApplication.sendEvent(canvas, QMouseEvent(kind, pos, canvas.mapToGlobal(pos), button,
                                                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
            await _until(lambda: preview.canvas.frame.key == preview._wanted)
            await asyncio.sleep(0.3)
            preview.grab().save(str(ROOT / "docs" / "preview.png"))
            print("wrote docs/thumbnails.png and docs/preview.png")

        loop.run_until_complete(scenario())
        loop.run_until_complete(window.shutdown())
        window.close()
    finally:
        archive.close()
        peer.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
