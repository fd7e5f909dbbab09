"""Issue 15, item 4: private and newer SOP classes (Siemens CSA Non-Image, private GE and Philips
objects, classes pynetdicom does not know) arrive by C-MOVE at our listener and by C-GET, from a
real Orthanc that holds them ("UnknownSopClassAccepted": true). Our Storage SCP used to refuse their
presentation contexts, so the C-MOVE failed for exactly those objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, build_context
from pynetdicom.sop_class import Verification

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.dicom.anyclass import is_storage_like
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.server import ArchiveServer
from tests.lab.client import profile_for, run
from tests.lab.data import lab_uid
from tests.lab.peers import OrthancPeer

pytestmark = pytest.mark.timeout(120)

SIEMENS_CSA_NON_IMAGE = "1.3.12.2.1107.5.9.1"
GE_PRIVATE = "1.2.840.113619.4.26"  # a GE private class (not in pydicom's or pynetdicom's lists)
PHILIPS_PRIVATE = "1.3.46.670589.2.5.1.1"  # Philips 3D Object Storage (private)
NEWER_PUBLIC = "1.2.840.10008.5.1.4.1.1.9999"  # a public-looking storage class nobody knows yet
PRIVATE_CLASSES = (SIEMENS_CSA_NON_IMAGE, GE_PRIVATE, PHILIPS_PRIVATE, NEWER_PUBLIC)


def _dataset(study: str, series: str, sop_class: str, number: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = lab_uid("private", sop_class, number)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = "PRIVATE^CLASSES", "PRIV1"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240301", "080000", "PRIVCLS", "1"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", 1, number
    ds.add_new(0x00291010, "OB", bytes(range(64)) * 4)  # a CSA-like private block
    ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.fixture(scope="module")
def private_study(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One MR image and one instance of each private or unknown class, in one study."""
    root = tmp_path_factory.mktemp("private-classes")
    study, series = lab_uid("private", "study"), lab_uid("private", "series")
    paths = []
    for n, sop_class in enumerate(("1.2.840.10008.5.1.4.1.1.4", *PRIVATE_CLASSES)):
        ds = _dataset(study, series, sop_class, n + 1)
        if n == 0:
            ds.set_pixel_data(np.arange(64, dtype=np.uint16).reshape(8, 8), "MONOCHROME2", 12,
                              generate_instance_uid=False)
        path = root / f"{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture
def private_orthanc(orthanc_factory, private_study: list[Path]) -> Iterator[OrthancPeer]:
    peer = orthanc_factory(load=False, aet="PRIVORTHANC", extra_config={"UnknownSopClassAccepted": True})
    peer.load(private_study)
    yield peer


def _study_uid(paths: list[Path]) -> str:
    return str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)


def _assert_all_arrived(archive: Archive, paths: list[Path]) -> None:
    archive.flush()
    for path in paths:
        source = pydicom.dcmread(path)
        row = archive.instance(str(source.SOPInstanceUID))
        assert row is not None, f"{source.SOPClassUID} did not arrive"
        got = pydicom.dcmread(row.path)
        assert got.SOPClassUID == source.SOPClassUID
        assert got == source


def test_which_classes_are_storage_like():
    for uid in (*PRIVATE_CLASSES, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.77.1.6"):
        assert is_storage_like(uid), uid
    for uid in ("1.2.840.10008.1.1", "1.2.840.10008.5.1.4.1.2.2.1", "1.2.840.10008.5.1.4.1.2.2.3",
                "1.2.840.10008.1.20.1", "1.2.840.10008.1.2.1", "1.2.840.10008.5.1.4.31", "not a uid", "1..2"):
        assert not is_storage_like(uid), uid


def test_private_classes_arrive_by_move(private_orthanc: OrthancPeer, private_study: list[Path], archive: Archive,
                                       move_port: int):
    service = RetrieveService(profile_for(private_orthanc, listener_port=move_port), archive,
                              listener_host="127.0.0.1", cancel_timeout=3.0)
    summary = run(service.move_study(_study_uid(private_study)).wait(), timeout=60)
    assert summary.complete, summary.reasons
    assert summary.received == len(private_study) and summary.failed == 0
    _assert_all_arrived(archive, private_study)


def test_private_classes_arrive_by_get(private_orthanc: OrthancPeer, private_study: list[Path], archive: Archive):
    service = RetrieveService(profile_for(private_orthanc), archive, cancel_timeout=3.0)
    summary = run(service.get_study(_study_uid(private_study)).wait(), timeout=60)
    assert summary.complete, summary.reasons
    assert summary.received == len(private_study) and summary.failed == 0
    _assert_all_arrived(archive, private_study)


def test_our_listener_takes_a_private_class_pushed_to_it(private_study: list[Path], archive: Archive):
    """A sender proposing a private class (one context each, several syntaxes) gets it accepted in
    our preferred syntax and the C-STORE succeeds; Verification and unknown services stay as they were."""
    sent = [pydicom.dcmread(p) for p in private_study[1:]]

    async def main() -> list[int]:
        import asyncio

        async with ArchiveServer(0, "PBPRIV", archive, host="127.0.0.1") as scp:
            def push() -> list[int]:
                ae = AE(ae_title="PUSHER")
                contexts = [build_context(str(ds.SOPClassUID), [ExplicitVRLittleEndian, "1.2.840.10008.1.2"])
                            for ds in sent]
                contexts += [build_context(Verification), build_context("1.2.840.10008.5.1.4.31")]  # worklist
                assoc = ae.associate("127.0.0.1", scp.address[1], contexts=contexts, ae_title="PBPRIV")
                try:
                    assert assoc.is_established
                    accepted = {str(cx.abstract_syntax): str(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
                    assert "1.2.840.10008.5.1.4.31" not in accepted
                    for ds in sent:
                        assert accepted[str(ds.SOPClassUID)] == ExplicitVRLittleEndian  # ours first
                    return [int(assoc.send_c_store(ds).Status) for ds in sent]
                finally:
                    assoc.release()

            return await asyncio.to_thread(push)

    statuses = run(main(), timeout=30)
    assert statuses == [0] * len(sent)
    _assert_all_arrived(archive, private_study[1:])


def _shape(contexts) -> list[tuple]:
    return [(str(cx.abstract_syntax), tuple(str(ts) for ts in cx.transfer_syntax), cx.scu_role, cx.scp_role)
            for cx in contexts]


def test_associations_share_the_servers_contexts_without_changing_them(private_study: list[Path], archive: Archive):
    """Each association negotiates over the server's own presentation contexts (no per-association
    deep copy, 29 ms or more before an A-ASSOCIATE-RQ was read): a first association that proposes
    a private class with SCP/SCU role selection, as a C-GET does, leaves them as they were, and the
    next association, which proposes neither, gets neither the private class nor a role it did not ask for."""
    private = pydicom.dcmread(private_study[1])
    ct = "1.2.840.10008.5.1.4.1.1.2"

    async def main() -> tuple[list, list, list, dict, dict]:
        import asyncio

        async with ArchiveServer(0, "PBSHARE", archive, host="127.0.0.1", query_retrieve=True) as scp:
            contexts = scp._server._server.contexts  # the list every association negotiates over
            before = _shape(contexts)

            def associate(with_private: bool) -> dict[str, tuple]:
                ae = AE(ae_title="SHARER")
                proposed = [build_context(ct, [ExplicitVRLittleEndian])]
                roles = []
                if with_private:
                    proposed.append(build_context(str(private.SOPClassUID), [ExplicitVRLittleEndian]))
                    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation

                    for uid in (ct, str(private.SOPClassUID)):
                        role = SCP_SCU_RoleSelectionNegotiation()
                        role.sop_class_uid, role.scu_role, role.scp_role = uid, False, True
                        roles.append(role)
                assoc = ae.associate("127.0.0.1", scp.address[1], contexts=proposed, ae_title="PBSHARE",
                                     ext_neg=roles)
                try:
                    assert assoc.is_established
                    return {str(cx.abstract_syntax): (cx.as_scu, cx.as_scp) for cx in assoc.accepted_contexts}
                finally:
                    assoc.release()

            first = await asyncio.to_thread(associate, True)
            middle = _shape(contexts)
            second = await asyncio.to_thread(associate, False)
            return before, middle, _shape(contexts), first, second

    before, middle, after, first, second = run(main(), timeout=30)
    assert before == middle == after
    assert str(private.SOPClassUID) not in [uid for uid, *_ in after]
    # (the requestor's view) the first association asked for the C-GET roles: it is the storage
    # SCP of both classes, we may send them to it
    assert first[ct] == (False, True) and first[str(private.SOPClassUID)] == (False, True)
    # the second asked for no role: the default ones (it sends, we store), and no private class
    assert second == {ct: (True, False)}
