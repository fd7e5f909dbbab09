"""The archive on its own: layout, safe names, atomic writes, replacement, repair, rebuild, verify."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

import pacsbrowser.core.archive.writer as archive_writer
from pacsbrowser.core.archive import (
    INDEX_NAME,
    Archive,
    MalformedDataset,
    relative_path,
    safe_name,
)
from pacsbrowser.core.errors import ArchiveError

from .helpers import dataset_bytes, make_dataset, our_files, save, temp_files


def _encoded(ds) -> tuple[bytes, str]:
    """The data set of `ds` encoded as it would arrive over the network (no file meta)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds)
    return buffer.getvalue(), str(ds.file_meta.TransferSyntaxUID)


def _store(arc: Archive, ds, source_ae: str = "TESTAE"):
    data, ts = _encoded(ds)
    stored = arc.write_instance(data, ts, source_ae=source_ae)
    replaced = arc.add(stored)
    return stored, replaced


# ---- names


CRAFTED = [
    "../../../../etc/passwd",
    "/etc",
    "..",
    ".",
    "",
    "1.2.3/../../x",
    "1..2",
    "1.2.",
    ".1.2",
    "1.2.3\\4",
    "C:\\Windows",
    "1.2.3\x00.4",
    "１.２",  # full-width digits
    "1" * 65,
    "1.2." + "3" * 200,
    "abc",
    "1.2.3 ",
    "~",
    "NUL",
]


@pytest.mark.parametrize("uid", CRAFTED)
def test_a_name_comes_from_a_uid_only_when_the_uid_is_valid(uid):
    name = safe_name(uid)
    assert name.startswith("x") and len(name) == 41 and all(c in "0123456789abcdef" for c in name[1:])
    assert safe_name(uid) == name  # the same value always lands in the same place


def test_valid_uids_name_their_files_and_folders():
    uid = "1.2.840.113619.2.55.3.604688119.868.1234567890.123"
    assert safe_name(uid) == uid
    assert safe_name("1" * 64) == "1" * 64
    assert relative_path("1.2", "1.2.3", "1.2.3.4") == "1.2/1.2.3/1.2.3.4.dcm"
    for study, series, sop in [(a, b, c) for a in CRAFTED[:6] for b in CRAFTED[:3] for c in CRAFTED[5:8]]:
        parts = relative_path(study, series, sop).split("/")
        assert len(parts) == 3 and all(p not in ("", ".", "..") for p in parts)


# ---- writing, indexing, layout


def test_lab_files_are_stored_byte_for_byte_and_indexed(archive, lab_data):
    for instance in lab_data.instances:
        archive.import_file(instance.path, source_ae="LABAE")
    counts = archive.counts()
    assert (counts["patients"], counts["studies"], counts["series"], counts["instances"]) == (
        len(lab_data.patients), len(lab_data.studies), len(lab_data.series), len(lab_data.instances))
    for instance in lab_data.instances:
        row = archive.instance(instance.sop_instance_uid)
        assert row is not None
        assert row.path == archive.root / instance.study_uid / instance.series_uid / f"{instance.sop_instance_uid}.dcm"
        assert row.transfer_syntax_uid == instance.transfer_syntax_uid
        assert row.sop_class_uid == instance.sop_class_uid
        assert row.size == row.path.stat().st_size
        assert row.frames == (instance.frames if instance.frames > 1 else None)
        assert row.source_ae == "LABAE"
        assert dataset_bytes(row.path) == dataset_bytes(instance.path)
        stored = pydicom.dcmread(row.path)
        assert stored.file_meta.SourceApplicationEntityTitle == "LABAE"
        assert stored.file_meta.MediaStorageSOPInstanceUID == instance.sop_instance_uid
    by_uid = {s.study_uid: s for s in archive.studies()}
    for study in lab_data.studies:
        row = by_uid[study.uid]
        assert (row.patient_id, row.patient_name, row.study_date, row.accession_number, row.description) == (
            study.patient_id, study.patient_name, study.date, study.accession, study.description)
        assert row.modalities == study.modalities
        assert (row.series_count, row.instance_count) == (study.series_count, study.instance_count)
        series = archive.series(study.uid)
        assert [s.series_uid for s in series] == [s.uid for s in lab_data.series_of(study.uid)]
    names = {p.patient_name for p in archive.patients()}
    assert "Yamada^Tarou=山田^太郎" in names and "Müller^Jürgen" in names
    assert archive.verify(deep=True).ok
    assert temp_files(archive.root) == []


def test_a_second_copy_replaces_the_first_without_a_second_row(archive):
    ds = make_dataset(fill=1)
    first, replaced = _store(archive, ds)
    assert not replaced
    ds2 = make_dataset(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, fill=2)
    second, replaced = _store(archive, ds2)
    assert replaced and second.path == first.path
    assert archive.counts()["instances"] == 1
    assert pydicom.dcmread(second.path).pixel_array[0, 0] == 2
    # The same SOP Instance sent again under another study: one row, one file, old folders pruned.
    moved = make_dataset(generate_uid(), generate_uid(), ds.SOPInstanceUID, fill=3)
    third, replaced = _store(archive, moved)
    assert replaced and third.path != first.path
    assert not first.path.exists()
    assert archive.counts() == {"patients": 1, "studies": 1, "series": 1, "instances": 1,
                                "bytes": third.size}
    assert our_files(archive.root) == [third.path]
    assert archive.verify(deep=True).ok


def test_patient_data_stays_out_of_repr(archive):
    _store(archive, make_dataset(name="SECRET^NAME", patient_id="SECRETID"))
    text = repr(archive.studies()) + repr(archive.patients()) + repr(archive.instances())
    assert "SECRET" not in text


def test_malformed_data_is_refused_and_nothing_is_written(archive):
    with pytest.raises(MalformedDataset):
        archive.write_instance(b"\x08\x00\x18\x00UI\xff\xff garbage that is no data set", "1.2.840.10008.1.2.1")
    ds = make_dataset()
    del ds.StudyInstanceUID
    data, ts = _encoded(ds)
    with pytest.raises(MalformedDataset, match="Study Instance UID"):
        archive.write_instance(data, ts)
    assert our_files(archive.root) == [] and temp_files(archive.root) == []
    assert archive.counts()["instances"] == 0


def test_a_full_disk_leaves_no_partial_file(archive, monkeypatch):
    real = archive_writer._write_chunks

    def fill_the_disk(fd, chunks):
        chunks = list(chunks)
        os.write(fd, chunks[0][:100])  # part of the file reaches the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")

    _store(archive, make_dataset())
    monkeypatch.setattr(archive_writer, "_write_chunks", fill_the_disk)
    data, ts = _encoded(make_dataset())
    with pytest.raises(OSError) as info:
        archive.store(data, ts)
    assert info.value.errno == errno.ENOSPC
    assert temp_files(archive.root) == []
    assert len(our_files(archive.root)) == 1
    monkeypatch.setattr(archive_writer, "_write_chunks", real)
    # The reserve: refuse before writing when the file would leave less than min_free_bytes.
    archive.min_free_bytes = 1 << 62
    with pytest.raises(OSError) as info:
        archive.store(data, ts)
    assert info.value.errno == errno.ENOSPC and "reserve" in str(info.value)
    archive.flush()
    assert archive.counts()["instances"] == 1
    assert archive.verify(deep=True).ok


# ---- one writer, many readers


def test_one_process_writes_others_read(workdir):
    root = workdir / "archive"
    with Archive(root) as writer:
        _store(writer, make_dataset())
        with pytest.raises(ArchiveError, match="in use"):
            Archive(root)
        with Archive(root, readonly=True) as reader:
            assert reader.counts()["instances"] == 1
            with pytest.raises(ArchiveError, match="read-only"):
                reader.store(b"", "1.2.840.10008.1.2.1")
    with Archive(root) as again:  # the lock went with the first writer
        assert again.counts()["instances"] == 1
        assert again.last_repair is None  # closed cleanly: no repair needed


def test_not_an_archive(workdir):
    with pytest.raises(ArchiveError, match="not a pacsbrowser archive"):
        Archive(workdir / "nothing", readonly=True)


# ---- crash, repair, rebuild, verify

CRASH = textwrap.dedent("""
    import os, sys
    sys.path[:0] = {paths!r}
    from pacsbrowser.core.archive import Archive
    from tests.archive.test_archive import _encoded
    from tests.archive.helpers import make_dataset
    arc = Archive({root!r})
    for n in range(3):   # indexed
        data, ts = _encoded(make_dataset(study="1.2.3", series="1.2.3.4", sop=f"1.2.3.4.{{n}}"))
        arc.add(arc.write_instance(data, ts))
    for n in range(3, 5):  # written and acknowledged, not indexed yet
        data, ts = _encoded(make_dataset(study="1.2.3", series="1.2.3.4", sop=f"1.2.3.4.{{n}}"))
        arc.write_instance(data, ts)
    # a write cut short: its temporary file
    open(os.path.join({root!r}, "1.2.3", "1.2.3.4", ".tmp-interrupted.part"), "wb").write(b"partial")
    os._exit(9)   # the process dies: no close, no clean mark
""")


def test_reopening_after_a_crash_repairs_what_the_interrupted_writes_left(workdir):
    root = workdir / "archive"
    paths = [str(Path(__file__).resolve().parents[2])] + sys.path
    result = subprocess.run([sys.executable, "-c", CRASH.format(paths=paths, root=str(root))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 9, result.stderr
    assert len(temp_files(root)) == 1
    with Archive(root, readonly=True) as before:
        assert before.counts()["instances"] == 3
    # A row whose file went away (deleted by hand) is dropped too.
    (root / "1.2.3" / "1.2.3.4" / "1.2.3.4.0.dcm").unlink()
    with Archive(root) as arc:
        report = arc.last_repair
        assert report is not None
        assert (report.temp_files_removed, report.indexed, report.rows_removed) == (1, 2, 1)
        assert sorted(r.sop_instance_uid for r in arc.instances()) == [f"1.2.3.4.{n}" for n in range(1, 5)]
        assert temp_files(root) == []
        assert arc.verify(deep=True).ok


def test_the_index_is_made_again_from_the_files(workdir, lab_data):
    root = workdir / "archive"
    with Archive(root) as arc:
        for instance in lab_data.instances[:20]:
            arc.import_file(instance.path)
        expected = {(r.sop_instance_uid, r.path, r.size, r.transfer_syntax_uid) for r in arc.instances()}
        studies = {(s.study_uid, s.patient_name, s.instance_count) for s in arc.studies()}
        # Damage the index behind the archive's back, then rebuild.
        with sqlite3.connect(arc.index_path) as db:
            db.execute("DELETE FROM instances WHERE rowid % 3 = 0")
            db.execute("UPDATE instances SET size = 1")
        problems = arc.verify().problems
        assert any("not list" in p for p in problems) and any("size" in p for p in problems)
        arc.rebuild()
        assert {(r.sop_instance_uid, r.path, r.size, r.transfer_syntax_uid) for r in arc.instances()} == expected
        assert {(s.study_uid, s.patient_name, s.instance_count) for s in arc.studies()} == studies
        assert arc.verify(deep=True).ok
    # The index file lost altogether: opening the folder indexes what it holds.
    for name in (INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm"):
        (root / name).unlink(missing_ok=True)
    with Archive(root) as arc:
        assert {(r.sop_instance_uid, r.path, r.size, r.transfer_syntax_uid) for r in arc.instances()} == expected
        assert arc.last_repair is not None and arc.last_repair.indexed == 20


def test_verify_names_what_disagrees(archive):
    stored, _ = _store(archive, make_dataset())
    stray = make_dataset()
    save(stray, archive.root / "1.2" / "1.2.3" / "1.2.3.4.dcm")  # a file nobody indexed
    (stored.path.parent / ".tmp-left.part").write_bytes(b"x")
    stored.path.unlink()
    problems = archive.verify().problems
    assert any("indexed but the file is missing" in p for p in problems)
    assert any("1.2/1.2.3/1.2.3.4.dcm: a file the index does not list" in p for p in problems)
    assert any("temporary file" in p for p in problems)


def test_a_damaged_index_is_set_aside_and_made_again(workdir, lab_data):
    root = workdir / "archive"
    with Archive(root) as arc:
        for instance in lab_data.instances[:10]:
            arc.import_file(instance.path)
    (root / INDEX_NAME).write_bytes(b"this is not an SQLite database" * 100)
    with Archive(root) as arc:
        assert sorted(r.sop_instance_uid for r in arc.instances()) == sorted(
            i.sop_instance_uid for i in lab_data.instances[:10])
        assert arc.verify(deep=True).ok
    assert [p.name.startswith(f"{INDEX_NAME}.damaged-") for p in root.iterdir() if "damaged" in p.name] == [True]
