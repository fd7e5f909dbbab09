"""STOW-RS to Orthanc's DICOMweb plugin: a folder with one damaged file (the good ones stored, the
damaged one reported), batches with progress, and the server's own refusal of one instance read
from the answer's FailedSOPSequence."""

from __future__ import annotations

import shutil

import pydicom
import pytest

from pacsbrowser.core.records import StoreOutcome
from pacsbrowser.core.web.stow import WebStoreService
from tests.lab.client import run
from tests.lab.data import Catalog

from .conftest import web_profile

pytestmark = pytest.mark.timeout(180)


def _folder(lab_data: Catalog, workdir, count: int):
    folder = workdir / "send"
    folder.mkdir()
    instances = lab_data.instances[:count]
    for n, instance in enumerate(instances):
        shutil.copy(instance.path, folder / f"{n:03d}.dcm")
    return folder, instances


def test_a_folder_with_one_damaged_file(fresh_web_orthanc, lab_data, workdir):
    folder, instances = _folder(lab_data, workdir, 12)
    damaged = folder / "005.dcm"
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) - 300])  # cut inside its pixel data
    seen = []
    service = WebStoreService(web_profile(fresh_web_orthanc), batch_size=4, progress_interval=0.0)
    summary = run(service.store(folder, on_progress=seen.append), 120)
    print(f"{len(summary.stored)} stored, {len(summary.problems)} problems in {summary.elapsed:.2f} s, "
          f"{summary.associations} requests")
    assert len(summary.results) == 12
    (bad,) = summary.problems
    assert bad.path == damaged and bad.outcome is StoreOutcome.SKIPPED and "truncated" in bad.reason
    assert {r.sop_instance_uid for r in summary.stored} == {i.sop_instance_uid for i in instances} - {
        bad.sop_instance_uid}
    assert fresh_web_orthanc.sop_instance_uids() == {r.sop_instance_uid for r in summary.stored}
    assert summary.associations == 3  # 11 files in batches of 4
    assert seen[-1].finished and seen[-1].stored == 11 and seen[-1].skipped == 1
    assert len([p for p in seen if p.results]) >= 3, "results come batch by batch"
    # sent again: the server stores them again (it overwrites), and says so
    again = run(service.store(folder), 120)
    assert len(again.stored) == 11


def test_an_instance_the_server_refuses_is_read_from_failed_sop_sequence(fresh_web_orthanc, lab_data, workdir):
    """A file without its Series Instance UID passes our checks (a whole, readable file) but Orthanc
    cannot index it: its answer's FailedSOPSequence says so, with the rest stored."""
    folder, instances = _folder(lab_data, workdir, 6)
    odd = pydicom.dcmread(folder / "002.dcm")
    del odd.SeriesInstanceUID
    odd.save_as(folder / "002.dcm")
    summary = run(WebStoreService(web_profile(fresh_web_orthanc)).store(folder), 120)
    (failed,) = summary.failed
    assert failed.sop_instance_uid == instances[2].sop_instance_uid and failed.path == folder / "002.dcm"
    assert failed.reason.startswith("the server refused it:") and failed.status == 0xC000, failed.reason
    assert len(summary.stored) == 5
    assert fresh_web_orthanc.sop_instance_uids() == {r.sop_instance_uid for r in summary.stored}
