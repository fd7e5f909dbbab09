"""The application: QApplication, the qasync loop, error hook and orderly shutdown."""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback

from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)


def run_gui(argv: list[str] | None = None) -> int:
    """Show the main window until it is closed; then stop what runs and return the exit status."""
    import qasync

    from ..core import executor
    from ..core.logs import quiet_pydicom
    from .main_window import MainWindow

    quiet_pydicom(True)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("pacsbrowser")
    app.setOrganizationName("pacsbrowser")
    app.setApplicationDisplayName("PACS Browser")
    app.setQuitOnLastWindowClosed(False)  # the loop ends when the window says so, after shutdown

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow()
    previous_hook = sys.excepthook

    def excepthook(exc_type, exc, tb) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("unexpected error: %s", text)
        window.show_error("Something went wrong inside pacsbrowser", text)

    def loop_exception(_loop, context) -> None:
        exc = context.get("exception")
        detail = "".join(traceback.format_exception(exc)) if exc else str(context.get("message"))
        log.error("unexpected error in a task: %s", detail)
        window.show_error("Something went wrong inside pacsbrowser", detail)

    sys.excepthook = excepthook
    loop.set_exception_handler(loop_exception)
    closed = asyncio.Event()
    window.closing.connect(closed.set)
    window.show()
    try:
        with loop:
            started = asyncio.ensure_future(window.start())  # its first step once the loop runs
            loop.run_until_complete(closed.wait())
            if not started.done():
                started.cancel()
            loop.run_until_complete(window.shutdown())
    finally:
        sys.excepthook = previous_hook
        asyncio.set_event_loop(None)
        executor.join_all(timeout=2.0)  # bounded: worker threads are daemons and end with the process
    return 0
