"""Retrieving and sending from the window against the real Orthanc of the test lab: double-click to
retrieve, what is here shown on each row, a second double-click opening it locally, the transfers
panel with cancel, retry, a C-MOVE destination the PACS does not know, a send with bad files, and
closing the window while transfers run."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtWidgets import QMessageBox

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import RetrieveMethod, RetryPolicy, ServerProfile, Timeouts
from pacsbrowser.ui.main_window import MainWindow
from pacsbrowser.ui.models.holdings import Held
from pacsbrowser.ui.models.results import Kind, LoadState
from pacsbrowser.ui.models.transfers import State
from tests.lab.peers import free_port

from .conftest import StallProbe, run_until

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _profile(peer, name: str = "Lab Orthanc", **changes) -> ServerProfile:
    options = dict(name=name, host=peer.host, port=peer.port, called_ae=peer.aet,
                   retry=RetryPolicy(max_retries=0), timeouts=Timeouts.uniform(10))
    options.update(changes)
    return ServerProfile(**options)


@pytest.fixture
def window(qtbot, qloop, orthanc, tmp_path, archive):
    store = ProfileStore(tmp_path / "profiles")
    store.add(_profile(orthanc))
    win = MainWindow(store, archive)
    win.transfers.listener_host = "127.0.0.1"  # an on-demand C-MOVE listener stays on loopback
    win.transfers.cancel_timeout = 2.0
    win.resize(1500, 900)
    win.show()
    yield win
    qloop.run_until_complete(win.shutdown())
    win.close()  # deleted on the GUI thread by the autouse fixture of conftest.py


def search(qloop, win, **fields) -> None:
    form = win.query_form
    form.clear()
    for name, value in fields.items():
        getattr(form, name).setText(value)
    win.query.last_outcome = None
    form.search_button.click()
    run_until(qloop, lambda: win.query.last_outcome is not None and not win.query.running, timeout=20)


def double_click(qtbot, win, node) -> None:
    view = win.results
    index = view.proxy.mapFromSource(win.results_model.index_of(node))
    view.tree.scrollTo(index)
    rect = view.tree.visualRect(index)
    # as a real double-click: press and release, then the double-click (the view checks the press)
    qtbot.mouseClick(view.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def held(win, uid: str) -> Held | None:
    holding = win.results_model.holding(uid)
    return holding.state if holding is not None else None


def finished(transfer) -> bool:
    return not transfer.state.active


async def until(condition, timeout: float = 60.0) -> None:
    """Inside a scenario coroutine: wait (bounded) with the loop running. Scenarios with transfers in
    flight run as one coroutine: between two run_until_complete() calls qasync processes Qt events
    with no running loop, which a running transfer's next step cannot take (the application's loop
    never stops)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def test_double_click_retrieves_then_opens_from_this_computer(window, qloop, qtbot, lab_data, archive):
    study = next(s for s in lab_data.studies if s.series_count == 2 and s.instance_count > 8)
    search(qloop, window, accession=study.accession)
    (node,) = window.results_model.root.children
    run_until(qloop, lambda: held(window, study.uid) is Held.NONE)
    assert "Not on this computer" in window.results_model.data(window.results_model.index_of(node),
                                                                Qt.ItemDataRole.ToolTipRole)
    changed: list[str] = []
    window.transfers.archive_changed.connect(changed.append)

    double_click(qtbot, window, node)
    model = window.transfers.model
    assert len(model.transfers) == 1
    (transfer,) = model.transfers
    assert transfer.study_uid == study.uid and transfer.state in (State.RUNNING, State.QUEUED)
    assert node.state is LoadState.NOT_LOADED  # double-click retrieves; it does not fold or unfold
    run_until(qloop, lambda: finished(transfer), timeout=60)
    assert transfer.state is State.COMPLETE, transfer.message
    assert transfer.done == study.instance_count and transfer.message.startswith(f"Retrieved {study.instance_count}")
    assert len(archive.instances(study_uid=study.uid)) == study.instance_count
    run_until(qloop, lambda: held(window, study.uid) is Held.FULL)
    assert changed and set(changed) == {study.uid}
    tooltip = window.results_model.data(window.results_model.index_of(node), Qt.ItemDataRole.ToolTipRole)
    assert f"all {study.instance_count} images" in tooltip
    assert window.results_model.data(window.results_model.index_of(node), Qt.ItemDataRole.DecorationRole) is not None
    family = study.patient_name.split("^")[0]
    assert "<redacted>" in model.data(model.index(0, 2)) and family not in model.data(model.index(0, 2))
    window.phi_action.setChecked(True)  # "show patient data": the row names the patient
    assert model.data(model.index(0, 2)).startswith(family)
    window.phi_action.setChecked(False)

    started = window.transfers.started_count
    with qtbot.waitSignal(window.transfers.open_local_requested, timeout=2000) as opened:
        double_click(qtbot, window, node)
    assert opened.args == [study.uid, ""]
    assert window.transfers.started_count == started and len(model.transfers) == 1  # no association opened


def test_enter_on_a_series_then_the_retrieve_button_fetches_only_the_rest(window, qloop, qtbot, lab_data, archive):
    study = next(s for s in lab_data.studies if s.series_count == 2 and s.instance_count > 8)
    search(qloop, window, accession=study.accession)
    (node,) = window.results_model.root.children
    view = window.results
    view.tree.expand(view.proxy.mapFromSource(window.results_model.index_of(node)))
    run_until(qloop, lambda: node.state is LoadState.LOADED)
    first = node.children[0]
    assert first.kind is Kind.SERIES
    series_count = first.result.number_of_instances or len(lab_data.instances_of_series(first.result.series_instance_uid))
    view.tree.setCurrentIndex(view.proxy.mapFromSource(window.results_model.index_of(first)))
    view.tree.setFocus()
    qtbot.keyClick(view.tree, Qt.Key.Key_Return)
    (transfer,) = window.transfers.model.transfers
    assert transfer.series_uid == first.result.series_instance_uid
    run_until(qloop, lambda: finished(transfer), timeout=60)
    assert transfer.state is State.COMPLETE and transfer.done == series_count
    run_until(qloop, lambda: held(window, study.uid) is Held.PARTIAL and
              held(window, first.result.series_instance_uid) is Held.FULL)
    tooltip = window.results_model.data(window.results_model.index_of(node), Qt.ItemDataRole.ToolTipRole)
    assert f"Partly on this computer: {series_count} of {study.instance_count} images" in tooltip
    view.tree.expand(view.proxy.mapFromSource(window.results_model.index_of(node.children[1])))
    run_until(qloop, lambda: node.children[1].state is LoadState.LOADED and
              held(window, node.children[1].children[0].result.sop_instance_uid) is Held.NONE)
    view.grab().save("/tmp/holdings.png")  # to look at: full, partial and empty discs

    view.tree.setCurrentIndex(view.proxy.mapFromSource(window.results_model.index_of(node)))
    view.tree.selectionModel().select(view.proxy.mapFromSource(window.results_model.index_of(node)),
                                      view.tree.selectionModel().SelectionFlag.ClearAndSelect |
                                      view.tree.selectionModel().SelectionFlag.Rows)
    assert view.retrieve_button.isEnabled()
    view.retrieve_button.click()
    second = window.transfers.model.transfers[-1]
    assert second is not transfer and second.study_uid == study.uid and not second.series_uid
    run_until(qloop, lambda: finished(second), timeout=60)
    assert second.state is State.COMPLETE, second.message
    assert (second.already_present, second.done) == (series_count, study.instance_count - series_count)
    assert "were already here" in second.message
    run_until(qloop, lambda: held(window, study.uid) is Held.FULL)


def test_move_through_the_on_demand_listener_and_to_an_unknown_destination(window, qloop, lab_data, orthanc,
                                                                           move_port, archive):
    study = lab_data.studies[0]
    good = _profile(orthanc, "Orthanc by C-MOVE", retrieve_method=RetrieveMethod.MOVE, listener_port=move_port)
    moved = window.transfers.retrieve(good, study.uid, label="first lab study")
    run_until(qloop, lambda: finished(moved), timeout=60)
    assert moved.state is State.COMPLETE, moved.message
    assert len(archive.instances(study_uid=study.uid)) == study.instance_count

    port = free_port()
    unknown = _profile(orthanc, "Orthanc, unknown to it", retrieve_method=RetrieveMethod.MOVE,
                       calling_ae="NOTREGISTERED", listener_port=port)
    failed = window.transfers.retrieve(unknown, lab_data.studies[1].uid, label="second lab study")
    run_until(qloop, lambda: finished(failed), timeout=60)
    assert failed.state is State.FAILED
    for words in ("NOTREGISTERED", "127.0.0.1", f"port {port}", "C-GET"):
        assert words in failed.message, failed.message
    assert "0xC000" in failed.detail
    panel = window.transfers_panel
    panel.select(failed)
    assert panel.message.text() == failed.message
    assert panel.buttons(failed).retry_button.isVisible() and not panel.buttons(failed).cancel_button.isVisible()
    panel.detail_button.click()
    assert "C-MOVE status 0xC000" in panel.detail.toPlainText()
    assert panel.get_button.isVisible()  # offered: C-GET needs nothing registered at the PACS
    qloop.call_soon(panel.get_button.click)
    run_until(qloop, lambda: failed.attempt == 2 and finished(failed), timeout=60)
    assert failed.state is State.COMPLETE and failed.method is RetrieveMethod.GET, failed.message
    assert not panel.get_button.isVisible()


def test_an_unknown_destination_at_dcmqrscp_is_0xa801(window, qloop, lab_data, dcmqrscp):
    port = free_port()
    profile = _profile(dcmqrscp, "dcmqrscp", retrieve_method=RetrieveMethod.MOVE, calling_ae="NOTREGISTERED",
                       listener_port=port)
    failed = window.transfers.retrieve(profile, lab_data.studies[0].uid)
    run_until(qloop, lambda: finished(failed), timeout=60)
    assert failed.state is State.FAILED and failed.offer_get
    assert failed.message.startswith("The PACS does not know the move destination NOTREGISTERED (0xA801)")
    assert f"host 127.0.0.1, port {port}" in failed.message and "C-GET" in failed.message


def test_cancel_a_large_retrieve_from_the_panel_then_retry(window, qloop, qtbot, big_study, archive, capsys):
    transfer = window.transfers.retrieve(window.profile_controller.profiles[0], big_study.study_uid, label="big study")
    buttons = window.transfers_panel.buttons(transfer)
    seen = {}

    async def cancel_part_way() -> float:
        await until(lambda: transfer.done >= 40 or finished(transfer))
        assert not finished(transfer), "the retrieve ended before it could be cancelled"
        seen["buttons"] = (buttons.cancel_button.isVisible(), buttons.retry_button.isVisible())
        clicked = time.monotonic()
        qtbot.mouseClick(buttons.cancel_button, Qt.MouseButton.LeftButton)
        await until(lambda: finished(transfer), timeout=15)
        return time.monotonic() - clicked

    stopped = qloop.run_until_complete(cancel_part_way())
    run_until(qloop, lambda: True)
    assert seen["buttons"] == (True, False)
    kept = len(archive.instances(study_uid=big_study.study_uid))
    assert transfer.state is State.CANCELLED, transfer.message
    assert 40 <= kept < 400 and transfer.done == kept
    assert transfer.message == f"Stopped: {kept} of 400 images are on this computer; Retry fetches the other {400 - kept}."
    assert buttons.retry_button.isVisible() and not buttons.cancel_button.isVisible()
    assert window.transfers_panel.message.text() == transfer.message

    qloop.call_soon(lambda: qtbot.mouseClick(buttons.retry_button, Qt.MouseButton.LeftButton))
    run_until(qloop, lambda: transfer.attempt == 2 and finished(transfer), timeout=60)
    assert transfer.state is State.COMPLETE, transfer.message
    assert (transfer.already_present, transfer.done) == (kept, 400 - kept)
    assert len(archive.instances(study_uid=big_study.study_uid)) == 400
    with capsys.disabled():
        print(f"\n[transfers] cancel from the panel after {kept}/400 images: stopped {stopped * 1000:.0f} ms after "
              f"the click; Retry fetched the other {transfer.done}")


def test_transfers_are_bounded_per_server(window, qloop, lab_data):
    profile = window.profile_controller.profiles[0]
    transfers = [window.transfers.retrieve(profile, s.uid, label=s.accession) for s in lab_data.studies[:4]]
    assert [t.state for t in transfers] == [State.RUNNING, State.RUNNING, State.QUEUED, State.QUEUED]
    again = window.transfers.retrieve(profile, lab_data.studies[0].uid)
    assert again is transfers[0] and len(window.transfers.model.transfers) == 4  # not started twice
    seen_running = []
    run_until(qloop, lambda: seen_running.append(sum(t.state is State.RUNNING for t in transfers)) or
              all(finished(t) for t in transfers), timeout=90)
    assert max(seen_running) <= 2
    assert all(t.state is State.COMPLETE for t in transfers), [t.message for t in transfers]
    window.transfers_panel.clear_button.click()
    assert window.transfers.model.transfers == []


def test_cancel_at_once_and_while_waiting(window, qloop, lab_data):
    profile = window.profile_controller.profiles[0]
    transfers = []

    async def scenario() -> None:
        transfers.extend(window.transfers.retrieve(profile, s.uid) for s in lab_data.studies[:3])
        assert transfers[2].state is State.QUEUED
        window.transfers.cancel(transfers[2])  # waiting: it never starts
        window.transfers.cancel(transfers[0])  # started, not a single step taken yet
        await until(lambda: all(finished(t) for t in transfers))

    qloop.run_until_complete(scenario())
    run_until(qloop, lambda: True)
    assert [t.state for t in transfers] == [State.CANCELLED, State.COMPLETE, State.CANCELLED], \
        [t.message for t in transfers]
    assert transfers[2].message == "Cancelled before it started." and transfers[2].started is None


def test_send_a_folder_with_a_damaged_and_a_non_dicom_file(window, qloop, lab_data, orthanc_factory, workdir):
    empty = orthanc_factory(load=False, aet="UISEND")
    folder = workdir / "to send"
    folder.mkdir()
    good = [lab_data.uncompressed_instances()[0], lab_data.instances[-1]]
    for number, instance in enumerate(good):
        (folder / f"good{number}.dcm").write_bytes(instance.path.read_bytes())
    (folder / "notes.txt").write_text("Patient called back, see report.\n")
    whole = lab_data.uncompressed_instances()[1].path.read_bytes()
    (folder / "damaged.dcm").write_bytes(whole[: len(whole) // 2])

    transfer = window.transfers.send(_profile(empty, "Empty Orthanc"), [folder])
    run_until(qloop, lambda: finished(transfer), timeout=60)
    assert transfer.state is State.INCOMPLETE, transfer.message
    assert transfer.message.startswith("Sent 2 of 4 files") and "2 not sendable" in transfer.message
    assert empty.sop_instance_uids() == {i.sop_instance_uid for i in good}
    reasons = {Path(r.name).name: r.reason for r in transfer.problems}
    assert set(reasons) == {"notes.txt", "damaged.dcm"}
    assert "not a DICOM file" in reasons["notes.txt"] and "truncated" in reasons["damaged.dcm"]
    panel = window.transfers_panel
    panel.select(transfer)
    assert panel.detail.isVisible() and "notes.txt" in panel.detail.toPlainText()
    assert transfer.item_text() == "to send"
    assert not panel.buttons(transfer).retry_button.isVisible()  # sending again would not help those two


def test_cancel_a_send_part_way(window, qloop, big_study, orthanc_factory):
    empty = orthanc_factory(load=False, aet="UICANCEL")
    transfer = window.transfers.send(_profile(empty, "Empty Orthanc"), big_study.paths())

    async def cancel_part_way() -> float:
        await until(lambda: transfer.done >= 20 or finished(transfer))
        assert not finished(transfer), "the send ended before it could be cancelled"
        clicked = time.monotonic()
        window.transfers_panel.buttons(transfer).cancel_button.click()
        await until(lambda: finished(transfer), timeout=15)
        return time.monotonic() - clicked

    stopped = qloop.run_until_complete(cancel_part_way())
    run_until(qloop, lambda: True)
    assert transfer.state is State.CANCELLED, transfer.message
    assert transfer.message.startswith("Stopped after") and transfer.retryable
    held_there = empty.instance_count()
    assert 20 <= held_there < 400
    print(f"\n[transfers] send cancelled after {held_there}/400 files stored: stopped {stopped * 1000:.0f} ms "
          "after the click")


def test_closing_with_a_transfer_running_asks_then_cancels_it(window, qloop, big_study, archive):
    closed = []
    window.closing.connect(lambda: closed.append(True))
    transfer = window.transfers.retrieve(window.profile_controller.profiles[0], big_study.study_uid)
    seen = {}

    async def close_part_way() -> None:
        await until(lambda: transfer.done >= 20 or finished(transfer))
        assert not finished(transfer)
        window.close()
        box = window.close_warning
        seen["asked"] = (box is not None and box.isVisible(), window.isVisible(), bool(closed), box.text())
        box.button(QMessageBox.StandardButton.Yes).click()
        await until(lambda: bool(closed), timeout=5)
        started = time.monotonic()
        await window.shutdown()  # what the application does once the window has closed
        seen["shutdown"] = time.monotonic() - started

    app = QCoreApplication.instance()
    app.setQuitOnLastWindowClosed(False)  # as the application: the loop ends after shutdown, not on close
    try:
        qloop.run_until_complete(close_part_way())
    finally:
        app.setQuitOnLastWindowClosed(True)
    visible, still_open, closed_early, text = seen["asked"]
    assert visible and still_open and not closed_early
    assert "1 transfer is still running" in text
    assert not window.isVisible()
    print(f"\n[transfers] shutdown with a running retrieve took {seen['shutdown'] * 1000:.0f} ms")
    assert transfer.state is State.CANCELLED
    assert transfer.done == len(archive.instances(study_uid=big_study.study_uid)) < 400


def test_the_panel_as_a_clinician_sees_it(window, qloop, qtbot, lab_data, big_study, orthanc, orthanc_factory, workdir):
    """Several transfers in several states, for the eyes: /tmp/transfers.png (docs/transfers.png with
    PACSBROWSER_WRITE_DOCS=1)."""
    profile = window.profile_controller.profiles[0]
    study = next(s for s in lab_data.studies if s.series_count == 2 and s.instance_count > 8)
    search(qloop, window, accession=study.accession)
    double_click(qtbot, window, window.results_model.root.children[0])
    done = window.transfers.model.transfers[0]
    run_until(qloop, lambda: finished(done), timeout=60)
    unknown = _profile(orthanc, "Orthanc (C-MOVE)", retrieve_method=RetrieveMethod.MOVE, calling_ae="NOTREGISTERED",
                       listener_port=free_port())
    failed = window.transfers.retrieve(unknown, lab_data.studies[1].uid, label="MR 2021-03-02 Knee")
    folder = workdir / "CD import"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(lab_data.instances[0].path.read_bytes())
    (folder / "README.txt").write_text("not an image")
    empty = orthanc_factory(load=False, aet="UISHOT")
    sent = window.transfers.send(_profile(empty, "Teaching PACS"), [folder])
    run_until(qloop, lambda: finished(failed) and finished(sent), timeout=60)
    big = window.transfers.retrieve(profile, big_study.study_uid, label="CT 2024-01-02 Chest (400 images)")

    async def shoot() -> None:
        await until(lambda: big.done >= 120 or finished(big))
        window.transfers_panel.select(failed)
        window.transfers_dock.raise_()
        window.resizeDocks([window.transfers_dock], [330], Qt.Orientation.Vertical)
        await asyncio.sleep(0.05)
        picture = window.grab()
        picture.save("/tmp/transfers.png")
        if os.environ.get("PACSBROWSER_WRITE_DOCS"):  # remake docs/transfers.png on purpose only
            picture.save(str(DOCS / "transfers.png"))
        window.transfers.cancel(big)
        await until(lambda: finished(big), timeout=15)

    qloop.run_until_complete(shoot())
    run_until(qloop, lambda: True)


def test_move_to_the_apps_running_listener(window, qloop, lab_data, orthanc, move_port, archive):
    """With the app's listener given (set_server), a C-MOVE to our AE title lands through it and it
    keeps running afterwards: no listener of the retrieve's own is started."""
    from pacsbrowser.core.server import ArchiveServer

    server = ArchiveServer(move_port, "PACSBROWSER", archive, host="127.0.0.1")
    qloop.run_until_complete(server.start())
    try:
        window.transfers.set_server(server)
        profile = _profile(orthanc, "Orthanc by C-MOVE", retrieve_method=RetrieveMethod.MOVE, listener_port=move_port)
        study = lab_data.studies[2]
        transfer = window.transfers.retrieve(profile, study.uid)
        run_until(qloop, lambda: finished(transfer), timeout=60)
        assert transfer.state is State.COMPLETE, transfer.message
        assert server.is_running and server.stats.stored == study.instance_count
    finally:
        qloop.run_until_complete(server.stop())


def test_the_window_stays_responsive_while_a_large_study_arrives(window, qloop, big_study, capsys):
    search(qloop, window, accession="RTUIBIG")
    (node,) = window.results_model.root.children
    states: set = set()
    window.holdings.changed.connect(lambda: states.add(held(window, big_study.study_uid)))
    with StallProbe() as probe:
        started = time.monotonic()
        transfer = window.transfers.activate(window.query.profile, node.result)
        run_until(qloop, lambda: finished(transfer) and held(window, big_study.study_uid) is Held.FULL, timeout=90)
        took = time.monotonic() - started
    assert transfer.state is State.COMPLETE, transfer.message
    with capsys.disabled():
        print(f"\n[transfers] longest event-loop stall while 400 images arrived through the window: "
              f"{probe.longest * 1000:.0f} ms over {len(probe.gaps)} ticks ({transfer.message}; {took:.2f} s, "
              f"marks seen: {sorted(s.value for s in states if s is not None)})")
    assert probe.longest < 1.0  # generous: the figure printed is what matters
    # The row's mark follows the files as they arrive: arrivals are announced every NOTIFY_SECONDS,
    # so a transfer that takes several of those shows "partial" on the way; a quicker one may go
    # straight to "full" (400 small images can arrive in less than half a second).
    if took > 4 * window.transfers.NOTIFY_SECONDS:
        assert Held.PARTIAL in states
