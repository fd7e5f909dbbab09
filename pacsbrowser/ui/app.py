"""The application: QApplication, the qasync loop, error hook and orderly shutdown."""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback

from PySide6.QtWidgets import QApplication, QMessageBox

log = logging.getLogger(__name__)


def run_gui(argv: list[str] | None = None, paths: list[str] | None = None) -> int:
    """Show the main window until it is closed; then stop what runs and return the exit status.

    `paths`: files or folders the desktop passed (the .desktop entry's %F); the window's
    `open_paths` takes them when it has one (send or local import).
    """
    import qasync

    from ..core import executor
    from ..core.archive import Archive, default_archive_dir
    from ..core.errors import ArchiveError
    from ..core.logs import quiet_pydicom
    from .collector import GuiThreadCollector
    from .main_window import MainWindow
    from .resources import APP_ID, app_icon

    quiet_pydicom(True)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("pacsbrowser")
    app.setOrganizationName("pacsbrowser")
    app.setApplicationDisplayName("PACS Browser")
    app.setDesktopFileName(APP_ID)  # Wayland and task bars match the window to the .desktop entry
    app.setWindowIcon(app_icon())  # the window and its dialogs
    app.setQuitOnLastWindowClosed(False)  # the loop ends when the window says so, after shutdown

    try:
        archive = Archive(default_archive_dir())  # the one archive of this process: everything uses it
    except ArchiveError as exc:
        QMessageBox.critical(None, "PACS Browser", f"The local image archive cannot be opened: {exc}")
        return 1
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    collector = GuiThreadCollector()  # Qt objects in cycles must die on the GUI thread
    collector.start()
    window = MainWindow(archive=archive)
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
    if paths:
        open_paths = getattr(window, "open_paths", None)  # the send/import feature's entry, when present
        if open_paths is not None:
            open_paths(paths)
        else:
            window.statusBar().showMessage(f"{len(paths)} file(s) passed: this version cannot open files yet.")
    try:
        with loop:
            started = asyncio.ensure_future(window.start())  # its first step once the loop runs
            loop.run_until_complete(closed.wait())
            if not started.done():
                started.cancel()
            loop.run_until_complete(window.shutdown())
    finally:
        collector.stop()
        sys.excepthook = previous_hook
        asyncio.set_event_loop(None)
        archive.close()
        executor.join_all(timeout=2.0)  # bounded: worker threads are daemons and end with the process
    return 0
