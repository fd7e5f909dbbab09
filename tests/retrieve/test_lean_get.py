"""The C-STORE sub-operations of a C-GET on the lean receive path (core.dicom.bulkreceive): against
Orthanc, every compressed syntax of the lab and a multi-frame object whose frames span several
fragments arrive with the data set byte for byte as Orthanc holds it, as pynetdicom's own path
writes it (the whole file, File Meta included) and as DCMTK's getscu writes it (+B, bit-preserving:
without it getscu decodes and re-encodes what it receives, and the JPEG baseline file's data set
comes out different from what was sent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_fragmented_frames
from pydicom.uid import JPEG2000Lossless

from pacsbrowser.core.archive import Archive, split_part10
from pacsbrowser.core.dicom import bulkreceive
from pacsbrowser.core.dicom.receive import ReceiveHandler
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.client import profile_for, run
from tests.lab.data import Catalog, lab_uid
from tests.lab.peers import LabError, OrthancPeer, dcmtk

from .helpers import GeneratedInstance, GeneratedStudy, assert_same_as_source

# getscu's option preferring each syntax on the storage contexts it offers
_GETSCU_PREFERS = {
    "1.2.840.10008.1.2.5": "+xr",  # RLE Lossless
    "1.2.840.10008.1.2.4.90": "+xv",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.80": "+xt",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.70": "+xs",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.50": "+xy",  # JPEG baseline
    "1.2.840.10008.1.2.1": "+xe",  # Explicit VR Little Endian
}


def _multiframe(root: Path, catalog: Catalog) -> GeneratedInstance:
    """The lab's 4-frame ultrasound in JPEG 2000 lossless, each frame split over 3 fragments."""
    source = next(i for i in catalog.instances_with_modality("US") if i.frames and i.frames > 1)
    ds = pydicom.dcmread(source.path)
    ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    frames = [b"".join(f) for f in generate_fragmented_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
    ds.PixelData = encapsulate(frames, fragments_per_frame=3)
    ds.StudyInstanceUID = lab_uid("lean", "multiframe", "study")
    ds.SeriesInstanceUID = lab_uid("lean", "multiframe", "series")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = lab_uid("lean", "multiframe", "instance")
    root.mkdir(parents=True, exist_ok=True)
    path = root / "multiframe.dcm"
    ds.save_as(path, enforce_file_format=True)
    return GeneratedInstance(str(ds.SOPInstanceUID), str(ds.SOPClassUID), str(ds.SeriesInstanceUID),
                             str(ds.StudyInstanceUID), path, str(JPEG2000Lossless))


@pytest.fixture(scope="module")
def compressed_orthanc(lab_dir: Path, lab_data: Catalog, compressed_study: GeneratedStudy, move_port: int,
                       _lab_peers: list[Any]) -> tuple[OrthancPeer, list[GeneratedStudy]]:
    """An Orthanc holding the lab's compressed study and the multi-fragment multi-frame object.
    It accepts only compressed syntaxes on storage contexts: else it takes Explicit VR Little
    Endian wherever a context offers it, and getscu (one context per SOP class, the syntax it
    prefers first) is sent RLE, JPEG and JPEG-LS transcoded, JPEG 2000 not at all."""
    multi = _multiframe(lab_dir / "lean-multiframe", lab_data)
    studies = [compressed_study, GeneratedStudy(multi.study_uid, (multi,))]
    compressed = [uid for uid in _GETSCU_PREFERS if uid != "1.2.840.10008.1.2.1"]
    peer = OrthancPeer(aet="LEANORTHANC", move_port=move_port, extra_config={"AcceptedTransferSyntaxes": compressed})
    _lab_peers.append(peer)
    try:
        peer.start()
        peer.load([p for study in studies for p in study.paths()])
    except LabError as exc:
        peer.stop()
        pytest.fail(f"Orthanc could not be started: {exc}", pytrace=False)
    return peer, studies


def _data_set(path: Path) -> tuple[str, bytes]:
    data = path.read_bytes()
    syntax, offset, _ = split_part10(data)
    return syntax, data[offset:]


def _get_all(peer: OrthancPeer, archive: Archive, studies: list[GeneratedStudy]) -> None:
    service = RetrieveService(profile_for(peer), archive, listener_host="127.0.0.1")
    for study in studies:
        summary = run(service.get_study(study.study_uid).wait(), 120)
        assert summary.complete and summary.received == len(study.instances), summary.reasons
    archive.flush()


def _getscu(peer: Any, instance: GeneratedInstance, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    result = dcmtk("getscu", "-S", "+B", _GETSCU_PREFERS[instance.transfer_syntax_uid], "-aet", "GETSCU",
                   "-aec", peer.aet, "-od", str(out), "-k", "QueryRetrieveLevel=IMAGE",
                   "-k", f"StudyInstanceUID={instance.study_uid}", "-k", f"SeriesInstanceUID={instance.series_uid}",
                   "-k", f"SOPInstanceUID={instance.sop_instance_uid}", peer.host, str(peer.port), timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in out.iterdir() if instance.sop_instance_uid in p.name]
    assert len(files) == 1, (list(out.iterdir()), result.stderr[-2000:])
    return files[0]


def _lean_plain_getscu(peer: Any, studies: list[GeneratedStudy], workdir: Path, monkeypatch,
                       compare_with_getscu: list[GeneratedInstance]) -> None:
    """Retrieve `studies` on the lean path, then on pynetdicom's: the same files; and getscu's
    data set for each of `compare_with_getscu`."""
    instances = [i for study in studies for i in study.instances]
    calls: list[str] = []
    original = ReceiveHandler.__call__
    monkeypatch.setattr(ReceiveHandler, "__call__", lambda self, event: calls.append("x") or original(self, event))

    lean = Archive(workdir / "lean")
    try:
        _get_all(peer, lean, studies)
        assert calls == []  # every sub-operation went the lean way
        assert assert_same_as_source(lean, instances) == len(instances)
        got = {i.sop_instance_uid: lean.path_of(i.sop_instance_uid).read_bytes() for i in instances}
    finally:
        lean.close()

    monkeypatch.setattr(bulkreceive, "ENABLED", False)
    plain = Archive(workdir / "plain")
    try:
        _get_all(peer, plain, studies)
        assert len(calls) == len(instances)  # pynetdicom's path, through the handler
        want = {i.sop_instance_uid: plain.path_of(i.sop_instance_uid).read_bytes() for i in instances}
    finally:
        plain.close()

    for instance in instances:
        uid = instance.sop_instance_uid
        assert got[uid] == want[uid], f"{instance.path.name}: the lean path wrote another file"
        assert split_part10(got[uid])[0] == instance.transfer_syntax_uid, instance.path.name
    for instance in compare_with_getscu:
        uid = instance.sop_instance_uid
        syntax, offset, _ = split_part10(got[uid])
        theirs = _getscu(peer, instance, workdir / "getscu" / uid)
        assert _data_set(theirs) == (syntax, got[uid][offset:]), f"{instance.path.name}: getscu got another data set"


@pytest.mark.interop  # Orthanc sends, getscu receives too
def test_compressed_and_multi_fragment_files_are_those_getscu_receives(compressed_orthanc, workdir: Path,
                                                                        monkeypatch):
    peer, studies = compressed_orthanc
    instances = [i for study in studies for i in study.instances]
    assert {i.transfer_syntax_uid for i in instances} == set(_GETSCU_PREFERS) - {"1.2.840.10008.1.2.1"}
    _lean_plain_getscu(peer, studies, workdir, monkeypatch, instances)


@pytest.mark.interop  # Orthanc sends, getscu receives too
def test_uncompressed_files_are_those_getscu_receives(orthanc, lab_data: Catalog, workdir: Path, monkeypatch):
    study = next(s for s in lab_data.studies if any(i.is_rle for i in lab_data.instances_of_study(s.uid)))
    instances = tuple(GeneratedInstance(i.sop_instance_uid, str(i.sop_class_uid), i.series_uid, i.study_uid, i.path,
                                        str(i.transfer_syntax_uid)) for i in lab_data.instances_of_study(study.uid))
    plain = [i for i in instances if i.transfer_syntax_uid == "1.2.840.10008.1.2.1"]
    assert plain and len(plain) < len(instances)  # and RLE ones, sent as stored to us
    _lean_plain_getscu(orthanc, [GeneratedStudy(study.uid, instances)], workdir, monkeypatch, plain[:3])
