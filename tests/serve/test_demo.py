"""The demo PACS: generated once (clearly demo data, several modalities and years, RLE, a
multi-frame colour clip, a non-Latin name, CT window values), served on loopback as DEMO_PACS with
a "Demo PACS" profile; our client finds its studies and retrieves one; `pacsbrowser demo` runs."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.demo import DEMO_AE, PROFILE_NAME, DemoPacs, create_demo_archive
from pacsbrowser.core.demo.generate import instance_count
from pacsbrowser.core.records import QueryKeys
from pacsbrowser.core.retrieve import RetrieveService
from tests.archive.helpers import ListenerProcess
from tests.lab.client import run
from tests.lab.peers import dcmtk
from tests.query.conftest import collect, service_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(tmp_path_factory.mktemp("demo")) / "demo-archive"
    assert create_demo_archive(root) == instance_count()
    return root


def test_the_demo_archive(demo_root: Path) -> None:
    with Archive(demo_root, readonly=True) as archive:
        counts = archive.counts()
        assert 150 <= counts["instances"] == instance_count() and counts["studies"] >= 6
        studies = archive.studies()
        assert all(s.patient_name.startswith("DEMO^") for s in studies)
        assert {m for s in studies for m in s.modalities} >= {"CT", "MR", "CR", "US"}
        assert len({s.study_date[:4] for s in studies}) >= 4
        assert any(not s.patient_name.isascii() for s in studies)
        rows = archive.instances()
        assert any(r.transfer_syntax_uid == RLELossless for r in rows)
        clip = [r for r in rows if (r.frames or 0) > 1]
        assert clip
        ds = pydicom.dcmread(clip[0].path)
        assert ds.PhotometricInterpretation == "RGB" and ds.pixel_array.shape[0] == ds.NumberOfFrames
        ct = pydicom.dcmread(next(r.path for r in rows if r.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"))
        hu = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
        assert hu.min() < -700 and hu.max() > 400 and len(ct.WindowWidth) == 2  # air, bone, two windows
        rle = pydicom.dcmread(next(r.path for r in rows if r.transfer_syntax_uid == RLELossless))
        assert rle.pixel_array.std() > 50  # decodes to an image, not a flat field
    assert create_demo_archive(demo_root) == instance_count()  # once: the second call keeps it


def test_demo_pacs_found_and_retrieved_by_our_client(demo_root: Path, workdir: Path, archive: Archive) -> None:
    store = ProfileStore(workdir / "config")

    async def scenario():
        demo = DemoPacs(demo_root, store=store)
        profile = await demo.start()
        try:
            assert store.get(PROFILE_NAME) == profile and profile.called_ae == DEMO_AE
            assert profile.host == "127.0.0.1"
            studies, outcome = await collect(service_for(profile_peer(profile)), QueryKeys.studies())
            ct = next(s for s in studies if "CT" in (s.modalities or ()))
            summary = await RetrieveService(profile, archive).get_study(ct.study_instance_uid).wait()
            return studies, ct, summary
        finally:
            await demo.stop()

    studies, ct, summary = run(scenario(), timeout=120)
    assert len(studies) >= 6 and all(s.patient_name.alphabetic.startswith("DEMO") for s in studies)
    assert summary.complete and summary.received == ct.number_of_instances
    with Archive(demo_root, readonly=True) as source:
        row = source.instances(study_uid=ct.study_instance_uid)[0]
        got = pydicom.dcmread(archive.instance(row.sop_instance_uid).path)
        assert np.array_equal(got.pixel_array, pydicom.dcmread(row.path).pixel_array)


def profile_peer(profile):
    return type("Peer", (), {"host": profile.host, "port": profile.port, "aet": profile.called_ae})()


def test_demo_command(demo_root: Path, workdir: Path) -> None:
    env = {"PYTHONUNBUFFERED": "1", "PACSBROWSER_CONFIG_DIR": str(workdir / "config"),
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = ListenerProcess([sys.executable, "-m", "pacsbrowser", "demo", "--dir", str(demo_root)], env=env)
    try:
        port = process.wait_ready(60)
        assert dcmtk("echoscu", "-aec", DEMO_AE, "127.0.0.1", str(port)).returncode == 0
        assert ProfileStore(workdir / "config").get(PROFILE_NAME).port == port
    finally:
        assert process.stop(signal.SIGINT) == 0
