"""Reading what is dropped on the window: lazily, each bad file reported with its reason (never
sent), truncation found wherever the file was cut; presentation contexts planned from the files;
datasets in memory sent as they are; progress in batches."""

from __future__ import annotations

import asyncio
import threading
import time

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless
from pynetdicom import _config as pynetdicom_config

from pacsbrowser.core.dicom import ae as dicom_ae
from pacsbrowser.core.dicom import store as dicom_store
from pacsbrowser.core.dicom.contexts import plan_store_contexts
from pacsbrowser.core.dicomfiles import Unsendable, check_file, iter_sources, read_header
from pacsbrowser.core.records import StoreOutcome
from pacsbrowser.core.store import StoreService
from tests.lab.data import CT_IMAGE_STORAGE, Catalog

from .helpers import RecordingSCP, profile_for, store_cli


def _problem(path) -> str:
    try:
        check_file(read_header(str(path), path))
    except Unsendable as exc:
        return str(exc)
    return ""


def _try(path) -> str:
    """_problem, for files whose header cannot be read either."""
    try:
        return _problem(path)
    except Unsendable as exc:
        return str(exc)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the UIDs of cut headers
@pytest.mark.parametrize("which", ["uncompressed", "rle", "jpeg2000"])
def test_a_file_cut_anywhere_is_found_truncated(which, lab_data: Catalog, compressed, workdir):
    source = {"uncompressed": lab_data.uncompressed_instances()[0].path, "rle": lab_data.rle_instances()[0].path,
              "jpeg2000": compressed.made["jpeg2000"]}[which]
    data = source.read_bytes()
    assert _problem(source) == ""
    start = read_header("x", source).offset
    cuts = sorted({*range(133, start + 64), *range(start, len(data), 5), *range(len(data) - 64, len(data))})
    target = workdir / "cut.dcm"
    undetected = []
    for cut in cuts:
        target.write_bytes(data[:cut])
        if not _problem(target):
            undetected.append(cut)
    assert undetected == [], undetected


def test_bad_inputs_are_named_with_their_reason(lab_data: Catalog, workdir):
    (workdir / "notes.txt").write_text("not an image\n" * 20)
    (workdir / "empty.dcm").write_bytes(b"")
    (workdir / "header-only.dcm").write_bytes(lab_data.paths()[0].read_bytes()[:200])
    dicomdir = pydicom.dcmread(lab_data.paths()[0])
    dicomdir.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    dicomdir.save_as(workdir / "DICOMDIR")
    mismatch = pydicom.dcmread(lab_data.paths()[1])
    mismatch.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    mismatch.save_as(workdir / "mismatch.dcm")
    reasons = {}
    for _name, path, problem in iter_sources([workdir, workdir / "missing.dcm"]):
        if problem:
            reasons[path.name] = problem
            continue
        reasons[path.name] = _try(path)
    assert reasons["notes.txt"] == "not a DICOM file"
    assert reasons["empty.dcm"] == "an empty file"
    assert "damaged" in reasons["header-only.dcm"] or "truncated" in reasons["header-only.dcm"]
    assert "DICOMDIR" in reasons["DICOMDIR"]
    assert "different SOP instances" in reasons["mismatch.dcm"]
    assert reasons["missing.dcm"] == "no such file or folder"


def test_folders_are_walked_lazily_in_order_and_each_file_comes_once(lab_data: Catalog):
    walk = iter_sources([lab_data.root, lab_data.paths()[0], lab_data.root / "LAB0001"])
    first = next(walk)  # a generator: nothing is read before it is asked for
    rest = list(walk)
    names = [first[0], *(name for name, _, _ in rest)]
    assert len(names) == len(lab_data.instances) == len(set(names))
    assert names == sorted(names, key=lambda n: n.split("/"))


def test_contexts_one_per_compressed_syntax_and_both_uncompressed_in_groups_of_128():
    keys = [(f"1.2.840.10008.5.1.4.1.1.{n}", syntax) for n in range(60)
            for syntax in (ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless)]
    groups = plan_store_contexts(keys)
    assert [len(g.contexts) for g in groups] == [128, 112]  # 4 contexts a class, 32 + 28 classes
    for group in groups:
        by_class: dict[str, list[str]] = {}
        for cx in group.contexts:
            assert len(cx.transfer_syntax) == 1  # one syntax per context: the PACS picks per context
            by_class.setdefault(cx.abstract_syntax, []).append(cx.transfer_syntax[0])
        assert set(by_class) == group.sop_classes
        for syntaxes in by_class.values():
            assert syntaxes == [ExplicitVRLittleEndian, ImplicitVRLittleEndian, *sorted([RLELossless, JPEG2000Lossless])]
    assert groups[0].sop_classes.isdisjoint(groups[1].sop_classes)


def test_streaming_is_switched_on_only_for_the_sending_thread():
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def other():
        inside.wait(5)
        seen["other thread"] = bool(pynetdicom_config.STORE_SEND_CHUNKED_DATASET)
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    seen["before"] = bool(pynetdicom_config.STORE_SEND_CHUNKED_DATASET)
    with dicom_store._chunked():
        seen["inside"] = bool(pynetdicom_config.STORE_SEND_CHUNKED_DATASET)
        inside.set()
        done.wait(5)
    seen["after"] = bool(pynetdicom_config.STORE_SEND_CHUNKED_DATASET)
    thread.join(5)
    assert seen == {"before": False, "inside": True, "other thread": False, "after": False}


def test_settle_waits_for_the_reactor_to_wake():
    class FakeAssociation:
        is_established = True
        _is_paused = True  # still True from the last pause: the reactor has not run yet
        _reactor_checkpoint = threading.Event()

    assoc = FakeAssociation()
    assoc._reactor_checkpoint.set()
    timer = threading.Timer(0.02, lambda: setattr(assoc, "_is_paused", False))  # the reactor wakes
    started = time.monotonic()
    timer.start()
    dicom_ae.settle_reactor(assoc, limit=30.0)
    waited = time.monotonic() - started
    timer.join()
    print(f"\nsettled after {waited * 1000:.0f} ms (the reactor woke at 20 ms)")
    assert 0.015 < waited < 10.0 and assoc._is_paused is False  # when it woke, not at the 30 s limit


def test_datasets_and_headerless_files_are_sent_and_the_callers_dataset_is_not_changed(lab_data: Catalog,
                                                                                       workdir):
    rle = pydicom.dcmread(lab_data.rle_instances()[0].path)  # sent decompressed, on a copy
    bare = Dataset()  # made in memory: no file meta at all
    bare.SOPClassUID = CT_IMAGE_STORAGE
    bare.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    bare.PatientID = "BARE"
    raw_source = pydicom.dcmread(lab_data.uncompressed_instances()[0].path)
    raw_path = workdir / "no-preamble.dcm"  # a data set without the DICOM file header
    del raw_source.file_meta
    raw_source.preamble = None
    dcmwrite(raw_path, raw_source, implicit_vr=True, little_endian=True)
    assert raw_path.read_bytes()[:2] == b"\x08\x00"
    with RecordingSCP(transfer_syntaxes=[ExplicitVRLittleEndian, ImplicitVRLittleEndian]) as scp:
        summary = asyncio.run(StoreService(profile_for(scp)).store([rle, bare, raw_path]))
        assert summary.complete, summary.problems
        assert {r.name for r in summary.results} == {"dataset 1", "dataset 2", str(raw_path)}
        got = {s.sop_instance_uid: s.dataset for s in scp.by_uid().values() for s in s}
        assert set(got) == {str(rle.SOPInstanceUID), bare.SOPInstanceUID, str(raw_source.SOPInstanceUID)}
    assert rle.file_meta.TransferSyntaxUID == RLELossless  # the caller's dataset is untouched
    assert getattr(bare, "file_meta", None) is None  # we sent a shallow copy with a file meta, not this


def test_progress_comes_in_batches_and_adds_up(lab_data: Catalog, workdir):
    (workdir / "junk.txt").write_text("junk")
    reports = []
    with RecordingSCP() as scp:
        storage = StoreService(profile_for(scp), parallel=2, progress_interval=0.05)
        summary = asyncio.run(storage.store([lab_data.root, workdir], on_progress=reports.append))
    assert reports[-1].finished and not any(r.finished for r in reports[:-1])
    assert 2 <= len(reports) < len(summary.results)  # batched, not one report per file
    assert [r for report in reports for r in report.results] == list(summary.results)
    final = reports[-1]
    assert final.total == final.done == len(lab_data.instances) + 1
    assert (final.stored, final.skipped, final.failed) == (len(lab_data.instances), 1, 0)
    assert final.bytes_done == final.bytes_total == sum(p.stat().st_size for p in lab_data.paths()) + 4
    assert [r.outcome for r in summary.results].count(StoreOutcome.SKIPPED) == 1


@pytest.mark.parametrize("status, outcome, words, exit_status", [
    (0xB000, StoreOutcome.WARNING, "Coercion of data elements", 0),
    (0xA700, StoreOutcome.FAILED, "Out of resources", 7),  # EXIT_DIMSE: nothing stored, the PACS said why
])
def test_the_pacs_status_comes_back_in_words(status, outcome, words, exit_status, lab_data: Catalog):
    files = [i.path for i in lab_data.instances[:3]]
    with RecordingSCP(status=status) as scp:
        summary = asyncio.run(StoreService(profile_for(scp)).store(files))
        assert [r.outcome for r in summary.results] == [outcome] * 3
        assert all(r.status == status and words.lower() in r.reason.lower() for r in summary.results), summary.results
        assert summary.complete is (outcome is StoreOutcome.WARNING)
        result = store_cli(scp, *files)
    assert result.returncode == exit_status, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(f"(0x{status:04X})" in line and words.lower() in line.lower() for line in lines)
