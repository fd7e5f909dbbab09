"""The window's "This computer" side: the local archive in the results tree, the listener in the
status bar, and drops of files and folders. It composes widgets and controllers for the main
window (kept apart from main_window.py so that each side of the window stays small).

The window exposes what others wire to: `window.listener` (ListenerController), `window.local`
(LocalController) and `window.drops` (DropController, whose `send_requested(profile, paths)`
fires once the user has confirmed a drop onto a server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QDialog, QLabel, QMessageBox, QToolButton

from ..core.archive import DeleteReport
from ..core.config import SettingsStore
from ..core.records import InstanceResult, PatientResult, QueryKeys, SeriesResult, StudyResult
from .controllers.drop import LOCAL, DropController
from .controllers.listener import ListenerController, ListenerState
from .controllers.local import LocalController
from .widgets.drop import DropFilter, confirmation, count_text, size_text
from .widgets.listener_settings import ListenerSettingsDialog

if TYPE_CHECKING:
    from .main_window import MainWindow


class LocalSide(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        settings = SettingsStore(window.profile_controller.store.directory)  # beside profiles.toml
        self.listener = ListenerController(window.archive, settings, self)
        self.local = LocalController(window.archive, self)
        self.drops = DropController(self)
        self.results_are_local = False  # the results tree shows this computer's archive
        self.counts: dict = {}
        self.delete_confirmation: QMessageBox | None = None
        self.drop_confirmation: QMessageBox | None = None
        self.listener_dialog: ListenerSettingsDialog | None = None
        self._logged_error = ""
        self.started = False  # start() has run (the application's loop is running)
        self._logged_state = ListenerState.STOPPED
        self.status = QLabel("")
        self.status.setObjectName("listenerStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.settings_button = QToolButton()
        self.settings_button.setText("Listener…")
        self.settings_button.setAutoRaise(True)
        self.settings_button.setToolTip("Our listener's AE title, port, allowed callers and TLS")
        window.statusBar().addPermanentWidget(self.status)
        window.statusBar().addPermanentWidget(self.settings_button)
        self.drop_filter = DropFilter(self._drop_target_at, self)
        for widget in (window, window.profiles.list.viewport(), window.profiles.local.viewport()):
            self.drop_filter.watch(widget)
        self._build_menu()
        self._connect()

    def _build_menu(self) -> None:
        menu = self.window.menuBar().addMenu("&This computer")
        for text, slot in (("&Show what it holds", self.show),
                           ("Start the &listener", self.listener.start), ("St&op the listener", self.listener.stop),
                           ("Listener &settings…", self.edit_listener),
                           ("Open the archive &folder", lambda: self._open_folder(self.window.archive.root))):
            action = QAction(text, self)
            action.triggered.connect(lambda _=False, f=slot: f())
            menu.addAction(action)

    def _connect(self) -> None:
        w = self.window
        self.listener.state_changed.connect(self._listener_changed)
        self.listener.received.connect(self.local.archive_changed)
        self.settings_button.clicked.connect(self.edit_listener)
        w.profiles.local_chosen.connect(self.show)
        w.results_model.modelReset.connect(self._results_cleared)  # a new search of a PACS, or of ours
        w.results_model.children_requested.connect(self._load_children)
        w.results.menu_about_to_show.connect(self._context_menu)
        self.local.results.connect(self._results)
        self.local.finished.connect(self._finished)
        self.local.refreshed.connect(self._refreshed)
        self.local.failed.connect(self._failed)
        self.local.children_loaded.connect(w.results_model.set_children)
        self.local.children_failed.connect(w._children_failed)
        self.local.counts_changed.connect(self._counts_changed)
        self.local.deleted.connect(self._deleted)
        self.local.imported.connect(self._imported)
        self.local.folder_found.connect(self._open_folder)
        self.local.files_found.connect(self._confirm_files)  # "Send to": the same question as a drop
        self.drop_filter.hovering.connect(self._drop_hover)
        self.drop_filter.dropped.connect(self.drop)
        self.drops.scanning.connect(lambda n: w.statusBar().showMessage(f"Reading what was dropped… {n} files so far"))
        self.drops.scanned.connect(self._confirm_files)
        self.drops.import_requested.connect(self.local.import_files)
        self.drops.send_requested.connect(
            lambda profile, paths: w.log.add("info", f"{len(paths)} dropped files to send to {profile.name}"))
        if self.listener.settings_error:
            w.log.add("error", "The listener settings cannot be read", self.listener.settings_error)
        self._listener_changed()

    async def start(self) -> None:
        """Once the application's loop runs: the archive's counts, the listener when the settings
        say so, and the archive's studies when "This computer" is the current entry."""
        self.started = True
        self.local.refresh_counts()
        if self.window.profiles.is_local():
            self.show()
        task = self.listener.start_if_wanted()
        if task is not None:
            await task

    async def shutdown(self) -> None:
        await self.drops.shutdown()
        await self.listener.shutdown()
        await self.local.shutdown()

    # -- the archive in the results tree -----------------------------------------------------------------
    def _load_children(self, node: Any) -> None:
        if self.results_are_local:
            self.local.load_children(node)
        else:
            self.window.query.load_children(node)

    def _results_cleared(self) -> None:
        self.results_are_local = False  # until search() says the rows to come are ours

    def show(self) -> None:
        """List what this computer holds, with the form's keys (everything when the form is empty)."""
        if not self.window.profiles.is_local():
            self.window.profiles.choose_local()  # comes back here through local_chosen
            return
        if not self.started:
            return  # the window is being built: start() lists the archive once the loop runs
        try:
            keys = self.window.query_form.keys()
        except ValueError as exc:
            self.window.query_form.problem.setText(str(exc))
            return
        self.search(keys)

    def search(self, keys: QueryKeys) -> None:
        w = self.window
        w.query.cancel()
        w.results_model.clear()
        self.results_are_local = True
        w.results.show_running(0)
        w.results.summary.setText("Searching this computer…")
        self.local.search(keys)

    def _results(self, results: list) -> None:
        if self.results_are_local:
            self.window.results_model.add_results(results)

    def _refreshed(self, results: list) -> None:
        if self.results_are_local:
            self.window.results_model.sync_results(results)
            self._finished(len(results), 0.0)

    def _finished(self, count: int, _seconds: float) -> None:
        if not self.results_are_local:
            return
        patients = self.local.keys is not None and self.local.keys.level.name == "PATIENT"
        text = count_text(count, "patient") if patients else count_text(count, "study", "studies")
        text += " on this computer"
        if self.counts:
            text += f" · the archive holds {count_text(self.counts.get('studies', 0), 'study', 'studies')} " \
                    f"({size_text(self.counts.get('bytes', 0))})"
        self.window.results.summary.setStyleSheet("")
        self.window.results.summary.setText(text)

    def _failed(self, message: str, detail: str) -> None:
        self.window.results.show_failure(message)
        self.window.log.add("error", message, detail)
        self.window.statusBar().showMessage(message)

    def _counts_changed(self, counts: dict) -> None:
        self.counts = counts
        self._update_entry()
        for caller, n in sorted(self.listener.take_arrivals().items()):  # at most every REFRESH_SECONDS
            self.window.log.add("ok", f"Received {count_text(n, 'image')} from {caller or 'an unnamed sender'}")

    def _update_entry(self) -> None:
        """The lines under "This computer" in the profile panel."""
        lines = []
        if self.counts:
            lines.append(f"{count_text(self.counts.get('studies', 0), 'study', 'studies')}, "
                         f"{count_text(self.counts.get('instances', 0), 'image')} · {size_text(self.counts.get('bytes', 0))}")
        ae, port = self.listener.settings.ae_title, self.listener.address()[1]
        lines.append({ListenerState.RUNNING: f"Receiving as {ae} on port {port}",
                      ListenerState.STARTING: "Listener starting…",
                      ListenerState.ERROR: "Listener not running (see the status bar)",
                      ListenerState.STOPPED: "Listener stopped"}[self.listener.state])
        self.window.profiles.set_local_summary("\n".join(lines))

    # -- delete, and show in the file manager ------------------------------------------------------------
    def _context_menu(self, menu: Any, result: Any) -> None:
        if not self.results_are_local:
            return
        chosen = self.window.results.selected_results()
        if result not in chosen:
            chosen = [result]
        menu.addSeparator()
        show = QAction("Show in file manager", menu)
        show.triggered.connect(lambda: self.local.find_folder(result))
        menu.addAction(show)
        profiles = self.window.profile_controller.profiles
        if profiles:
            send = menu.addMenu("Send to")
            for profile in profiles:
                action = QAction(profile.name, send)
                action.triggered.connect(lambda _=False, p=profile: self.local.find_files(chosen, p))
                send.addAction(action)
        deletable = [r for r in chosen if not isinstance(r, InstanceResult)]
        if deletable:
            delete = QAction("Delete from this computer…", menu)
            delete.triggered.connect(lambda: self.confirm_delete(deletable))
            menu.addAction(delete)

    def confirm_delete(self, items: list) -> QMessageBox:
        images = sum(getattr(r, "number_of_instances", 0) or 0 for r in items)
        counted = ((sum(isinstance(r, PatientResult) for r in items), "patient", "patients"),
                   (sum(isinstance(r, StudyResult) for r in items), "study", "studies"),
                   (sum(isinstance(r, SeriesResult) for r in items), "series", "series"))
        what = ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counted if n)
        if len(items) == 1 and not isinstance(items[0], SeriesResult):
            name = str(items[0].patient_name) or items[0].patient_id
            what += f" of {name}" if name else ""
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete from this computer",
                          f"Delete {what} ({count_text(images, 'image')}) from this computer?",
                          QMessageBox.StandardButton.Cancel, self.window)
        box.setObjectName("deleteConfirmation")
        box.setInformativeText("The files are removed from this computer's disk. Copies on a PACS stay there.")
        go = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _result: self.local.delete(items) if box.clickedButton() is go else None)
        self.delete_confirmation = box
        box.open()
        return box

    def _deleted(self, report: DeleteReport) -> None:
        text = f"Deleted {count_text(report.instances, 'image')} ({size_text(report.bytes)}) from this computer"
        if report.kept:
            text += f"; {len(report.kept)} files could not be removed"
        self.window.log.add("warn" if report.kept else "ok", text, "\n".join(report.kept))
        self.window.statusBar().showMessage(text, 15000)

    def _open_folder(self, path: Any) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    # -- the listener ------------------------------------------------------------------------------------------
    def _listener_changed(self) -> None:
        listener = self.listener
        self.status.setText(listener.describe())
        colour = {ListenerState.RUNNING: "#1b7f3b", ListenerState.ERROR: "#b3261e"}.get(listener.state, "palette(text)")
        self.status.setStyleSheet(f"color: {colour};")
        host, port = listener.address()
        self.status.setToolTip(
            f"To send images here, a PACS or modality needs: AE title {listener.settings.ae_title}, "
            f"host {host}, port {port}" + (f"\n{listener.error_detail}" if listener.error_detail else ""))
        if listener.state is ListenerState.ERROR and listener.error != self._logged_error:
            self._logged_error = listener.error
            self.window.log.add("error", f"The listener cannot start: {listener.error}", listener.error_detail)
        if listener.state is not self._logged_state and listener.state in (ListenerState.RUNNING, ListenerState.STOPPED):
            if listener.state is ListenerState.RUNNING:
                self.window.log.add("ok", f"Listening as {listener.settings.ae_title} on {host}:{port}"
                                          f"{' (DICOM TLS)' if listener.settings.tls else ''}")
            elif self._logged_state is ListenerState.RUNNING:
                self.window.log.add("info", f"Listener stopped after receiving {count_text(listener.received_count, 'image')}")
        self._logged_state = listener.state
        self._update_entry()

    def edit_listener(self) -> ListenerSettingsDialog:
        host, port = self.listener.address()
        dialog = ListenerSettingsDialog(self.listener.settings, f"A PACS sends to this computer at {host}, "
                                        f"port {port}, as AE title {self.listener.settings.ae_title}.", self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def done(result: int) -> None:
            settings = dialog.settings()
            if result == QDialog.DialogCode.Accepted and settings is not None:
                self.listener.apply(settings)

        dialog.finished.connect(done)
        self.listener_dialog = dialog
        dialog.open()
        return dialog

    # -- drops ------------------------------------------------------------------------------------------------
    def _drop_target_at(self, widget: Any, position: Any) -> Any:
        profiles = self.window.profiles
        if widget is profiles.local.viewport():
            return LOCAL
        if widget is profiles.list.viewport():
            item = profiles.list.itemAt(position)
            if item is not None:
                return item.data(Qt.ItemDataRole.UserRole)
        return LOCAL if profiles.is_local() else profiles.current_profile()

    def _drop_hover(self, target: Any) -> None:
        if target is None:
            text = "Choose a server on the left, or drop onto one"
        elif target == LOCAL:
            text = "Drop to import into this computer's archive"
        else:
            text = f"Drop to send to {target.name}"
        self.window.statusBar().showMessage(text, 2000)

    def drop_on_window(self, paths: list) -> None:
        """As if dropped on the window: to the chosen server, or into this computer's archive."""
        self.drop(self._drop_target_at(None, None), paths)

    def drop(self, target: Any, paths: list) -> None:
        """Files or folders were dropped onto `target` (a ServerProfile, LOCAL, or None)."""
        if target is None:
            self.window.statusBar().showMessage("Choose a server on the left first, or drop onto one.")
            return
        self.window.statusBar().showMessage("Reading what was dropped…")
        self.drops.drop(target, paths)

    def _confirm_files(self, target: Any, scan: Any) -> None:
        """Ask before sending (or importing) what a drop or "Send to" found."""
        self.window.statusBar().clearMessage()
        box = confirmation(target, scan, self.window)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        go = box.go_button
        box.finished.connect(lambda _result: self.drops.confirm(target, scan)
                             if go is not None and box.clickedButton() is go else None)
        self.drop_confirmation = box
        box.open()

    def _imported(self, count: int, problems: list) -> None:
        text = f"Imported {count_text(count, 'image')} into this computer's archive"
        if problems:
            text += f"; {len(problems)} could not be imported"
        self.window.log.add("warn" if problems else "ok", text,
                            "\n".join(f"{u.path}: {u.reason}" for u in problems))
        self.window.statusBar().showMessage(text, 15000)

