"""The window's main journeys against the real Orthanc of the test lab: search, expand, test a profile."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import ServerProfile, Timeouts
from pacsbrowser.ui.main_window import MainWindow
from pacsbrowser.ui.models.results import Kind, LoadState
from tests.lab.fault_scp import study_dataset

from .conftest import StallProbe, run_until


@pytest.fixture
def window(qtbot, qloop, orthanc, tmp_path, archive):
    store = ProfileStore(tmp_path / "profiles")
    store.add(ServerProfile(name="Lab Orthanc", host=orthanc.host, port=orthanc.port, called_ae=orthanc.aet))
    win = MainWindow(store, archive=archive)
    qtbot.addWidget(win)
    win.show()
    yield win
    qloop.run_until_complete(win.shutdown())


def search(qloop, win, **fields) -> None:
    form = win.query_form
    form.clear()
    for name, value in fields.items():
        if name == "modalities":
            for modality in value:
                form.modality_boxes[modality].setChecked(True)
        elif name == "preset":
            form.set_date_preset(value)
        else:
            getattr(form, name).setText(value)
    form.search_button.click()
    run_until(qloop, lambda: win.query.last_outcome is not None and not win.query.running, timeout=20)


def top_results(win) -> list:
    return [node.result for node in win.results_model.root.children]


def test_search_by_lower_case_partial_name(window, qloop, lab_data, qtmodeltester):
    qtmodeltester.check(window.results_model)  # keeps checking every change while rows stream in
    window.query.last_outcome = None
    search(qloop, window, patient_name="smi")
    studies = top_results(window)
    expected = {s.uid for s in lab_data.studies if s.patient_name.upper().startswith("SMI")}
    assert {s.study_instance_uid for s in studies} == expected and len(expected) == 5
    assert window.results.summary.text().startswith("5 studies")
    assert "PatientName = <redacted>" in window.log.toPlainText()  # the query is logged, its patient data not


def test_search_by_modality(window, qloop, lab_data):
    window.query.last_outcome = None
    search(qloop, window, modalities=["CT"])
    expected = {s.uid for s in lab_data.studies if "CT" in s.modalities}
    assert {s.study_instance_uid for s in top_results(window)} == expected


def _study_on(day: date, root: Path, n: int) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = f"RECENT^PATIENT{n}", f"RECENT{n}"
    ds.StudyDate = ds.SeriesDate = day.strftime("%Y%m%d")
    ds.Modality, ds.StudyDescription, ds.AccessionNumber = "OT", "recent", f"RECENT{n}"
    path = root / f"recent{n}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_search_by_date_preset(window, qloop, orthanc, tmp_path):
    today = date.today()
    paths = [_study_on(today, tmp_path, 1), _study_on(today - timedelta(days=10), tmp_path, 2)]
    orthanc.load(paths)
    try:
        found = {}
        for preset in ("today", "yesterday", "last 7 days", "last 30 days"):
            window.query.last_outcome = None
            search(qloop, window, preset=preset)
            found[preset] = sorted(s.accession_number for s in top_results(window))
    finally:
        _remove_recent(orthanc)  # the session's Orthanc holds the lab data only again
    assert found == {"today": ["RECENT1"], "yesterday": [], "last 7 days": ["RECENT1"],
                     "last 30 days": ["RECENT1", "RECENT2"]}


def _remove_recent(orthanc) -> None:
    for patient in orthanc.rest("/patients?expand") or []:
        if patient["MainDicomTags"].get("PatientID", "").startswith("RECENT"):
            orthanc.rest(f"/patients/{patient['ID']}", method="DELETE")


def test_expand_a_study_then_a_series(window, qloop, lab_data, qtmodeltester):
    qtmodeltester.check(window.results_model)
    window.query.last_outcome = None
    study = next(s for s in lab_data.studies if s.series_count == 2 and s.instance_count > 8)
    search(qloop, window, accession=study.accession)
    model, view = window.results_model, window.results
    (node,) = model.root.children
    view.tree.expand(view.proxy.mapFromSource(model.index_of(node)))
    run_until(qloop, lambda: node.state is LoadState.LOADED)
    series_nodes = node.children
    assert [n.kind for n in series_nodes] == [Kind.SERIES, Kind.SERIES]
    expected_series = {s.uid: s for s in lab_data.series_of(study.uid)}
    assert {n.result.series_instance_uid for n in series_nodes} == set(expected_series)
    first = series_nodes[0]
    view.tree.expand(view.proxy.mapFromSource(model.index_of(first)))
    run_until(qloop, lambda: first.state is LoadState.LOADED)
    instances = [n.result for n in first.children]
    assert len(instances) == expected_series[first.result.series_instance_uid].instance_count
    assert [i.instance_number for i in instances] == sorted(i.instance_number for i in instances)


def test_gui_thread_is_not_blocked_during_a_slow_query(window, qloop, fault_scp):
    studies = [study_dataset(PatientName=f"SLOW^PATIENT{i}", PatientID=f"S{i}", StudyInstanceUID=generate_uid(),
                             StudyDate="20240101", AccessionNumber=f"A{i}") for i in range(30)]
    slow = fault_scp(mode="slow", datasets=studies, delay=0.1)  # 3 s in all: a blocked GUI would stall that long
    window.profile_controller.add(ServerProfile(name="Slow", host=slow.host, port=slow.port,
                                                called_ae=slow.ae_title, timeouts=Timeouts.uniform(10)))
    window.profiles.list.setCurrentRow(1)
    window.query.last_outcome = None
    with StallProbe() as probe:
        search(qloop, window, patient_name="slow")
    assert len(top_results(window)) == 30
    longest = probe.longest
    print(f"\nlongest event-loop stall during a 30-result slow query: {longest * 1000:.1f} ms "
          f"over {len(probe.gaps)} ticks")
    assert longest < 1.0  # unloaded, ~20 ms; the query itself takes 3 s


def test_esc_stops_a_running_query(window, qloop, fault_scp, qtbot):
    from PySide6.QtCore import Qt

    studies = [study_dataset(PatientName=f"SLOW^P{i}", PatientID=f"S{i}", StudyInstanceUID=generate_uid(),
                             StudyDate="20240101") for i in range(50)]
    slow = fault_scp(mode="slow", datasets=studies, delay=0.05)
    window.profile_controller.add(ServerProfile(name="Slow", host=slow.host, port=slow.port, called_ae=slow.ae_title))
    window.profiles.list.setCurrentRow(1)
    window.query.last_outcome = None
    window.query_form.patient_name.setText("slow")
    window.query_form.search_button.click()
    run_until(qloop, lambda: window.results_model.top_level_count() >= 3, settle=False)
    window.activateWindow()
    qloop.call_soon(lambda: qtbot.keyClick(window.query_form.patient_name, Qt.Key.Key_Escape))
    run_until(qloop, lambda: window.query.last_outcome is not None, timeout=5)
    outcome = window.query.last_outcome
    assert outcome.cancelled and outcome.incomplete
    assert 3 <= window.results_model.top_level_count() < 50
    assert "incomplete" in window.results.summary.text()
    assert slow.cancels >= 1
