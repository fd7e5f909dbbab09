"""Smaller promises of the results tree: UIDs copied from the context menu, load errors in place,
Ctrl+F to the search field."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import NO_RETRY, ServerProfile, Timeouts
from pacsbrowser.ui.main_window import MainWindow
from pacsbrowser.ui.models.results import Kind, LoadState
from tests.lab.fault_scp import study_dataset

from .conftest import run_until


@pytest.fixture
def peer_and_window(qtbot, qloop, fault_scp, tmp_path, archive):
    studies = [study_dataset(PatientName=f"DETAIL^P{i}", PatientID=f"D{i}", StudyInstanceUID=generate_uid(),
                             StudyDate="20240101", AccessionNumber=f"D{i}") for i in range(3)]
    peer = fault_scp(mode="ok", datasets=studies)
    store = ProfileStore(tmp_path / "profiles")
    store.add(ServerProfile(name="Fault SCP", host=peer.host, port=peer.port, called_ae=peer.ae_title,
                            retry=NO_RETRY, timeouts=Timeouts.uniform(3)))
    window = MainWindow(store, archive=archive)
    qtbot.addWidget(window)
    window.show()
    window.query_form.patient_name.setText("detail")
    window.query_form.search_button.click()
    run_until(qloop, lambda: window.query.last_outcome is not None)
    yield peer, window, studies
    qloop.run_until_complete(window.shutdown())


def test_copy_a_study_uid_from_the_context_menu(peer_and_window):
    _peer, window, studies = peer_and_window
    view = window.results
    index = view.proxy.mapFromSource(window.results_model.index_of(window.results_model.root.children[0]))
    view._context_menu(view.tree.visualRect(index).center())
    actions = {action.text(): action for action in view._menu.actions() if not action.isSeparator()}
    assert set(actions) == {"Retrieve", "Copy Study Instance UID", "Copy Patient ID"}
    actions["Copy Study Instance UID"].trigger()
    assert QGuiApplication.clipboard().text() == window.results_model.root.children[0].result.study_instance_uid
    assert QGuiApplication.clipboard().text() in {str(s.StudyInstanceUID) for s in studies}


def test_a_failed_expansion_shows_the_error_in_place(peer_and_window, qloop):
    peer, window, _studies = peer_and_window
    peer.shutdown()  # the PACS goes away between the search and the expansion
    node = window.results_model.root.children[0]
    view = window.results
    view.tree.expand(view.proxy.mapFromSource(window.results_model.index_of(node)))
    run_until(qloop, lambda: node.state is LoadState.FAILED, timeout=15)
    (error_row,) = node.children
    assert error_row.kind is Kind.ERROR
    assert error_row.message.startswith("Could not load:") and "connection refused" in error_row.message
    assert "Could not load" in window.log.toPlainText()


def test_ctrl_f_goes_to_the_patient_name(peer_and_window, qtbot):
    _peer, window, _studies = peer_and_window
    window.activateWindow()
    window.results.tree.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.query_form.patient_name.hasFocus() or QGuiApplication.focusObject() is window.query_form.patient_name
