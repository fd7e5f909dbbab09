"""First start with no profile: the window offers the demo PACS; one click creates and serves it,
selects its profile, a search lists the demo studies, and a double-click retrieves one into this
computer, its images shown. The demo server stops with the window."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.demo import PROFILE_NAME, create_demo_archive
from pacsbrowser.ui.main_window import MainWindow
from pacsbrowser.ui.models.holdings import Held
from pacsbrowser.ui.models.transfers import State

from .conftest import run_until
from .test_transfers_window import double_click, finished, held

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(tmp_path_factory.mktemp("demo")) / "demo-archive"
    create_demo_archive(root)
    return root


def test_try_with_demo_data(qtbot, qloop, tmp_path, monkeypatch, demo_source: Path, archive) -> None:
    demo_dir = tmp_path / "demo-archive"
    shutil.copytree(demo_source, demo_dir)
    monkeypatch.setenv("PACSBROWSER_DEMO_DIR", str(demo_dir))
    store = ProfileStore(tmp_path / "profiles")
    shots = Path(os.environ.get("PACSBROWSER_SCREENSHOTS", tmp_path))  # where to look at the window
    win = MainWindow(store, archive)
    win.transfers.listener_host = "127.0.0.1"  # were a C-MOVE listener started on demand: loopback only
    qtbot.addWidget(win)
    win.show()
    try:
        assert win.demo_offer.isVisible()
        win.grab().save(str(shots / "demo-offer.png"))
        win.demo_offer.button.click()
        run_until(qloop, lambda: win.demo.running and win.profiles.current_profile() is not None, timeout=60)
        assert not win.demo_offer.isVisible()
        assert win.profiles.current_profile().name == PROFILE_NAME
        assert store.get(PROFILE_NAME).port == win.demo.demo.profile.port
        win.query.last_outcome = None
        win.query_form.patient_name.setText("demo")
        win.query_form.search_button.click()
        run_until(qloop, lambda: win.query.last_outcome is not None and not win.query.running, timeout=30)
        names = {node.result.patient_name.alphabetic for node in win.results_model.root.children}
        assert len(win.results_model.root.children) >= 6 and all(n.startswith("DEMO") for n in names)
        win.grab().save(str(shots / "demo-search.png"))

        node = min(win.results_model.root.children, key=lambda n: n.result.number_of_instances or 0)
        double_click(qtbot, win, node)  # retrieved from the demo PACS with the profile's method
        (transfer,) = win.transfers.model.transfers
        run_until(qloop, lambda: finished(transfer), timeout=90)
        assert transfer.state is State.COMPLETE, transfer.message
        wanted = node.result.number_of_instances
        assert wanted and len(archive.instances(study_uid=node.result.study_instance_uid)) == wanted
        run_until(qloop, lambda: held(win, node.result.study_instance_uid) is Held.FULL)
        double_click(qtbot, win, node)  # now here: its images, no association
        run_until(qloop, lambda: len(win.thumbnails.model.instance_tiles()) == wanted, timeout=60)
        assert len(win.transfers.model.transfers) == 1
    finally:
        qloop.run_until_complete(win.shutdown())
    assert not win.demo.running
