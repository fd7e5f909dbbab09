"""The application: QApplication, the qasync loop, error hook and orderly shutdown."""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback

from PySide6.QtWidgets import QApplication, QMessageBox

log = logging.getLogger(__name__)


def run_gui(argv: list[str] | None = None) -> int:
    import qasync

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("pacsbrowser")
    app.setOrganizationName("pacsbrowser")
    app.setApplicationDisplayName("PACS Browser")

    window = MainWindow()

    def excepthook(exc_type, exc, tb) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("unexpected error: %s", text)
        window.show_error("Something went wrong inside pacsbrowser", text)

    sys.excepthook = excepthook
    window.show()
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    try:
        asyncio.run(_run_until(closed, window), loop_factory=lambda: qasync.QEventLoop(app))
    except RuntimeError as exc:  # the loop stops when the last window closes
        if "Event loop stopped" not in str(exc):
            raise
    return 0


async def _run_until(closed: asyncio.Event, window) -> None:
    await closed.wait()
    await window.shutdown()


def show_fatal(message: str) -> None:
    QMessageBox.critical(None, "pacsbrowser", message)
