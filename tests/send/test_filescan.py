"""What a drop finds: good DICOM files, files that are not DICOM, damaged ones (core.filescan)."""

from __future__ import annotations

import shutil

from pacsbrowser.core.filescan import scan_paths


def test_a_folder_with_a_damaged_and_a_non_dicom_file(lab_data, workdir):
    folder = workdir / "drop"
    (folder / "sub").mkdir(parents=True)
    good = lab_data.uncompressed_instances()[:3]
    for n, instance in enumerate(good):
        shutil.copy(instance.path, folder / ("sub" if n else "") / f"{n}.dcm")
    whole = good[0].path.read_bytes()
    (folder / "cut.dcm").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.txt").write_text("not an image\n")
    scan = scan_paths([folder, folder / "0.dcm"])  # a file reached twice counts once
    assert sorted(p.name for p in scan.files) == ["0.dcm", "1.dcm", "2.dcm"]
    assert scan.bytes == sum(i.path.stat().st_size for i in good)
    assert [(u.path.name, u.reason) for u in scan.not_dicom] == [("notes.txt", "not a DICOM file")]
    assert [u.path.name for u in scan.damaged] == ["cut.dcm"] and "truncated" in scan.damaged[0].reason


def test_missing_paths_and_stop(workdir, lab_data):
    import threading

    scan = scan_paths([workdir / "gone.dcm"])
    assert scan.files == [] and scan.unusable[0].reason == "no such file or folder"
    stop = threading.Event()
    stop.set()
    assert scan_paths([i.path for i in lab_data.instances], stop=stop).stopped
