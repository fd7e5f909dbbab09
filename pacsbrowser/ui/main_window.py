"""The main window: composes the widgets and the controllers, nothing else."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QDockWidget, QMainWindow, QMessageBox, QSplitter, QWidget

from ..core import logs
from ..core.archive import Archive, default_archive_dir
from ..core.config import ProfileStore
from ..core.diagnostics import Outcome, Step
from ..core.records import FindSummary, QueryKeys, RetrieveMethod, ServerProfile
from . import profile_words
from .about import show_about
from .controllers.demo import DemoController
from .controllers.echo import EchoController
from .controllers.holdings import HoldingsController
from .controllers.profiles import ProfileController
from .controllers.query import QueryController
from .controllers.transfers import TransfersController
from .local_side import LocalSide
from .models.results import Kind, Node, ResultsModel
from .models.transfers import Direction, State
from .widgets.connection_test import ConnectionTestDialog
from .widgets.demo_offer import DemoOffer
from .widgets.log_panel import LogPanel
from .widgets.profile_dialog import ProfileDialog
from .widgets.profile_panel import ProfilePanel
from .widgets.query_form import QueryForm
from .widgets.results_view import ResultsView
from .widgets.thumbnails import ThumbnailsPanel
from .widgets.transfers_panel import TransfersPanel


class MainWindow(QMainWindow):
    closing = Signal()  # the user closed the window: the application shuts down

    def __init__(self, store: ProfileStore | None = None, archive: Archive | None = None) -> None:
        super().__init__()
        self.setWindowTitle("PACS Browser")
        self._owns_archive = archive is None  # opened here (tests, scripts): closed at shutdown
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
        self._build_transfers()
        self._build_thumbnails()
        self._build_menus()
        self._connect_transfers()
        self._build_help_menu()
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
        self._build_local_side()
        self._connect_sides()
        self._connect_thumbnails()

        pc.reload()
        if not pc.profiles:
            self.statusBar().showMessage("No server profiles yet: press “Add…” to describe your PACS.")
        self._restore_geometry()
        self._set_up_demo()

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
        self.view_menu = view_menu
        view_menu.addAction(self.log_dock.toggleViewAction())
        view_menu.addAction(self.images_dock.toggleViewAction())
        self.phi_action = QAction("Show patient data in the log (debug)", self)
        self.phi_action.setCheckable(True)
        self.phi_action.setChecked(logs.show_phi())
        self.phi_action.toggled.connect(logs.set_show_phi)
        view_menu.addAction(self.phi_action)

    def _build_help_menu(self) -> None:
        about = QAction("&About PACS Browser", self)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(lambda: show_about(self))
        self.menuBar().addMenu("&Help").addAction(about)

    def _with_current(self, fn) -> None:
        profile = self.profiles.current_profile()
        if profile is not None:
            fn(profile)

    # -- profiles ----------------------------------------------------------------------------------
    def _open_profile_dialog(self, profile: ServerProfile | None, taken: set[str], on_ok) -> ProfileDialog:
        where, fallback = self.profile_controller.secrets_where()
        dialog = ProfileDialog(profile, taken_names=taken, parent=self, secrets_where=where, secrets_fallback=fallback,
                               secret_saved=self.profile_controller.has_saved_secret(profile))
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
        copy = self.profile_controller.with_saved_secret(
            replace(profile, name=self.profile_controller.duplicate_name(profile.name)), profile.name)

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
        dialog = ConnectionTestDialog(profile.name, self, web=profile.is_web)
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
        if self.profiles.is_local():
            self.local_side.search(keys)
            return
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
        self.log.add("info", f"{profile_words.query_service(self.query.profile)} to {name}", query_text)
        self.statusBar().showMessage(f"Searching {name}…")

    def _query_batch(self, results: list) -> None:
        self.results_model.add_results(results)
        self.results.show_running(self.results_model.top_level_count())

    def _query_finished(self, outcome: FindSummary) -> None:
        self.query_form.set_running(False)
        self.results.show_outcome(outcome)
        level = "ok" if outcome.complete else "warn"
        self.log.add(level, f"{profile_words.query_service(self.query.profile)} finished: {outcome.summary} "
                            f"in {outcome.elapsed:.2f} s",
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
        self.log.add("info", f"{profile_words.echo_service(self.echo.profile)} to {name}")

    def _echo_succeeded(self, name: str, seconds: float) -> None:
        what = profile_words.echo_service(self.echo.profile)
        text = f"{name} answered {'the ' if what == 'C-ECHO' else ''}{what} in {seconds * 1000:.1f} ms"
        self.profiles.set_status(text, ok=True)
        self.log.add("ok", text)
        self.statusBar().showMessage(text, 10000)

    def _echo_failed(self, name: str, message: str, detail: str) -> None:
        self.profiles.set_status(message, ok=False)
        self.log.add("error", f"{name}: {message}", detail)
        self.statusBar().showMessage(message)

    # -- transfers: retrieve, send, the transfers dock ------------------------------------------------
    def _build_transfers(self) -> None:
        self.holdings = HoldingsController(self.archive, self.results_model, self)
        self.transfers = TransfersController(self.archive, self, holdings=self.holdings)
        self.transfers_panel = TransfersPanel(self.transfers.model)
        self.transfers_dock = QDockWidget("Transfers", self)
        self.transfers_dock.setObjectName("transfersDock")
        self.transfers_dock.setWidget(self.transfers_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.transfers_dock)
        self.tabifyDockWidget(self.log_dock, self.transfers_dock)
        self.close_warning: QMessageBox | None = None
        self._close_confirmed = False

    def _connect_transfers(self) -> None:
        t, panel = self.transfers, self.transfers_panel
        self.view_menu.insertAction(self.phi_action, self.transfers_dock.toggleViewAction())
        self.phi_action.toggled.connect(lambda _: t.model.refresh_all())
        self.results.row_activated.connect(lambda node: self._retrieve_nodes([node], activate=True))
        self.results.retrieve_requested.connect(self._retrieve_nodes)
        panel.cancel_requested.connect(t.cancel)
        panel.retry_requested.connect(t.retry)
        panel.get_instead_requested.connect(lambda transfer: t.retry(transfer, RetrieveMethod.GET))
        panel.clear_requested.connect(t.clear_finished)
        t.transfer_added.connect(self._transfer_added)
        t.transfer_finished.connect(self._transfer_finished)

    def _retrieve_nodes(self, nodes: list[Node], activate: bool = False) -> None:
        """Retrieve rows of the results tree from the server they were found on (double-click and
        Enter open what is already here instead)."""
        profile = self.query.profile
        if profile is None:
            self.statusBar().showMessage("Search a server first: rows are retrieved from the server they came from.")
            return
        for node in nodes:
            study = series = None
            parent = node.parent
            while parent is not None:
                if parent.kind is Kind.SERIES:
                    series = parent.result
                elif parent.kind is Kind.STUDY:
                    study = parent.result
                parent = parent.parent
            if activate:
                self.transfers.activate(profile, node.result, study, series)
            else:
                self.transfers.retrieve_result(profile, node.result, study, series)

    def _transfer_added(self, transfer) -> None:
        self.transfers_dock.show()
        self.transfers_dock.raise_()
        way = "from" if transfer.direction is Direction.RETRIEVE else "to"
        self.log.add("info", f"{transfer.direction.value} queued: {transfer.label or transfer.level} "
                             f"({way} {transfer.profile.name})")

    def _transfer_finished(self, transfer) -> None:
        level = {State.COMPLETE: "ok", State.FAILED: "error"}.get(transfer.state, "warn")
        self.log.add(level, f"{transfer.direction.value} {transfer.profile.name}: {transfer.message}", transfer.detail)
        self.statusBar().showMessage(transfer.message, 15000)

    def _transfers_allow_close(self) -> bool:
        """Closing with transfers running asks first; yes cancels them (at shutdown, bounded)."""
        running = self.transfers.active()
        if not running or self._close_confirmed:
            return True
        if self.close_warning is not None and self.close_warning.isVisible():
            return False
        n = len(running)
        box = QMessageBox(QMessageBox.Icon.Question, "Transfers are running",
                          f"{n} transfer{'s are' if n != 1 else ' is'} still running or waiting. Stop "
                          f"{'them' if n != 1 else 'it'} and quit? What has arrived stays on this computer; "
                          "a retrieve started again later fetches only the rest.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.button(QMessageBox.StandardButton.Yes).setText("Stop and quit")
        box.button(QMessageBox.StandardButton.No).setText("Keep running")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(result: int) -> None:
            self.close_warning = None
            if result == QMessageBox.StandardButton.Yes:
                self._close_confirmed = True
                self.close()

        box.finished.connect(answered)
        self.close_warning = box
        box.open()
        return False

    # -- the demo PACS ---------------------------------------------------------------------------------
    def _set_up_demo(self) -> None:
        """Offer the demo PACS when there is no profile; restart it when its profile exists (its
        port changes from run to run)."""
        self.demo = DemoController(self.profile_controller.store, parent=self)
        self.demo_offer = DemoOffer()
        self.demo_offer.setVisible(not self.profile_controller.profiles)
        self.profile_controller.profiles_changed.connect(lambda profiles: self.demo_offer.hide() if profiles else None)
        self.splitter.widget(1).insertWidget(0, self.demo_offer)
        self.demo_offer.accepted.connect(self.demo.start)
        self.demo.started.connect(lambda: (self.demo_offer.set_busy(True),
                                           self.statusBar().showMessage("Preparing the demo PACS…")))
        self.demo.ready.connect(self._demo_ready)
        self.demo.failed.connect(lambda message, detail: (self.demo_offer.set_busy(False),
                                                          self.show_error(message, detail)))
        if DemoController.has_profile(self.profile_controller.profiles):
            QTimer.singleShot(0, self.demo.start)

    def _demo_ready(self, profile: ServerProfile) -> None:
        self.demo_offer.hide()
        self.profile_controller.reload()
        self.profiles.set_profiles(self.profile_controller.profiles, select=profile.name)
        text = f"The demo PACS {profile.called_ae} is serving generated studies on {profile.host}:{profile.port}"
        self.log.add("ok", text)
        self.statusBar().showMessage(text + ": press Search", 15000)

    # -- thumbnails and preview ---------------------------------------------------------------------
    def _build_thumbnails(self) -> None:
        self.thumbnails = ThumbnailsPanel(self.archive)
        self.images_dock = QDockWidget("Images", self)
        self.images_dock.setObjectName("imagesDock")
        self.images_dock.setWidget(self.thumbnails)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.images_dock)
        self.splitDockWidget(self.images_dock, self.log_dock, Qt.Orientation.Horizontal)
        self.tabifyDockWidget(self.log_dock, self.transfers_dock)  # the images large; transfers and log share a tab
        if QSettings().value("main_window/state") is None:  # first start: the images, and beside them transfers and the log
            self._first_layout = QTimer(self)  # once the window has its size
            self._first_layout.setSingleShot(True)
            self._first_layout.timeout.connect(self._size_images_dock)
            self._first_layout.start(0)

    def _size_images_dock(self) -> None:
        self.resizeDocks([self.images_dock, self.log_dock], [self.width() * 11 // 20, self.width() * 9 // 20],
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
        if not self._transfers_allow_close():
            event.ignore()
            return
        settings = QSettings()
        settings.setValue("main_window/geometry", self.saveGeometry())
        settings.setValue("main_window/state", self.saveState())
        settings.setValue("main_window/splitter", self.splitter.saveState())
        super().closeEvent(event)
        self.closing.emit()
        if self._owns_archive and self.listener.server is None:
            self.archive.close()  # nothing more will write to it (shutdown closes it otherwise)

    async def start(self) -> None:
        """What starts once the application's loop runs (app.py calls it)."""
        await self.local_side.start()

    async def shutdown(self) -> None:
        await self.transfers.shutdown()
        await self.holdings.shutdown()
        await self.demo.shutdown()
        await self.query.shutdown()
        await self.echo.shutdown()
        await self.profile_controller.shutdown()
        await self.thumbnails.shutdown()
        await self._shutdown_local_side()

    # -- This computer: the archive, the listener, drops (composed in local_side.py) ----------------------
    def _build_local_side(self) -> None:
        self.local_side = LocalSide(self)
        self.listener = self.local_side.listener  # ListenerController
        self.local = self.local_side.local  # LocalController
        self.drops = self.local_side.drops  # DropController: send_requested(profile, paths)

    def _connect_sides(self) -> None:
        """What the transfers, this computer's archive and the listener tell one another."""
        self.drops.send_requested.connect(lambda profile, paths: self.transfers.send(profile, list(paths)))
        self.transfers.archive_changed.connect(self.local.archive_changed)
        self.listener.received.connect(self.holdings.refresh_study)
        allowed = lambda: self.transfers.set_listener_allowed(self.listener.settings.allowed_calling_aes)  # noqa: E731 - used twice, here
        self.listener.state_changed.connect(lambda: (self.transfers.set_server(self.listener.server), allowed()))
        allowed()
        self.transfers.open_local_requested.connect(self.thumbnails.show_study)
        self.transfers.archive_changed.connect(self.thumbnails.archive_changed)
        self.listener.received.connect(self.thumbnails.archive_changed)

    def open_paths(self, paths: list) -> None:
        """Files passed on the command line or by the desktop (the .desktop entry's %F): as if
        dropped on the window: a confirmation, then a send to the chosen server or an import."""
        self.local_side.drop_on_window(list(paths))

    async def _shutdown_local_side(self) -> None:
        await self.local_side.shutdown()
        if self._owns_archive:
            self.archive.close()
