"""The main window: composes the widgets and the controllers, nothing else."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QDockWidget, QMainWindow, QMessageBox, QSplitter, QWidget

from ..core.archive import Archive, default_archive_dir
from ..core.config import ProfileStore
from ..core import logs
from ..core.diagnostics import Outcome, Step
from ..core.records import FindSummary, QueryKeys, ServerProfile
from .controllers.echo import EchoController
from .controllers.profiles import ProfileController
from .controllers.query import QueryController
from .models.results import ResultsModel
from .widgets.connection_test import ConnectionTestDialog
from .widgets.log_panel import LogPanel
from .widgets.profile_dialog import ProfileDialog
from .widgets.profile_panel import ProfilePanel
from .widgets.query_form import QueryForm
from .widgets.results_view import ResultsView
from .widgets.thumbnails import ThumbnailsPanel


class MainWindow(QMainWindow):
    closing = Signal()  # the user closed the window: the application shuts down

    def __init__(self, store: ProfileStore | None = None, archive: Archive | None = None) -> None:
        super().__init__()
        self.setWindowTitle("PACS Browser")
        self._owns_archive = archive is None  # tests and scripts that pass none: closed at shutdown
        self.archive = archive if archive is not None else Archive(default_archive_dir())
        self.profile_controller = ProfileController(store or ProfileStore(), self)
        self.echo = EchoController(self)
        self.query = QueryController(self)
        self.profiles = ProfilePanel()
        self.log = LogPanel()
        self.query_form = QueryForm()
        self.results_model = ResultsModel(self)
        self.results = ResultsView(self.results_model)
        self.unbounded_warning: QMessageBox | None = None
        self.test_dialog: ConnectionTestDialog | None = None
        self.profile_dialog: ProfileDialog | None = None

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.profiles)
        self.splitter.addWidget(self._central_area())
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([300, 900])
        self.setCentralWidget(self.splitter)

        self.log_dock = QDockWidget("Log", self)
        self.log_dock.setObjectName("logDock")
        self.log_dock.setWidget(self.log)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self._build_thumbnails()
        self._build_menus()
        self.resize(1200, 800)

        pc = self.profile_controller
        pc.profiles_changed.connect(self.profiles.set_profiles)
        pc.error.connect(self.show_error)
        pc.test_started.connect(lambda name: self.log.add("info", f"Connection test of {name}"))
        pc.test_step.connect(self._test_step)
        pc.test_finished.connect(self._test_finished)
        self.profiles.add_requested.connect(self.add_profile)
        self.profiles.edit_requested.connect(self.edit_profile)
        self.profiles.duplicate_requested.connect(self.duplicate_profile)
        self.profiles.delete_requested.connect(self.delete_profile)
        self.profiles.test_requested.connect(self.test_profile)
        self.profiles.echo_requested.connect(self.echo.echo)
        self.echo.started.connect(self._echo_started)
        self.echo.succeeded.connect(self._echo_succeeded)
        self.echo.failed.connect(self._echo_failed)
        self.query_form.search_requested.connect(self.search)
        self.query_form.cancel_requested.connect(self.query.cancel)
        self.query.started.connect(self._query_started)
        self.query.batch.connect(self._query_batch)
        self.query.finished.connect(self._query_finished)
        self.query.failed.connect(self._query_failed)
        self.query.children_loaded.connect(self.results_model.set_children)
        self.query.children_failed.connect(self._children_failed)
        self.results_model.children_requested.connect(self.query.load_children)
        self._connect_thumbnails()

        pc.reload()
        if not pc.profiles:
            self.statusBar().showMessage("No server profiles yet: press “Add…” to describe your PACS.")
        self._restore_geometry()

    def _central_area(self) -> QWidget:
        area = QSplitter(Qt.Orientation.Vertical)
        area.setObjectName("queryArea")
        area.addWidget(self.query_form)
        area.addWidget(self.results)
        area.setStretchFactor(0, 0)
        area.setStretchFactor(1, 1)
        area.setCollapsible(0, False)
        return area

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        server_menu = self.menuBar().addMenu("&Server")
        for text, slot in (("&Add…", self.add_profile), ("&Test", lambda: self._with_current(self.test_profile)),
                           ("&Echo", lambda: self._with_current(self.echo.echo))):
            action = QAction(text, self)
            action.triggered.connect(slot)
            server_menu.addAction(action)
        query_menu = self.menuBar().addMenu("&Query")
        find_action = QAction("&Find", self)
        find_action.setShortcut(QKeySequence.StandardKey.Find)
        find_action.triggered.connect(self.query_form.focus_search)
        query_menu.addAction(find_action)
        search_action = QAction("&Search", self)
        search_action.triggered.connect(self.query_form.request_search)
        query_menu.addAction(search_action)
        stop_action = QAction("S&top", self)
        stop_action.triggered.connect(self.query.cancel)
        query_menu.addAction(stop_action)
        escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        escape.activated.connect(self.query.cancel)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.log_dock.toggleViewAction())
        view_menu.addAction(self.images_dock.toggleViewAction())
        self.phi_action = QAction("Show patient data in the log (debug)", self)
        self.phi_action.setCheckable(True)
        self.phi_action.setChecked(logs.show_phi())
        self.phi_action.toggled.connect(logs.set_show_phi)
        view_menu.addAction(self.phi_action)

    def _with_current(self, fn) -> None:
        profile = self.profiles.current_profile()
        if profile is not None:
            fn(profile)

    # -- profiles ----------------------------------------------------------------------------------
    def _open_profile_dialog(self, profile: ServerProfile | None, taken: set[str], on_ok) -> ProfileDialog:
        dialog = ProfileDialog(profile, taken_names=taken, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda result: on_ok(dialog.profile()) if result == QDialog.DialogCode.Accepted else None)
        self.profile_dialog = dialog
        dialog.open()
        return dialog

    def add_profile(self) -> ProfileDialog:
        def saved(profile: ServerProfile | None) -> None:
            if profile and self.profile_controller.add(profile):
                self.profiles.set_profiles(self.profile_controller.profiles, select=profile.name)
                self.log.add("info", f"Added server profile {profile.name}")

        return self._open_profile_dialog(None, self.profile_controller.names(), saved)

    def edit_profile(self, profile: ServerProfile) -> ProfileDialog:
        def saved(new: ServerProfile | None) -> None:
            if new and self.profile_controller.replace(profile.name, new):
                self.profiles.set_profiles(self.profile_controller.profiles, select=new.name)
                self.log.add("info", f"Changed server profile {new.name}")

        return self._open_profile_dialog(profile, self.profile_controller.names() - {profile.name}, saved)

    def duplicate_profile(self, profile: ServerProfile) -> ProfileDialog:
        copy = replace(profile, name=self.profile_controller.duplicate_name(profile.name))

        def saved(new: ServerProfile | None) -> None:
            if new and self.profile_controller.add(new):
                self.profiles.set_profiles(self.profile_controller.profiles, select=new.name)

        return self._open_profile_dialog(copy, self.profile_controller.names(), saved)

    def delete_profile(self, profile: ServerProfile) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Question, "Delete server profile",
                          f"Delete the profile “{profile.name}”? Images already retrieved stay in the archive.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(result: int) -> None:
            if result == QMessageBox.StandardButton.Yes and self.profile_controller.remove(profile.name):
                self.log.add("info", f"Deleted server profile {profile.name}")

        box.finished.connect(answered)
        box.open()
        return box

    def test_profile(self, profile: ServerProfile) -> ConnectionTestDialog:
        dialog = ConnectionTestDialog(profile.name, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.cancel_requested.connect(self.profile_controller.cancel_test)
        self.test_dialog = dialog
        dialog.open()
        self.profile_controller.test(profile)
        return dialog

    def _test_step(self, step: Step) -> None:
        if self.test_dialog is not None:
            self.test_dialog.add_step(step)
        level = {Outcome.FAILED: "error", Outcome.OK: "ok"}.get(step.outcome, "info")
        self.log.add(level, f"{step.name}: {step.summary}", step.detail)

    def _test_finished(self, name: str, passed: bool) -> None:
        if self.test_dialog is not None:
            self.test_dialog.finish(passed)
        message = f"{name}: every step of the connection test passed" if passed else \
            f"{name}: the connection test found a problem"
        self.profiles.set_status(message, ok=passed)
        self.statusBar().showMessage(message, 15000)

    # -- query -------------------------------------------------------------------------------------------
    def search(self, keys: QueryKeys, *, confirmed: bool = False) -> None:
        profile = self.profiles.current_profile()
        if profile is None:
            self.statusBar().showMessage("Choose a server on the left first (or add one).")
            return
        if not confirmed and self.query_form.is_unbounded():
            self._confirm_unbounded(profile, keys)
            return
        self.results_model.clear()
        self.query_form.set_running(True)
        self.results.show_running(0)
        self.query.search(profile, keys)

    def _confirm_unbounded(self, profile: ServerProfile, keys: QueryKeys) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Search everything?",
                          f"No name, ID or date is given: {profile.name} would send every "
                          f"{'patient' if self.query_form.level_patient.isChecked() else 'study'} it holds "
                          f"(at most {self.query.limit} are shown). Search anyway?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda result: self.search(keys, confirmed=True)
                             if result == QMessageBox.StandardButton.Yes else None)
        self.unbounded_warning = box
        box.open()

    def _query_started(self, name: str, query_text: str) -> None:
        self.log.add("info", f"C-FIND to {name}", query_text)
        self.statusBar().showMessage(f"Searching {name}…")

    def _query_batch(self, results: list) -> None:
        self.results_model.add_results(results)
        self.results.show_running(self.results_model.top_level_count())

    def _query_finished(self, outcome: FindSummary) -> None:
        self.query_form.set_running(False)
        self.results.show_outcome(outcome)
        level = "ok" if outcome.complete else "warn"
        self.log.add(level, f"C-FIND finished: {outcome.summary} in {outcome.elapsed:.2f} s",
                     "; ".join(outcome.reasons + outcome.notes))
        self.statusBar().showMessage(outcome.summary, 15000)

    def _query_failed(self, message: str, detail: str) -> None:
        self.query_form.set_running(False)
        self.results.show_failure(message)
        self.log.add("error", message, detail)
        self.statusBar().showMessage(message)

    def _children_failed(self, node, message: str) -> None:
        self.results_model.set_children_failed(node, message)
        self.log.add("error", message)

    # -- echo ----------------------------------------------------------------------------------------
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

    # -- thumbnails and preview ---------------------------------------------------------------------
    def _build_thumbnails(self) -> None:
        self.thumbnails = ThumbnailsPanel(self.archive)
        self.images_dock = QDockWidget("Images", self)
        self.images_dock.setObjectName("imagesDock")
        self.images_dock.setWidget(self.thumbnails)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.images_dock)
        self.splitDockWidget(self.images_dock, self.log_dock, Qt.Orientation.Horizontal)
        if QSettings().value("main_window/state") is None:  # first start: images large, the log narrow
            self._first_layout = QTimer(self)  # once the window has its size
            self._first_layout.setSingleShot(True)
            self._first_layout.timeout.connect(self._size_images_dock)
            self._first_layout.start(0)

    def _size_images_dock(self) -> None:
        self.resizeDocks([self.images_dock, self.log_dock], [self.width() * 3 // 4, self.width() // 4],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.images_dock], [self.height() * 9 // 20], Qt.Orientation.Vertical)

    def _connect_thumbnails(self) -> None:
        self.results.tree.selectionModel().currentChanged.connect(self._result_selected)

    def _result_selected(self, current, _previous=None) -> None:
        """A study, series or instance row became current: its images from the archive (no network)."""
        result = self.results.result_at(current.siblingAtColumn(0)) if current.isValid() else None
        study_uid = getattr(result, "study_instance_uid", "") or ""
        series_uid = getattr(result, "series_instance_uid", "") or ""
        if study_uid:
            self.thumbnails.show_study(study_uid, series_uid)

    # -- errors, geometry, shutdown ------------------------------------------------------------------------
    def show_error(self, message: str, detail: str = "") -> None:
        self.log.add("error", message, detail)
        self.statusBar().showMessage(message)
        box = QMessageBox(QMessageBox.Icon.Warning, "PACS Browser", message, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if detail:
            box.setDetailedText(detail)
        box.open()

    def _restore_geometry(self) -> None:
        settings = QSettings()
        geometry = settings.value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = settings.value("main_window/state")
        if state is not None:
            self.restoreState(state)
        splitter = settings.value("main_window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        settings = QSettings()
        settings.setValue("main_window/geometry", self.saveGeometry())
        settings.setValue("main_window/state", self.saveState())
        settings.setValue("main_window/splitter", self.splitter.saveState())
        super().closeEvent(event)
        self.closing.emit()

    async def shutdown(self) -> None:
        await self.query.shutdown()
        await self.echo.shutdown()
        await self.profile_controller.shutdown()
        await self.thumbnails.shutdown()
        if self._owns_archive:
            self.archive.close()
