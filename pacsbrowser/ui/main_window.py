"""The main window: composes the widgets and the controllers, nothing else."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMainWindow, QMessageBox, QSplitter

from ..core.config import ConfigError, ProfileStore
from .controllers.echo import EchoController
from .widgets.log_panel import LogPanel
from .widgets.profile_panel import ProfilePanel


class MainWindow(QMainWindow):
    def __init__(self, store: ProfileStore | None = None) -> None:
        super().__init__()
        self.setWindowTitle("PACS Browser")
        self.store = store or ProfileStore()
        self.profiles = ProfilePanel()
        self.log = LogPanel()
        self.echo = EchoController(self)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.profiles)
        splitter.addWidget(self.log)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)
        self.resize(900, 600)

        self.profiles.echo_requested.connect(self.echo.echo)
        self.echo.started.connect(self._echo_started)
        self.echo.succeeded.connect(self._echo_succeeded)
        self.echo.failed.connect(self._echo_failed)
        self.reload_profiles()
        self._restore_geometry()

    def reload_profiles(self) -> None:
        try:
            profiles = self.store.load()
        except ConfigError as exc:
            self.show_error("The saved server profiles cannot be read", str(exc))
            profiles = []
        self.profiles.set_profiles(profiles)
        if not profiles:
            self.statusBar().showMessage(
                "No server profiles yet: add one with `pacsbrowser profile add NAME --host H --port P --called-ae AE`"
            )

    def _echo_started(self, name: str) -> None:
        self.profiles.set_status(f"Echo to {name}…")
        self.log.add("info", f"C-ECHO to {name}")

    def _echo_succeeded(self, name: str, seconds: float) -> None:
        text = f"{name} answered the C-ECHO in {seconds * 1000:.1f} ms"
        self.profiles.set_status(text, ok=True)
        self.log.add("ok", text)
        self.statusBar().showMessage(text, 10000)

    def _echo_failed(self, name: str, message: str, detail: str) -> None:
        self.profiles.set_status(message, ok=False)
        self.log.add("error", f"{name}: {message}", detail)
        self.statusBar().showMessage(message)

    def show_error(self, message: str, detail: str = "") -> None:
        self.log.add("error", message, detail)
        self.statusBar().showMessage(message)
        box = QMessageBox(QMessageBox.Icon.Warning, "PACS Browser", message, parent=self)
        if detail:
            box.setDetailedText(detail)
        box.open()

    def _restore_geometry(self) -> None:
        geometry = QSettings().value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        QSettings().setValue("main_window/geometry", self.saveGeometry())
        super().closeEvent(event)

    async def shutdown(self) -> None:
        await self.echo.shutdown()
