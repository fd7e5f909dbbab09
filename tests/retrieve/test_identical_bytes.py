"""What a C-GET writes into our archive is, data set byte for byte, what DCMTK writes from the same
PACS (bit preserving, +B), for every transfer syntax in the lab: Explicit VR Little Endian, RLE, JPEG
lossless, JPEG baseline, JPEG-LS lossless, JPEG 2000 lossless, and a multi-frame object whose pixel data
is in several fragments (RLE, one per frame) as well as the same object uncompressed.

The instances are served by an Orthanc of this module's own (loaded with the compressed study of the
retrieve tests and two objects made here). DCMTK's side: `getscu` for the uncompressed ones. getscu
3.6.7 proposes every storage class with all its syntaxes in one context, and Orthanc 1.10 then
accepts (and transcodes to) Explicit VR Little Endian, so getscu never receives a compressed file
from it; for those, DCMTK's receiver is `storescp` (the same DCMTK storage SCP code) fed by
`movescu`, preferring the instance's own syntax (`+xr`, `+xs`, ...), so that Orthanc sends it as
stored to both of us.

(bulk-lean's receive path is tested by the same comparison; extend CASES for what it adds.)
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from pacsbrowser.core.archive import Archive, split_part10
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.client import profile_for, run
from tests.lab.data import Catalog
from tests.lab.peers import DCMTK_BIN, LabError, OrthancPeer, dcmtk, free_port, peer_env

from .helpers import GeneratedStudy

pytestmark = pytest.mark.timeout(180)

# the getscu flag that makes it prefer a syntax (and so receive the file as Orthanc stores it)
PREFER = {
    ExplicitVRLittleEndian: "+xe",
    RLELossless: "+xr",
    JPEGLosslessSV1: "+xs",
    JPEGBaseline8Bit: "+xy",
    JPEGLSLossless: "+xt",
    JPEG2000Lossless: "+xv",
}


def _dataset_bytes(path: Path) -> tuple[str, bytes]:
    data = path.read_bytes()
    syntax, offset, _ = split_part10(data)
    return syntax, data[offset:]


@pytest.fixture(scope="module")
def served(compressed_study: GeneratedStudy, lab_data: Catalog, tmp_path_factory):
    """An Orthanc holding the compressed study, an uncompressed CT, and the 4-frame ultrasound clip
    uncompressed and in RLE (4 fragments): (the peer, the instances as (SOP Instance UID, series UID,
    study UID, syntax, file), the port it knows STORESCP at)."""
    folder = tmp_path_factory.mktemp("identical")
    cine = next(i for i in lab_data.instances if i.frames > 1 and not i.is_compressed)
    ct = next(i for i in lab_data.instances_with_modality("CT") if not i.is_compressed)
    ds = pydicom.dcmread(cine.path)
    ds.compress(RLELossless, generate_instance_uid=True)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    rle_cine = folder / "cine-rle.dcm"
    ds.save_as(rle_cine, enforce_file_format=True)
    fragments = sum(1 for _ in pydicom.encaps.generate_fragments(ds.PixelData))
    assert int(ds.NumberOfFrames) == 4 and fragments >= 4
    items = [(i.sop_instance_uid, i.series_uid, i.study_uid, i.transfer_syntax_uid, i.path)
             for i in compressed_study.instances]
    items += [(cine.sop_instance_uid, cine.series_uid, cine.study_uid, cine.transfer_syntax_uid, cine.path),
              (ct.sop_instance_uid, ct.series_uid, ct.study_uid, ct.transfer_syntax_uid, ct.path),
              (str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID), RLELossless, rle_cine)]
    storescp_port = free_port()
    peer = OrthancPeer(aet="IDENTICAL", modalities={"storescp": ["STORESCP", "127.0.0.1", storescp_port]})
    try:
        peer.start()
        peer.load([item[4] for item in items])
    except LabError as exc:
        peer.stop()
        pytest.fail(f"Orthanc could not be started: {exc}", pytrace=False)
    try:
        yield peer, items, storescp_port
    finally:
        peer.stop()


def _storescp(peer: OrthancPeer, port: int, out: Path, item: tuple) -> Path:
    """The instance as DCMTK's storescp (+B, preferring its syntax) receives it from a C-MOVE."""
    sop, series, study, syntax, _ = item
    out.mkdir(parents=True)
    receiver = subprocess.Popen([str(DCMTK_BIN / "storescp"), "-aet", "STORESCP", PREFER[syntax], "+B", "-od",
                                 str(out), str(port)], env=peer_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # listening?
            if dcmtk("echoscu", "-aec", "STORESCP", "127.0.0.1", port, timeout=10).returncode == 0:
                break
            time.sleep(0.05)
        dcmtk("movescu", "-S", "-aet", "PACSBROWSER", "-aec", peer.aet, "-aem", "STORESCP",
              "-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={study}",
              "-k", f"SeriesInstanceUID={series}", "-k", f"SOPInstanceUID={sop}", peer.host, peer.port,
              timeout=60, check=True)
    finally:
        receiver.terminate()
        receiver.wait(10)
    written = list(out.iterdir())
    assert len(written) == 1, written
    return written[0]


def _getscu(peer: OrthancPeer, out: Path, item: tuple) -> Path:
    sop, series, study, syntax, _ = item
    out.mkdir(parents=True)
    dcmtk("getscu", "-S", "-aet", "PACSBROWSER", "-aec", peer.aet, "-k", "QueryRetrieveLevel=IMAGE",
          "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}", "-k", f"SOPInstanceUID={sop}",
          PREFER[syntax], "+B", "-od", out, peer.host, peer.port, timeout=60, check=True)
    written = list(out.iterdir())
    assert len(written) == 1, written
    return written[0]


def test_each_syntax_is_stored_as_getscu_writes_it(served, workdir: Path, capsys):
    peer, items, storescp_port = served
    assert {item[3] for item in items} == set(PREFER), "a syntax of the lab is missing from the comparison"
    with Archive(workdir / "archive") as archive:
        service = RetrieveService(profile_for(peer), archive)
        for n, item in enumerate(items):
            sop, series, study, syntax, source = item
            if syntax == ExplicitVRLittleEndian:
                theirs = _getscu(peer, workdir / f"getscu-{n}", item)
            else:
                theirs = _storescp(peer, storescp_port, workdir / f"storescp-{n}", item)
            summary = run(service.get_instance(study, series, sop).wait())
            assert summary.complete and summary.received == 1, summary.reasons
            row = archive.instance(sop)
            assert row is not None
            ours_syntax, ours = _dataset_bytes(row.path)
            their_syntax, their = _dataset_bytes(theirs)
            assert ours_syntax == their_syntax == syntax, (sop, ours_syntax, their_syntax, syntax)
            assert ours == their, f"{syntax}: {len(ours)} bytes here, {len(their)} from getscu"
    with capsys.disabled():
        print(f"\n[identical] {len(items)} instances in {len(PREFER)} transfer syntaxes (one a 4-frame RLE "
              "object): data sets byte-identical to getscu / storescp +B")
