"""C-GET and C-MOVE of the lab's studies from real peers (Orthanc, DCMTK's dcmqrscp) into the archive:
instance counts equal the generated data, every data set equal to its source, and a second retrieve
of a complete study transfers nothing."""

from __future__ import annotations

import asyncio

import pytest
from pydicom.uid import RLELossless

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.errors import MoveDestinationUnknown
from pacsbrowser.core.records import QueryLevel, Received, RetrieveMethod, RetrievePhase
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.server import ArchiveServer
from tests.lab.client import profile_for, run
from tests.lab.data import Catalog
from tests.lab.peers import free_port

from .helpers import GeneratedStudy, assert_same_as_source, whole_files_only

pytestmark = pytest.mark.timeout(120)


def _service(peer, archive: Archive, **changes) -> RetrieveService:
    return RetrieveService(profile_for(peer, **changes), archive, listener_host="127.0.0.1", cancel_timeout=3.0)


async def _get_all(service: RetrieveService, catalog: Catalog) -> list:
    out = []
    for study in catalog.studies:
        job = service.get_study(study.uid)
        seen = [progress async for progress in job]
        summary = await job
        assert seen and seen[-1].phase is RetrievePhase.DONE
        assert seen[-1].received == summary.received
        out.append(summary)
    return out


@pytest.mark.parametrize("which", ["orthanc", "rle_dcmqrscp"])
def test_get_every_study(request, which: str, lab_data: Catalog, archive: Archive):
    """Every study by C-GET: complete, equal to its source; RLE files from dcmqrscp too (it sends on the
    first accepted context of a class, so they come on a second association with RLE first)."""
    peer = request.getfixturevalue(which)
    service = _service(peer, archive)
    summaries = run(_get_all(service, lab_data), timeout=90)
    for study, summary in zip(lab_data.studies, summaries):
        assert summary.complete, (study.accession, summary.reasons)
        assert summary.expected == study.instance_count
        assert summary.received == study.instance_count, (study.accession, summary)
        assert summary.already_present == 0 and summary.failed == 0 and not summary.missing
        assert summary.method is RetrieveMethod.GET and summary.level is QueryLevel.STUDY
        assert summary.bytes_received > 0 and summary.planned
        in_archive = {row.sop_instance_uid for row in archive.instances(study_uid=study.uid)}
        assert in_archive == {i.sop_instance_uid for i in lab_data.instances_of_study(study.uid)}
    assert archive.counts()["instances"] == len(lab_data.instances) == 66
    assert assert_same_as_source(archive, lab_data.instances) == 66
    rle_kept = [row for row in archive.instances() if row.transfer_syntax_uid == RLELossless]
    assert len(rle_kept) == len(lab_data.rle_instances()) == 14  # stored as the PACS holds them
    if which == "rle_dcmqrscp":
        with_rle = {i.study_uid for i in lab_data.rle_instances()}
        for study, summary in zip(lab_data.studies, summaries):
            if study.uid in with_rle:
                assert any("RLE Lossless first" in note for note in summary.notes), summary.notes
    whole_files_only(archive)

    # A second retrieve of complete studies asks the PACS for nothing.
    again = run(_get_all(service, lab_data), timeout=60)
    for study, summary in zip(lab_data.studies, again):
        assert summary.received == 0 and summary.requests == 0, summary
        assert summary.already_present == study.instance_count and summary.complete
    assert archive.counts()["instances"] == 66


def test_get_from_dcmqrscp_that_cannot_send_rle(dcmqrscp, lab_data: Catalog, archive: Archive):
    """The lab's stock dcmqrscp accepts no RLE context and cannot decompress: the uncompressed files
    come, the RLE ones are reported by UID, in words."""
    study = lab_data.study_by_accession("ACC2024003")  # 8 RLE + 4 uncompressed CT
    summary = run(_service(dcmqrscp, archive).get_study(study.uid).wait())
    rle = {i.sop_instance_uid for i in lab_data.instances_of_study(study.uid) if i.is_rle}
    assert summary.received == 4 and summary.failed == 8
    assert set(summary.missing) == rle and set(summary.failed_uids) == rle
    assert not summary.complete and not summary.cancelled
    assert any("8 failed sub-operations" in r for r in summary.reasons), summary.reasons
    assert "still missing" in summary.summary
    assert_same_as_source(archive, [i for i in lab_data.instances_of_study(study.uid) if not i.is_rle])


def test_series_and_instance_then_study_fetches_only_the_rest(orthanc, lab_data: Catalog, archive: Archive):
    """Resume: a series, then one instance of another series, then the study: each step brings only
    what the archive lacks (series-level and image-level sub-retrieves)."""
    study = lab_data.study_by_accession("ACC2021009")  # 2 MR series of 6
    first, second = lab_data.series_of(study.uid)
    one = lab_data.instances_of_series(second.uid)[2]
    service = _service(orthanc, archive)

    async def scenario():
        a = await service.get_series(study.uid, first.uid)
        b = await service.get_instance(study.uid, second.uid, one.sop_instance_uid)
        c = await service.get_study(study.uid)
        d = await service.get_instance(study.uid, second.uid, one.sop_instance_uid)
        return a, b, c, d

    a, b, c, d = run(scenario())
    assert (a.level, a.received, a.expected) == (QueryLevel.SERIES, 6, 6)
    assert (b.level, b.received, b.expected) == (QueryLevel.INSTANCE, 1, 1)
    assert (c.received, c.already_present, c.expected, c.requests) == (5, 7, 12, 1) and c.complete
    assert (d.received, d.requests, d.already_present) == (0, 0, 1)
    assert_same_as_source(archive, lab_data.instances_of_study(study.uid))


def test_many_sop_classes_need_several_associations(big_orthanc, many_class_study: GeneratedStudy,
                                                    archive: Archive):
    """12 image classes x 13 contexts do not fit 128: two C-GET associations, each asking for the
    instances of its own classes; all 24 arrive."""
    summary = run(_service(big_orthanc, archive).get_study(many_class_study.study_uid).wait())
    assert summary.complete, summary.reasons
    # the study-level query (its classes need two associations, so the instances must be listed), the
    # listing, two C-GET
    assert summary.received == 24 and summary.associations == 4
    assert summary.requests >= 2
    assert_same_as_source(archive, many_class_study.instances)


@pytest.mark.parametrize("which", ["orthanc", "dcmqrscp"])
def test_move_every_study(request, which: str, lab_data: Catalog, archive: Archive, move_port: int):
    """Every study by C-MOVE to our own AE (PACSBROWSER at 127.0.0.1:move_port, which the peers know):
    the listener starts for the job; the call returns when the files have landed. dcmqrscp cannot
    send RLE to a listener that prefers uncompressed syntaxes: those are reported, by UID."""
    peer = request.getfixturevalue(which)
    service = _service(peer, archive, listener_port=move_port)

    async def all_studies():
        out = []
        for study in lab_data.studies:
            job = service.move_study(study.uid)
            last = None
            async for progress in job:
                last = progress
            summary = await job
            assert last is not None and last.received == summary.received
            # landed: indexed by the time the call returns
            held = len(archive.instances(study_uid=study.uid))
            assert held == summary.received + summary.already_present, (study.accession, held, summary)
            out.append(summary)
        return out

    summaries = run(all_studies(), timeout=90)
    for study, summary in zip(lab_data.studies, summaries):
        rle = [i for i in lab_data.instances_of_study(study.uid) if i.is_rle]
        assert summary.method is RetrieveMethod.MOVE and summary.destination_ae == "PACSBROWSER"
        if which == "orthanc" or not rle:
            assert summary.complete, (study.accession, summary.reasons)
            assert summary.received == study.instance_count
        else:
            assert summary.received == study.instance_count - len(rle)
            assert set(summary.missing) == {i.sop_instance_uid for i in rle}
            assert summary.failed == len(rle) and "listener" in " ".join(summary.reasons)
    expected = [i for i in lab_data.instances if which == "orthanc" or not i.is_rle]
    assert archive.counts()["instances"] == len(expected)
    assert assert_same_as_source(archive, expected) == len(expected)
    whole_files_only(archive)
    again = run(service.move_study(lab_data.studies[0].uid).wait())
    assert again.received == 0 and again.requests == 0 and again.complete


def test_move_series_and_instance(orthanc, lab_data: Catalog, archive: Archive, move_port: int):
    study = lab_data.study_by_accession("ACC2016004")
    first, second = lab_data.series_of(study.uid)
    one = lab_data.instances_of_series(second.uid)[0]
    service = _service(orthanc, archive, listener_port=move_port)

    async def scenario():
        return (await service.move_series(study.uid, first.uid),
                await service.move_instance(study.uid, second.uid, one.sop_instance_uid),
                await service.move_study(study.uid))

    a, b, c = run(scenario())
    assert (a.received, b.received, c.received, c.already_present) == (5, 1, 4, 6)
    assert a.complete and b.complete and c.complete
    assert_same_as_source(archive, lab_data.instances_of_study(study.uid))


def test_two_moves_at_once_share_a_given_listener_with_another_subscriber(orthanc, lab_data: Catalog,
                                                                         archive: Archive, move_port: int):
    """Two C-MOVE jobs at once through the service's own ArchiveServer, which a window also
    subscribes to: each job counts only its study, the window sees every instance, and the server
    (started by the service for the jobs) is stopped after the last one, the window still subscribed."""
    one, two = lab_data.studies[0], lab_data.studies[1]
    scp = ArchiveServer(move_port, "PACSBROWSER", archive, host="127.0.0.1")
    window: list[Received] = []
    subscription = scp.subscribe(window.append)
    service = RetrieveService(profile_for(orthanc, listener_port=move_port), archive, scp=scp, cancel_timeout=3.0)

    async def both():
        return await asyncio.gather(service.move_study(one.uid).wait(), service.move_study(two.uid).wait())

    first, second = run(both(), timeout=90)
    assert first.complete and second.complete, (first.reasons, second.reasons)
    assert (first.received, second.received) == (one.instance_count, two.instance_count)
    assert sorted(r.sop_instance_uid for r in window) == sorted(
        i.sop_instance_uid for study in (one, two) for i in lab_data.instances_of_study(study.uid))
    assert not scp.is_running and subscription.active and scp.subscribers == 1


@pytest.mark.parametrize("which", ["orthanc", "dcmqrscp"])
def test_move_to_a_destination_the_pacs_does_not_know(request, which: str, lab_data: Catalog, archive: Archive):
    """Our AE title is not registered at the PACS: the error names the AE title, host and port to
    register and suggests C-GET (dcmqrscp answers 0xA801; Orthanc a general 0xC000)."""
    peer = request.getfixturevalue(which)
    port = free_port()
    service = _service(peer, archive, calling_ae="NOTREGISTERED", listener_port=port)
    with pytest.raises(MoveDestinationUnknown) as caught:
        run(service.move_study(lab_data.studies[0].uid).wait())
    error = caught.value
    text = str(error)
    assert "NOTREGISTERED" in text and "127.0.0.1" in text and f"port {port}" in text and "C-GET" in text
    assert (error.destination_ae, error.host, error.port) == ("NOTREGISTERED", "127.0.0.1", port)
    if which == "dcmqrscp":
        assert error.status == 0xA801 and error.certain and text.startswith("The PACS does not know")
    else:
        assert error.status == 0xC000 and not error.certain and "most likely" in text
    assert archive.counts()["instances"] == 0


def test_compressed_files_come_as_stored(big_orthanc, compressed_study: GeneratedStudy, archive: Archive):
    """Each compressed syntax is proposed in a context of its own, so Orthanc sends every file as it
    holds it (it could not convert JPEG 2000 to anything else)."""
    summary = run(_service(big_orthanc, archive).get_study(compressed_study.study_uid).wait())
    assert summary.complete and summary.received == 5, summary.reasons
    for source in compressed_study.instances:
        row = archive.instance(source.sop_instance_uid)
        assert row is not None and row.transfer_syntax_uid == source.transfer_syntax_uid
    assert len({i.transfer_syntax_uid for i in compressed_study.instances}) == 5
    assert_same_as_source(archive, compressed_study.instances)
