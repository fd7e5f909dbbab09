"""The preview: a thumbnail double-clicked opens the image large; dragging changes window/level,
the wheel steps through the frames of a multi-frame object and through a series."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.imaging import Kind
from pacsbrowser.ui.widgets.thumbnails import ThumbnailsPanel

from .conftest import run_until
from .thumbs_data import EXTRA_STUDY, dispose, extras, fill

SHOTS = os.environ.get("PACSBROWSER_SHOTS")


@pytest.fixture
def panel(qtbot, qloop, workdir, lab_data):
    archive = Archive(workdir / "archive")
    widget = ThumbnailsPanel(archive)
    try:
        fill(archive, [*lab_data.paths(), *extras(workdir / "extras", lab_data).values()])
        widget.resize(900, 400)
        widget.show()
        yield widget
    finally:
        qloop.run_until_complete(widget.shutdown())
        dispose(widget)
        archive.close()


def shown(preview):
    return preview.canvas.frame


def open_preview(qloop, panel, sop_instance_uid: str):
    run_until(qloop, lambda: panel.model.tile_of(sop_instance_uid) is not None, timeout=20, settle=False)
    index = panel.model.index(panel.model.row_of(sop_instance_uid))
    panel.view.doubleClicked.emit(index)  # what a double-click on the tile does
    preview = panel.preview
    assert preview is not None and preview.isVisible()
    wait_shown(qloop, preview, sop_instance_uid, 0)
    return preview


def wait_shown(qloop, preview, sop_instance_uid: str, frame: int) -> None:
    def ok() -> bool:
        f = shown(preview)
        return f is not None and (f.key.sop_instance_uid, f.key.frame) == (sop_instance_uid, frame) \
            and f.key == preview._wanted
    run_until(qloop, ok, timeout=20)  # and let the frames rendered ahead finish


def wheel(widget, steps: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, -120 * steps),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def mouse(widget, kind: QEvent.Type, x: float, y: float, buttons=Qt.MouseButton.LeftButton) -> None:
    pos = QPointF(x, y)
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    event = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def test_window_level_drag_changes_the_rendered_pixels(panel, qloop, lab_data):
    study = lab_data.study_by_accession("ACC2020008")  # CT head: two file windows, BRAIN and BONE
    panel.show_study(study.uid)
    ct = [i for i in lab_data.instances_of_study(study.uid) if i.modality == "CT"][2]
    preview = open_preview(qloop, panel, ct.sop_instance_uid)
    before = shown(preview)
    assert before.thumbnail.kind is Kind.IMAGE and before.thumbnail.window.source == "file"
    assert [w.explanation for w in before.info.windows] == ["BRAIN", "BONE"]
    assert preview.presets.count() == 3
    start = before.thumbnail.window
    canvas = preview.canvas
    mouse(canvas, QEvent.Type.MouseButtonPress, 100, 100)
    for x in range(110, 260, 30):  # to the right and down: wider, higher level
        mouse(canvas, QEvent.Type.MouseMove, x, 100 + (x - 100) // 2)
    mouse(canvas, QEvent.Type.MouseButtonRelease, 250, 175, Qt.MouseButton.NoButton)
    wait_shown(qloop, preview, ct.sop_instance_uid, 0)
    after = shown(preview)
    assert after.thumbnail.window.width > start.width and after.thumbnail.window.center > start.center
    assert not np.array_equal(before.thumbnail.pixels, after.thumbnail.pixels)
    overlay = canvas.overlay_lines()
    assert overlay["br"][0].startswith(f"W {round(after.thumbnail.window.width)}")
    preview.apply_preset(1)  # BONE, from the file
    wait_shown(qloop, preview, ct.sop_instance_uid, 0)
    assert shown(preview).thumbnail.window.explanation == "BONE"
    assert preview.presets.currentIndex() == 2
    preview.apply_preset(-1)
    wait_shown(qloop, preview, ct.sop_instance_uid, 0)
    assert shown(preview).thumbnail.window == start
    if SHOTS:
        preview.grab().save(os.path.join(SHOTS, "preview-ct.png"))


def test_wheel_steps_through_the_frames_then_the_series(panel, qloop, lab_data):
    study = lab_data.study_by_accession("ACC2023005")  # US: 3 single frames, then a 4-frame cine
    panel.show_study(study.uid)
    cine = next(i for i in lab_data.instances_of_study(study.uid) if i.frames > 1)
    preview = open_preview(qloop, panel, cine.sop_instance_uid)
    canvas = preview.canvas
    seen = [shown(preview).thumbnail.pixels.copy()]
    for frame in (1, 2, 3):
        wheel(canvas, 1)
        wait_shown(qloop, preview, cine.sop_instance_uid, frame)
        assert f"Frame {frame + 1} of 4" in canvas.overlay_lines()["bl"]
        seen.append(shown(preview).thumbnail.pixels.copy())
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(seen))
    wheel(canvas, 1)  # the last frame of the last object: stays
    wait_shown(qloop, preview, cine.sop_instance_uid, 3)
    wheel(canvas, -2)
    wait_shown(qloop, preview, cine.sop_instance_uid, 1)
    if SHOTS:
        preview.grab().save(os.path.join(SHOTS, "preview-us.png"))

    ct_study = lab_data.study_by_accession("ACC2024003")  # CT abdomen: 8 RLE slices
    panel.show_study(ct_study.uid)
    axial = sorted((i for i in lab_data.instances_of_study(ct_study.uid) if i.number and i.is_rle),
                   key=lambda i: i.number)
    preview = open_preview(qloop, panel, axial[0].sop_instance_uid)
    for step, instance in enumerate(axial[1:4], start=1):
        wheel(preview.canvas, 1)
        wait_shown(qloop, preview, instance.sop_instance_uid, 0)
        assert f"Image {step + 1} of {len(axial)}" in preview.canvas.overlay_lines()["bl"]
    preview.canvas.setFocus()
    from PySide6.QtTest import QTest

    QTest.keyClick(preview.canvas, Qt.Key.Key_Up)
    wait_shown(qloop, preview, axial[2].sop_instance_uid, 0)
    QTest.keyClick(preview.canvas, Qt.Key.Key_End)
    wait_shown(qloop, preview, axial[-1].sop_instance_uid, 0)
    # neighbours were rendered ahead: stepping back is served from the cache
    renders = preview.renderer.renders
    run_until(qloop, lambda: preview.renderer.cached(preview._key(panel.model.tile_of(axial[-2].sop_instance_uid), 0)),
              timeout=20, settle=False)
    renders = preview.renderer.renders
    wheel(preview.canvas, -1)
    wait_shown(qloop, preview, axial[-2].sop_instance_uid, 0)
    assert preview.renderer.renders == renders


def test_zoom_pan_and_placeholders(panel, qloop, lab_data):
    study = lab_data.study_by_accession(EXTRA_STUDY)
    panel.show_study(study.uid)
    run_until(qloop, lambda: len(panel.model.placeholders()) == 3 and not panel.controller.busy, timeout=60)
    first = lab_data.instances_of_study(study.uid)[0]
    preview = open_preview(qloop, panel, first.sop_instance_uid)
    canvas = preview.canvas
    fit = canvas.image_rect()
    wheel(canvas, -2, Qt.KeyboardModifier.ControlModifier)  # Ctrl+wheel away from the user: zoom in
    assert canvas.zoom > 1.4 and canvas.image_rect().width() > fit.width()
    canvas.fit()
    assert canvas.image_rect() == fit
    damaged = next(uid for uid, t in panel.model.placeholders().items() if t.kind is Kind.DAMAGED)
    preview.open_instance(damaged)
    wait_shown(qloop, preview, damaged, 0)
    assert shown(preview).thumbnail.kind is Kind.DAMAGED and shown(preview).image is None
    if SHOTS:
        preview.grab().save(os.path.join(SHOTS, "preview-damaged.png"))
