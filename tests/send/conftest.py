"""Fixtures for the send (C-STORE) tests.

Fresh peers of our own, so the session-wide `orthanc` / `dcmqrscp` that other tests count on are
never written to:
    send_orthanc    an empty OrthancPeer for this module (`orthanc_empty`: cleared first)
    send_orthanc_tls  an empty OrthancPeer with DICOM TLS (client certificate required)
    send_dcmqrscp   an empty DcmqrscpPeer for this module; accepts uncompressed syntaxes only
                    (DCMTK's default), so compressed files must arrive decompressed
    compressed      the lab's RLE files plus JPEG baseline, JPEG lossless, JPEG-LS and JPEG 2000
                    files made here (DCMTK dcmcjpeg/dcmcjpls, pydicom + openjpeg), new UIDs each
    workdir         a temporary folder of ours, removed after the test
Every test also checks that no thread of ours and no pynetdicom association outlives it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless

from tests.lab.data import Catalog, lab_uid
from tests.lab.peers import DcmqrscpPeer, LabError, OrthancPeer, dcmtk, stop_all

from .helpers import CompressedSet


@pytest.fixture(scope="module")
def _send_peers() -> Iterator[list]:
    """The module's peers, stopped together at its end (an Orthanc takes seconds to stop)."""
    peers: list = []
    try:
        yield peers
    finally:
        stop_all(peers)


def _started(peer, what: str, peers: list):
    peers.append(peer)
    try:
        return peer.start()
    except LabError as exc:
        pytest.fail(f"{what} could not be started: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def send_orthanc(_send_peers: list) -> OrthancPeer:
    return _started(OrthancPeer(aet="SENDTEST"), "Orthanc", _send_peers)


@pytest.fixture(scope="module")
def send_orthanc_tls(certs, _send_peers: list) -> OrthancPeer:
    """An empty Orthanc speaking DICOM TLS only, client certificate required."""
    return _started(OrthancPeer(aet="SENDTLS", tls=certs), "Orthanc (TLS)", _send_peers)


@pytest.fixture
def orthanc_empty(send_orthanc: OrthancPeer) -> OrthancPeer:
    send_orthanc.clear()
    assert send_orthanc.instance_count() == 0
    return send_orthanc


@pytest.fixture(scope="module")
def send_dcmqrscp(_send_peers: list) -> DcmqrscpPeer:
    return _started(DcmqrscpPeer(aet="SENDQR"), "dcmqrscp", _send_peers)


@pytest.fixture(scope="module")
def compressed(lab_data: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompressedSet]:
    """Compressed files in every syntax we can make, each with its own SOP Instance UID."""
    root = tmp_path_factory.mktemp("compressed")
    ct = lab_data.instances_with_modality("CT")[0]
    mr = lab_data.instances_with_modality("MR")[0]
    us = next(i for i in lab_data.instances_with_modality("US") if not i.is_compressed and i.frames == 1)
    files: dict[str, Path] = {}

    def renamed(source: Path, label: str) -> Path:
        ds = pydicom.dcmread(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = lab_uid("send-test", label)
        target = root / f"{label}-source.dcm"
        ds.save_as(target, enforce_file_format=True)
        return target

    try:
        for label, source, tool, args in (
            ("jpeg-lossless", ct.path, "dcmcjpeg", ["+e1", "+un"]),  # +un: keep our UID
            ("jpeg-baseline", us.path, "dcmcjpeg", ["+eb", "+un"]),
            ("jpeg-ls", mr.path, "dcmcjpls", ["+un"]),
        ):
            target = root / f"{label}.dcm"
            dcmtk(tool, *args, renamed(source, label), target, check=True)
            files[label] = target
        ds = pydicom.dcmread(renamed(mr.path, "jpeg2000"))
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        files["jpeg2000"] = root / "jpeg2000.dcm"
        ds.save_as(files["jpeg2000"], enforce_file_format=True)
        for source in root.glob("*-source.dcm"):
            source.unlink()
    except LabError as exc:
        pytest.fail(f"compressed test files could not be made: {exc}", pytrace=False)
    rle = [i.path for i in lab_data.rle_instances()]
    yield CompressedSet(root=root, made=files, rle=rle)
    shutil.rmtree(root, ignore_errors=True)
