"""Make docs/profile-dicomweb.png and docs/connection-test-dicomweb.png: the profile dialog filled in
for a DICOMweb server over HTTPS with HTTP basic authentication, then that profile's connection test,
against the lab's Orthanc with its DICOMweb plugin (behind the lab's TLS front, loopback only).
Run: xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python docs/dicomweb_screenshot.py
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

from docs.screenshot import shoot  # noqa: E402 - after the path set-up above

USER, PASSWORD = "radiology", "correct horse battery"


async def _until(condition, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the window did not get there in time")
        await asyncio.sleep(0.05)


def main() -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from pacsbrowser.core.archive import Archive
    from pacsbrowser.core.config import ProfileStore
    from pacsbrowser.core.records import ProfileKind, WebAuth
    from pacsbrowser.ui.main_window import MainWindow
    from tests.lab.certs import make_certs
    from tests.lab.web import WebOrthancPeer

    work = Path(tempfile.mkdtemp(prefix="pacsbrowser-shot-"))
    os.environ["PACSBROWSER_CONFIG_DIR"] = str(work / "config")
    os.environ["PACSBROWSER_KEYRING"] = "off"  # never the desktop's keyring of whoever runs this
    certs = make_certs(work / "certs")
    peer = WebOrthancPeer(https=certs, users={USER: PASSWORD})
    peer.start()
    archive = Archive(work / "archive")
    try:
        app = QApplication(sys.argv[:1])
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        window = MainWindow(ProfileStore(), archive=archive)
        window.resize(1380, 900)
        window.show()

        async def scenario() -> None:
            dialog = window.add_profile()
            dialog.name.setText("Hospital archive (DICOMweb)")
            dialog.kind.setCurrentIndex(dialog.kind.findData(ProfileKind.DICOMWEB))
            dialog.web.url.setText(peer.url)
            dialog.web.auth.setCurrentIndex(dialog.web.auth.findData(WebAuth.BASIC))
            dialog.web.user.setText(USER)
            dialog.web.secret.setText(PASSWORD)
            dialog.tls.setChecked(True)
            dialog.tls_ca.edit.setText(str(certs.ca_cert))
            await asyncio.sleep(0.5)
            shoot(dialog, ROOT / "docs" / "profile-dicomweb.png")
            dialog.accept()
            await asyncio.sleep(0.2)
            test = window.test_profile(window.profiles.current_profile())
            test.resize(820, 440)
            await _until(lambda: not window.profile_controller.testing and test.steps.topLevelItemCount() >= 5)
            await asyncio.sleep(0.5)
            shoot(test, ROOT / "docs" / "connection-test-dicomweb.png")
            test.close()

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
