"""The Images panel: thumbnails from the local archive, grouped by series, filling in as files
arrive, placeholders that say what an object is or what is wrong with it; and the window's
results tree driving it. Real archive, real worker processes, no network."""

from __future__ import annotations

import os

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.imaging import Kind
from pacsbrowser.core.records import SeriesResult, StudyResult
from pacsbrowser.ui.widgets.thumbnails import ThumbnailsPanel

from .conftest import run_until
from .thumbs_data import EXTRA_STUDY, dispose, extras, fill

SHOTS = os.environ.get("PACSBROWSER_SHOTS")  # a folder: save screenshots there


@pytest.fixture
def filled(workdir, lab_data):
    archive = Archive(workdir / "archive")
    try:
        extra = extras(workdir / "extras", lab_data)
        fill(archive, [*lab_data.paths(), *extra.values()])
        yield archive, extra
    finally:
        archive.close()


@pytest.fixture
def panel(qtbot, qloop, filled):
    archive, _ = filled
    widget = ThumbnailsPanel(archive)
    widget.resize(1000, 600)
    widget.show()
    yield widget
    qloop.run_until_complete(widget.shutdown())
    dispose(widget)


def wait_all_ready(qloop, panel, count: int, timeout: float = 60) -> None:
    run_until(qloop, lambda: panel.model.counts() == (count, count) and not panel.controller.busy, timeout=timeout)


def test_every_study_shows_a_thumbnail_per_image_and_labelled_placeholders(panel, qloop, filled, lab_data, qtmodeltester):
    qtmodeltester.check(panel.model)
    archive, _ = filled
    for study in lab_data.studies:
        panel.show_study(study.uid)
        expected = {i.sop_instance_uid for i in lab_data.instances_of_study(study.uid)}
        extra_count = 3 if study.accession == EXTRA_STUDY else 0
        wait_all_ready(qloop, panel, len(expected) + extra_count)
        tiles = panel.model.instance_tiles()
        images = {t.sop_instance_uid for t in tiles if t.thumbnail.kind is Kind.IMAGE}
        assert images == expected, study.description
        headers = [t for t in panel.model.tiles() if t.is_header]
        assert len(headers) == study.series_count + (2 if extra_count else 0)
        for tile in tiles:
            if tile.thumbnail.kind is Kind.IMAGE:
                assert tile.image is not None and not tile.image.isNull()
                assert max(tile.image.width(), tile.image.height()) == 128
        assert f"{len(expected) + extra_count} objects" in panel.title.text()
        if study.accession == EXTRA_STUDY:
            placeholders = {archive.instance(uid).path.name: t for uid, t in panel.model.placeholders().items()}
            kinds = sorted((t.kind.value, t.label) for t in placeholders.values())
            assert kinds == [("damaged", "Damaged file"), ("no-pixels", "PDF document"),
                             ("no-pixels", "Structured report")]
            damaged = next(t for t in placeholders.values() if t.kind is Kind.DAMAGED)
            assert damaged.detail  # the reason, shown on the tile and in its tooltip
            tile = next(t for t in tiles if t.thumbnail is damaged)
            assert damaged.detail in tile.tooltip()
            assert "1 cannot be shown" in panel.title.text()
            if SHOTS:
                panel.grab().save(os.path.join(SHOTS, "thumbnails-ct.png"))
        if study.accession == "ACC2023005" and SHOTS:  # US with the cine loop
            panel.grab().save(os.path.join(SHOTS, "thumbnails-us.png"))
    cine = next(i for i in lab_data.instances if i.frames > 1)
    panel.show_study(cine.study_uid)
    wait_all_ready(qloop, panel, len(lab_data.instances_of_study(cine.study_uid)))
    assert panel.model.tile_of(cine.sop_instance_uid).frames == 4
    assert "4 frames" in panel.model.tile_of(cine.sop_instance_uid).caption()


def test_a_study_shown_again_comes_from_the_disk_cache(panel, qloop, lab_data):
    first, second = lab_data.studies[3], lab_data.studies[6]
    panel.show_study(first.uid)
    wait_all_ready(qloop, panel, first.instance_count)
    panel.show_study(second.uid)
    wait_all_ready(qloop, panel, second.instance_count)
    service = panel.controller._service
    submitted = service.stats.submitted
    panel.show_study(first.uid)
    wait_all_ready(qloop, panel, first.instance_count)
    assert service.stats.submitted == submitted  # nothing went to the worker processes


def test_only_the_series_asked_for(panel, qloop, lab_data):
    study = lab_data.study_by_accession("ACC2016004")  # MR brain, two series
    series = lab_data.series_of(study.uid)[1]
    panel.show_study(study.uid, series.uid)
    wait_all_ready(qloop, panel, series.instance_count)
    assert {t.series_uid for t in panel.model.tiles()} == {series.uid}


def test_archive_changed_adds_the_new_files(qtbot, qloop, workdir, lab_data):
    study = lab_data.study_by_accession("ACC2025007")  # MR knee, 8 slices, half of them RLE
    files = [i.path for i in lab_data.instances_of_study(study.uid)]
    archive = Archive(workdir / "archive")
    panel = ThumbnailsPanel(archive)
    try:
        fill(archive, files[:3])
        panel.show_study(study.uid)
        wait_all_ready(qloop, panel, 3)
        panel.archive_changed("1.2.3.4")  # another study: nothing to do
        assert not panel.controller.busy
        for path in files[3:]:  # arriving one by one, each followed by a signal
            fill(archive, [path])
            panel.archive_changed(study.uid)
        wait_all_ready(qloop, panel, len(files))
        numbers = [t.instance_number for t in panel.model.instance_tiles()]
        assert numbers == sorted(numbers) and len(numbers) == len(files)
        header = next(t for t in panel.model.tiles() if t.is_header)
        assert header.shown == header.series.instance_count == len(files)
    finally:
        qloop.run_until_complete(panel.shutdown())
        dispose(panel)
        archive.close()


def test_selecting_a_results_row_shows_its_images_from_the_archive(qtbot, qloop, tmp_path, workdir, lab_data):
    from pacsbrowser.core.config import ProfileStore
    from pacsbrowser.ui.main_window import MainWindow

    study = lab_data.study_by_accession("ACC2016004")
    archive = Archive(workdir / "archive")
    fill(archive, [i.path for i in lab_data.instances_of_study(study.uid)])
    win = MainWindow(ProfileStore(tmp_path / "profiles"), archive=archive)
    qtbot.addWidget(win)
    win.show()
    try:
        assert win.thumbnails.parent() is win.images_dock or win.images_dock.widget() is win.thumbnails
        win.results_model.add_results([StudyResult(study_instance_uid=study.uid, study_description=study.description)])
        tree = win.results.tree
        tree.setCurrentIndex(win.results.proxy.index(0, 0))
        wait_all_ready(qloop, win.thumbnails, study.instance_count)
        assert win.thumbnails.model.study_uid == study.uid
        series = lab_data.series_of(study.uid)[0]
        node = win.results_model.root.children[0]
        win.results_model.set_children(node, [SeriesResult(series_instance_uid=series.uid, study_instance_uid=study.uid,
                                                           series_number=series.number)])
        tree.setCurrentIndex(win.results.proxy.index(0, 0, win.results.proxy.index(0, 0)))
        wait_all_ready(qloop, win.thumbnails, series.instance_count)
        assert win.thumbnails.model.series_uid == series.uid
    finally:
        qloop.run_until_complete(win.shutdown())
        win.close()
        archive.close()


def test_the_tiles_on_screen_are_rendered_first(qtbot, qloop, workdir):
    from collections import deque

    from tests.imaging.samples import make_series

    archive = Archive(workdir / "archive")
    panel = ThumbnailsPanel(archive)
    try:
        fill(archive, make_series(workdir / "series", 60, side=32))
        panel.resize(700, 400)
        panel.show()
        study = archive.studies()[0].study_uid
        panel.model.reset(study)
        panel.model.merge(archive.series(study), archive.instances(study_uid=study))
        tiles = panel.model.instance_tiles()
        panel.controller._queue = deque(tiles)  # as if all waited for the worker processes
        qtbot.waitUntil(lambda: panel.view.verticalScrollBar().maximum() > 0)
        panel.view.verticalScrollBar().setValue(panel.view.verticalScrollBar().maximum())
        qtbot.waitUntil(lambda: panel.controller._queue[0] is not tiles[0], timeout=5000)
        visible = panel.visible_tiles()
        assert visible and visible[-1] is tiles[-1] and tiles[0] not in visible
        assert list(panel.controller._queue)[: len(visible)] == visible
        assert len(panel.controller._queue) == len(tiles)
        panel.controller._queue.clear()
    finally:
        qloop.run_until_complete(panel.shutdown())
        dispose(panel)
        archive.close()
