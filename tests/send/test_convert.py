"""Transfer syntaxes: a peer that accepts only uncompressed data receives compressed files
decompressed (pixel data equal to the decoded source); files it can take as stored go as stored;
a file nothing fits is reported, never dropped."""

from __future__ import annotations

import asyncio

import pydicom
import pytest
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from pacsbrowser.core.records import StoreOutcome
from pacsbrowser.core.store import StoreService
from tests.lab.data import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, Catalog
from tests.lab.peers import DcmqrscpPeer

from .helpers import (
    RecordingSCP,
    dataset_bytes,
    dcmqrscp_files,
    find_all_instances,
    profile_for,
    same_pixels,
    store_cli,
    without_pixels,
)

# what decompression legitimately changes in the image pixel module (YBR JPEG becomes RGB)
_CHANGED_BY_DECOMPRESSION = {"(0028,0004)", "(0028,0006)"}


def _headers(ds) -> dict:
    return {k: v for k, v in without_pixels(ds).items() if k not in _CHANGED_BY_DECOMPRESSION}


def test_explicit_vr_only_peer_gets_compressed_files_decompressed(compressed, lab_data: Catalog):
    plain = lab_data.uncompressed_instances()[:3]
    with RecordingSCP(transfer_syntaxes=[ExplicitVRLittleEndian]) as scp:
        summary = asyncio.run(StoreService(profile_for(scp), parallel=2).store(
            [*compressed.all, *(i.path for i in plain)]))
        assert summary.complete, summary.problems
        results = {str(r.path): r for r in summary.results}
        received = {uid: items[0] for uid, items in scp.by_uid().items()}
        assert len(received) == len(compressed.all) + len(plain)
        assert all(len(items) == 1 for items in scp.by_uid().values())
        for path in compressed.all:
            source = pydicom.dcmread(path)
            got = received[str(source.SOPInstanceUID)]
            assert got.transfer_syntax == ExplicitVRLittleEndian, path
            assert results[str(path)].converted and results[str(path)].transfer_syntax == ExplicitVRLittleEndian
            assert same_pixels(got.dataset, path), path  # equal to the decoded source
            assert _headers(got.dataset) == _headers(source), path
        for instance in plain:  # uncompressed Explicit VR files go as stored
            assert not results[str(instance.path)].converted
            assert received[instance.sop_instance_uid].transfer_syntax == ExplicitVRLittleEndian


def test_dcmqrscp_accepting_uncompressed_only_gets_everything_decompressed(compressed, lab_data: Catalog,
                                                                           send_dcmqrscp):
    # one association: DCMTK 3.6.7's dcmqrscp forks a child per association and loses instances
    # (confirmed with 0x0000, then missing from its index) when several store at once
    result = store_cli(send_dcmqrscp, lab_data.root, compressed.root, parallel=1)
    assert result.returncode == 0, (result.stdout, result.stderr, send_dcmqrscp.log_tail(80))
    expected = {i.sop_instance_uid: i.path for i in lab_data.instances}
    for path in compressed.made.values():
        expected[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    assert set(find_all_instances(send_dcmqrscp)) == set(expected)
    stored = dcmqrscp_files(send_dcmqrscp)
    assert set(stored) == set(expected)
    for uid, source in expected.items():
        kept = pydicom.dcmread(stored[uid])
        source_ds = pydicom.dcmread(source)
        assert not kept.file_meta.TransferSyntaxUID.is_compressed, source
        if source_ds.file_meta.TransferSyntaxUID.is_compressed:
            assert same_pixels(kept, source), source
            assert _headers(kept) == _headers(source_ds), source
        else:
            assert dataset_bytes(stored[uid]) == dataset_bytes(source), source  # sent as stored


@pytest.mark.interop  # starts its own dcmqrscp
def test_implicit_vr_only_dcmqrscp_gets_re_encoded_files(lab_data: Catalog):
    files = [lab_data.uncompressed_instances()[0], lab_data.rle_instances()[0]]
    with DcmqrscpPeer(aet="IMPLICIT", extra_args=["+xi"]) as peer:
        summary = asyncio.run(StoreService(profile_for(peer), parallel=1).store([i.path for i in files]))
        assert summary.complete, summary.problems
        assert all(r.converted and r.transfer_syntax == ImplicitVRLittleEndian for r in summary.results)
        stored = dcmqrscp_files(peer)
        for instance in files:
            kept = pydicom.dcmread(stored[instance.sop_instance_uid])
            assert kept.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
            assert same_pixels(kept, instance.path)
            assert _headers(kept) == _headers(pydicom.dcmread(instance.path))


def test_when_nothing_fits_the_file_is_reported_not_dropped(compressed, lab_data: Catalog):
    plain = lab_data.instances_with_modality("MR")[0]
    rle = next(i for i in lab_data.rle_instances() if i.modality == "MR")
    rle_cr = next(i for i in lab_data.rle_instances() if i.modality == "CR")
    j2k = compressed.made["jpeg2000"]  # an MR image
    with RecordingSCP(transfer_syntaxes=[JPEG2000Lossless]) as scp:
        summary = asyncio.run(StoreService(profile_for(scp)).store([plain.path, rle.path, j2k, rle_cr.path]))
        by_path = {r.path: r for r in summary.results}
        assert len(summary.results) == 4
        # no J2K context was proposed for CR (nothing to send in it): every CR context was refused
        cr = by_path[rle_cr.path]
        assert cr.outcome is StoreOutcome.FAILED
        assert cr.reason == ("the PACS accepts Computed Radiography Image Storage objects in none of the transfer "
                             "syntaxes this file can be sent in (Explicit VR Little Endian, "
                             "Implicit VR Little Endian, RLE Lossless)"), cr.reason
        assert by_path[j2k].outcome is StoreOutcome.SUCCESS and not by_path[j2k].converted
        for path, syntax in ((plain.path, "Explicit VR Little Endian"), (rle.path, "RLE Lossless")):
            result = by_path[path]
            assert result.outcome is StoreOutcome.FAILED, result
            assert "JPEG 2000" in result.reason and syntax in result.reason, result.reason
        assert [s.transfer_syntax for s in scp.stored] == [JPEG2000Lossless]


def test_classes_the_peer_does_not_support_fail_by_name(lab_data: Catalog):
    ct = lab_data.instances_with_modality("CT")[:2]
    mr = lab_data.instances_with_modality("MR")[:2]
    with RecordingSCP(sop_classes=[CT_IMAGE_STORAGE]) as scp:
        storage = StoreService(profile_for(scp))
        mixed = asyncio.run(storage.store([i.path for i in ct + mr]))
        only_mr = asyncio.run(storage.store([i.path for i in mr]))  # no context at all: association refused
    assert [r.outcome for r in mixed.results].count(StoreOutcome.SUCCESS) == 2
    for summary in (mixed, only_mr):
        failed = summary.failed
        assert {r.sop_class_uid for r in failed} == {MR_IMAGE_STORAGE} and len(failed) == 2
        assert all("does not accept MR Image Storage" in r.reason for r in failed), failed
    assert {s.sop_instance_uid for s in scp.stored} == {i.sop_instance_uid for i in ct}
