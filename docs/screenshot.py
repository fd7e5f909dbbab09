"""Make docs/window.png and docs/window-preview.png: the real window, on a real (virtual) X screen,
against a real Orthanc of the test lab: a search, a study double-clicked and retrieved (the Transfers
panel), its images (the Images panel), then the preview of one of them.
Run: xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python docs/screenshot.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shoot(widget, target: Path) -> None:
    """The X screen where one runs (what a user sees, window manager or not), else Qt's own grab."""
    if os.environ.get("DISPLAY") and subprocess.run(["which", "import"], capture_output=True).returncode == 0:
        geometry = widget.frameGeometry()
        crop = f"{geometry.width()}x{geometry.height()}+{geometry.x()}+{geometry.y()}"
        subprocess.run(["import", "-window", "root", "-crop", crop, str(target)], check=True)
    else:
        widget.grab().save(str(target))
    print(f"wrote {target}")


def main() -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from pacsbrowser.core.config import ProfileStore
    from pacsbrowser.core.records import RetrieveMethod, ServerProfile
    from pacsbrowser.ui.main_window import MainWindow
    from tests.lab.data import generate
    from tests.lab.peers import OrthancPeer, free_port

    work = Path(tempfile.mkdtemp(prefix="pacsbrowser-shot-"))
    os.environ["PACSBROWSER_CONFIG_DIR"] = str(work / "config")
    os.environ["PACSBROWSER_ARCHIVE_DIR"] = str(work / "archive")  # the window's own archive
    catalog = generate(work / "data")
    peer = OrthancPeer(move_port=free_port())
    peer.start()
    try:
        peer.load(catalog.paths())
        app = QApplication(sys.argv[:1])
        store = ProfileStore(work / "config")
        store.add(ServerProfile(name="Radiology PACS (lab Orthanc)", host="127.0.0.1", port=peer.port,
                                called_ae=peer.aet))
        store.add(ServerProfile(name="Archive (C-MOVE)", host="127.0.0.1", port=peer.port, called_ae=peer.aet,
                                retrieve_method=RetrieveMethod.MOVE, move_destination="PACSBROWSER"))
        window = MainWindow(store)
        window.resize(1400, 900)
        window.show()
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def scenario() -> None:
            window.query_form.patient_name.setText("smith")
            window.query_form.search_button.click()
            for _ in range(500):
                await asyncio.sleep(0.02)
                if window.query.last_outcome is not None and not window.query.running:
                    break
            view = window.results
            first = window.results_model.root.children[0]
            view.tree.expand(view.proxy.mapFromSource(window.results_model.index_of(first)))
            for _ in range(250):
                await asyncio.sleep(0.02)
                if first.children and first.children[0].result is not None:
                    break
            study = next(n for n in window.results_model.root.children  # a CT study with a few images
                         if (n.result.number_of_instances or 0) >= 8 and "CT" in (n.result.modalities or ()))
            view.tree.setCurrentIndex(view.proxy.mapFromSource(window.results_model.index_of(study)))
            window.transfers.activate(window.query.profile, study.result)  # what a double-click does
            tiles = window.thumbnails.model.instance_tiles
            for _ in range(1500):
                await asyncio.sleep(0.02)
                done = all(not t.state.active for t in window.transfers.model.transfers)
                if done and tiles() and all(tile.is_ready for tile in tiles()):
                    break
            window.transfers_dock.raise_()
            await asyncio.sleep(0.5)
            shoot(window, ROOT / "docs" / "window.png")
            preview = window.thumbnails.open_preview(tiles()[len(tiles()) // 2].sop_instance_uid)
            preview.resize(900, 760)
            await asyncio.sleep(1.5)
            shoot(preview, ROOT / "docs" / "window-preview.png")

        loop.run_until_complete(scenario())
        loop.run_until_complete(window.shutdown())
    finally:
        peer.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
