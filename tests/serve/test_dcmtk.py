"""DCMTK against our SCP with every role (the lab's data imported into its archive first):
echoscu; findscu at four levels in both roots gives the rows the archive holds; getscu and movescu
(storescp as the destination) receive every file with the same pixel data; an AE outside --allow
is refused; an unknown move destination is answered 0xA801."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.lab.data import Catalog
from tests.lab.peers import dcmtk

from .conftest import STORESCP_AE, Served, start_server

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


def _find(served: Served, root: str, level: str, *keys: str, out: Path) -> list[pydicom.Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    args = [f"-{root}", "-aet", "FINDSCU", "-aec", served.aet, "-X", "-od", str(out),
            "-k", f"QueryRetrieveLevel={level}"]
    for key in keys:
        args += ["-k", key]
    result = dcmtk("findscu", *args, served.host, str(served.port), timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def test_echoscu(served: Served) -> None:
    result = dcmtk("echoscu", "-aec", served.aet, served.host, str(served.port))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("root", ["P", "S"])
def test_findscu_four_levels(served: Served, lab_data: Catalog, root: str, tmp_path: Path) -> None:
    study = lab_data.studies[0]
    series = lab_data.series_of(study.uid)[0]
    if root == "P":
        patients = _find(served, root, "PATIENT", "PatientID", "PatientName", "NumberOfPatientRelatedStudies",
                         out=tmp_path / "p")
        assert {str(p.PatientID) for p in patients} == {p.patient_id for p in lab_data.patients}
        for answer in patients:
            assert answer.NumberOfPatientRelatedStudies == len(lab_data.studies_of(str(answer.PatientID)))
        scope = [f"PatientID={study.patient_id}"]
    else:
        scope = []
    studies = _find(served, root, "STUDY", *scope, "StudyInstanceUID", "StudyDate", "ModalitiesInStudy",
                    "NumberOfStudyRelatedInstances", "NumberOfStudyRelatedSeries", out=tmp_path / "st")
    expected = lab_data.studies_of(study.patient_id) if root == "P" else lab_data.studies
    assert {str(s.StudyInstanceUID) for s in studies} == {s.uid for s in expected}
    for answer in studies:
        held = lab_data.study(str(answer.StudyInstanceUID))
        assert answer.NumberOfStudyRelatedInstances == held.instance_count
        assert answer.NumberOfStudyRelatedSeries == len(lab_data.series_of(held.uid))
    found = _find(served, root, "SERIES", *scope, f"StudyInstanceUID={study.uid}", "SeriesInstanceUID", "Modality",
                  "NumberOfSeriesRelatedInstances", out=tmp_path / "se")
    assert {str(s.SeriesInstanceUID) for s in found} == {s.uid for s in lab_data.series_of(study.uid)}
    images = _find(served, root, "IMAGE", *scope, f"StudyInstanceUID={study.uid}",
                   f"SeriesInstanceUID={series.uid}", "SOPInstanceUID", "InstanceNumber", out=tmp_path / "im")
    assert {str(i.SOPInstanceUID) for i in images} == {i.sop_instance_uid for i in
                                                       lab_data.instances_of_series(series.uid)}


def test_findscu_matching(served: Served, lab_data: Catalog, tmp_path: Path) -> None:
    smiths = _find(served, "S", "STUDY", "PatientName=smith*", "StudyInstanceUID", out=tmp_path / "a")
    expected = {s.uid for s in lab_data.studies if s.patient_id in ("LAB0001", "LAB0002")}
    assert {str(s.StudyInstanceUID) for s in smiths} == expected
    dated = _find(served, "S", "STUDY", "StudyDate=20150101-", "StudyInstanceUID", out=tmp_path / "b")
    assert {str(s.StudyInstanceUID) for s in dated} == {s.uid for s in lab_data.studies_between("20150101")}


def _same_pixels(received: Path, catalog: Catalog) -> str:
    ds = pydicom.dcmread(received)
    source = pydicom.dcmread(catalog.instance(str(ds.SOPInstanceUID)).path)
    if ds.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID:
        assert ds.PixelData == source.PixelData, received
    else:
        assert np.array_equal(ds.pixel_array, source.pixel_array), received
    return str(ds.SOPInstanceUID)


def test_getscu_receives_every_file(served: Served, lab_data: Catalog, tmp_path: Path) -> None:
    """getscu proposes uncompressed syntaxes only: the RLE files arrive decompressed, same pixels."""
    for study in lab_data.studies:
        out = tmp_path / study.uid
        out.mkdir()
        result = dcmtk("getscu", "-S", "-aet", "GETSCU", "-aec", served.aet, "-od", str(out),
                       "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study.uid}",
                       served.host, str(served.port), timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        got = {_same_pixels(p, lab_data) for p in out.iterdir()}
        assert got == {i.sop_instance_uid for i in lab_data.instances_of_study(study.uid)}
        for path in out.iterdir():
            assert not pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
    assert any(i.is_rle for i in lab_data.instances)


def test_movescu_to_storescp(served: Served, lab_data: Catalog) -> None:
    rle = [i for i in lab_data.instances if i.is_rle]
    studies = {i.study_uid for i in rle} or {lab_data.studies[0].uid}
    for study_uid in studies:
        result = dcmtk("movescu", "-S", "-aet", "MOVESCU", "-aec", served.aet, "-aem", STORESCP_AE,
                       "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                       served.host, str(served.port), timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
    files = list(served.storescp_dir.iterdir())
    got = {_same_pixels(p, lab_data) for p in files}
    assert got == {i.sop_instance_uid for s in studies for i in lab_data.instances_of_study(s)}
    # storescp accepts every syntax: the RLE files travel as stored
    kept = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    assert sum(1 for ds in kept if ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless) == len(rle)


def test_unknown_move_destination(served: Served, lab_data: Catalog) -> None:
    result = dcmtk("movescu", "-v", "-S", "-aet", "MOVESCU", "-aec", served.aet, "-aem", "NOWHERE",
                   "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={lab_data.studies[0].uid}",
                   served.host, str(served.port), timeout=60)
    text = result.stdout + result.stderr
    assert "Refused: MoveDestinationUnknown" in text, text[-2000:]  # 0xA801


def test_ae_outside_allow_is_rejected(served: Served) -> None:
    server = start_server(served.archive, ae_title="PBGUARD", allowed_calling_aes=("FRIEND",))
    try:
        host, port = server.address
        assert dcmtk("echoscu", "-aet", "FRIEND", "-aec", "PBGUARD", host, str(port)).returncode == 0
        refused = dcmtk("echoscu", "-aet", "STRANGER", "-aec", "PBGUARD", host, str(port))
        assert refused.returncode != 0
        assert "reject" in (refused.stdout + refused.stderr).lower()
    finally:
        server.shutdown()


def test_tls_echoscu_findscu_and_storescu(served: Served, lab_data: Catalog, certs, workdir: Path) -> None:
    from pacsbrowser.core.archive import Archive
    from pacsbrowser.core.records import TLSConfiguration

    tls = TLSConfiguration(certificate=certs.server_cert, key=certs.server_key, ca_certificate=certs.ca_cert)
    archive = Archive(workdir / "tls-archive", durable=False)
    server = start_server(archive, ae_title="PBTLS", tls=tls)
    try:
        host, port = server.address
        client = ["+tls", str(certs.client_key), str(certs.client_cert), "+cf", str(certs.ca_cert)]
        assert dcmtk("echoscu", *client, "-aec", "PBTLS", host, str(port)).returncode == 0
        paths = [i.path for i in lab_data.instances_of_study(lab_data.studies[0].uid)]
        stored = dcmtk("storescu", *client, "-aec", "PBTLS", host, str(port), *map(str, paths), timeout=60)
        assert stored.returncode == 0, stored.stderr[-2000:]
        archive.flush()
        assert archive.counts()["instances"] == len(paths)
        found = dcmtk("findscu", *client, "-S", "-aec", "PBTLS", "-X", "-od", str(workdir),
                      "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", host, str(port))
        assert found.returncode == 0 and len(list(workdir.glob("rsp*.dcm"))) == 1
        plain = dcmtk("echoscu", "-aec", "PBTLS", host, str(port), timeout=30)
        assert plain.returncode != 0  # TLS only
    finally:
        server.shutdown()
        archive.close()
