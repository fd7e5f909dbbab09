"""WADO-RS retrieve of a 100-instance study from Orthanc's DICOMweb plugin into the archive: every
instance arrives, the pixel data equals a C-GET of the same study, a second retrieve transfers
nothing, a cancelled retrieve resumes and completes."""

from __future__ import annotations

import asyncio
import time

import pydicom
import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.errors import ServiceNotSupported
from pacsbrowser.core.records import RetrieveMethod, RetrievePhase
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.web.wado import WebRetrieveService
from tests.lab.client import profile_for, run

from .conftest import web_profile

pytestmark = pytest.mark.timeout(240)


def _uids(archive: Archive, study_uid: str) -> set[str]:
    return {row.sop_instance_uid for row in archive.instances(study_uid=study_uid)}


def test_a_study_arrives_whole_and_equals_a_c_get(web_big_orthanc, web_big_study, archive, workdir):
    service = WebRetrieveService(web_profile(web_big_orthanc), archive)

    async def retrieve():
        job = service.get_study(web_big_study.study_uid)
        seen = [progress async for progress in job]
        return await job, seen

    started = time.perf_counter()
    summary, seen = run(retrieve(), 120)
    seconds = time.perf_counter() - started
    print(f"WADO-RS: {summary.summary} ({seconds:.2f} s)")
    assert summary.method is RetrieveMethod.WADO and summary.complete, summary.reasons
    assert summary.received == summary.expected == 100 and summary.requests == 1
    assert _uids(archive, web_big_study.study_uid) == web_big_study.uids()
    assert seen[-1].phase is RetrievePhase.DONE and seen[-1].received == 100
    assert any(0 < p.bytes_received < seen[-1].bytes_received for p in seen), "progress by bytes as they arrive"
    assert summary.bytes_received > 100 * 256 * 256 * 2 * 0.5

    # the same study by C-GET from the same Orthanc, into another archive: identical pixel data
    with Archive(workdir / "cget") as other:
        cget = run(RetrieveService(profile_for(web_big_orthanc), other).get_study(web_big_study.study_uid).wait(), 120)
        assert cget.complete and cget.received == 100
        for row in archive.instances(study_uid=web_big_study.study_uid):
            ours = pydicom.dcmread(row.path)
            theirs = pydicom.dcmread(other.path_of(row.sop_instance_uid))
            assert ours.file_meta.TransferSyntaxUID == theirs.file_meta.TransferSyntaxUID
            assert ours.PixelData == theirs.PixelData
            assert (ours.pixel_array == theirs.pixel_array).all()

    # a second retrieve transfers nothing
    again = run(service.get_study(web_big_study.study_uid).wait(), 60)
    assert again.received == 0 and again.already_present == 100 and again.requests == 0 and again.complete
    assert again.bytes_received == 0


def test_cancel_midway_then_resume_completes(web_big_orthanc, web_big_study, archive):
    service = WebRetrieveService(web_profile(web_big_orthanc), archive)

    async def cancelled():
        job = service.get_study(web_big_study.study_uid)
        async for progress in job:
            if progress.received >= 10:
                job.cancel()
        return await job

    first = run(cancelled(), 120)
    print(f"cancelled: {first.summary}")
    assert first.cancelled and not first.complete
    have = _uids(archive, web_big_study.study_uid)
    assert 10 <= len(have) < 100 and first.received == len(have)
    assert set(first.missing) == web_big_study.uids() - have

    second = run(service.get_study(web_big_study.study_uid).wait(), 120)
    print(f"resumed: {second.summary}")
    assert second.complete and second.already_present == len(have)
    assert second.received == 100 - len(have)
    assert _uids(archive, web_big_study.study_uid) == web_big_study.uids()


def test_a_series_and_an_instance(web_big_orthanc, web_big_study, archive):
    service = WebRetrieveService(web_profile(web_big_orthanc), archive)
    series = web_big_study.series_uids[0]
    summary = run(service.get_series(web_big_study.study_uid, series).wait(), 60)
    assert summary.complete and summary.received == len(web_big_study.of_series(series))
    instance = web_big_study.of_series(web_big_study.series_uids[1])[0]
    one = run(service.retrieve(web_big_study.study_uid, instance.series_uid, instance.sop_instance_uid).wait(), 60)
    assert one.complete and one.received == 1 and archive.has_instance(instance.sop_instance_uid)


def test_dicomweb_has_no_c_move(web_big_orthanc, archive):
    service = WebRetrieveService(web_profile(web_big_orthanc), archive)
    with pytest.raises(ServiceNotSupported, match="DICOMweb has no C-MOVE"):
        service.move_study("1.2.3")


def test_leaving_early_cancels(web_big_orthanc, web_big_study, archive):
    service = WebRetrieveService(web_profile(web_big_orthanc), archive)

    async def leave():
        async with service.get_study(web_big_study.study_uid) as job:
            async for progress in job:
                if progress.received >= 1:
                    break
        return job

    job = run(leave(), 60)
    assert job.done and job.summary is not None and job.summary.cancelled
    asyncio.run(asyncio.sleep(0))
