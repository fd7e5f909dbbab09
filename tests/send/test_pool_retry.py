"""The connection pool and retries: sends spread over N associations, each used by one task at a
time and reused across files; more than 128 presentation contexts spread over associations; a
broken association re-sends only what the PACS had not confirmed; a peer that keeps aborting
ends in per-file failures, not a hang; a connection refused is an error; cancel is prompt."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from pynetdicom import StoragePresentationContexts, build_context
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from pacsbrowser.core.errors import ConnectionFailed
from pacsbrowser.core.pool import ConnectionPool
from pacsbrowser.core.store import StoreService
from tests.lab.data import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, Catalog, lab_uid

from .helpers import RecordingSCP, profile_for, store_cli


def test_parallel_sends_use_n_associations_each_reused(lab_data: Catalog):
    with RecordingSCP() as scp:
        pool = ConnectionPool(profile_for(scp), max_connections=4)

        async def send():
            async with pool:
                return await StoreService(pool.profile, pool=pool).store(lab_data.root)

        summary = asyncio.run(send())
        assert summary.complete and len(summary.stored) == len(lab_data.instances)
        assert scp.associations == 4 and pool.opened == 4 and pool.peak == 4
        per_association = Counter(s.association for s in scp.stored)
        assert len(per_association) == 4 and all(n > 1 for n in per_association.values()), per_association
        assert sorted(Counter(s.sop_instance_uid for s in scp.stored).values()) == [1] * len(lab_data.instances)


def test_pool_gives_an_association_to_one_task_at_a_time_and_reuses_it():
    ct, mr = [build_context(CT_IMAGE_STORAGE)], [build_context(MR_IMAGE_STORAGE)]
    with RecordingSCP() as scp:
        pool = ConnectionPool(profile_for(scp), max_connections=2)
        users: Counter = Counter()
        most = 0

        async def use(contexts):
            nonlocal most
            async with pool.connection(contexts) as client:
                users[id(client)] += 1
                most = max(most, users[id(client)], pool.open_connections)
                await asyncio.sleep(0.01)  # holding it while other tasks queue for one
                users[id(client)] -= 1
                return id(client)

        async def scenario():
            async with pool:
                ids = await asyncio.gather(*(use(ct) for _ in range(10)))
                assert len(set(ids)) == 2 and pool.opened == 2  # 10 tasks, 2 associations, reused
                await use(mr)  # another kind of association: an idle one makes room for it
                assert pool.opened == 3 and pool.open_connections == 2

        asyncio.run(scenario())
        assert most <= 2  # never more than one task on an association, nor more than 2 open
    assert scp.associations == 3


def _tiny_image(sop_class: str, number: int, syntax: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = lab_uid("many-classes", sop_class, syntax)
    ds.PatientID, ds.PatientName = "MANY", "MANY^CLASSES"
    ds.StudyInstanceUID = lab_uid("many-classes-study")
    ds.SeriesInstanceUID = lab_uid("many-classes-series", number)
    ds.Modality = "OT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_pixel_data(np.full((8, 8), number % 256, dtype=np.uint8), "MONOCHROME2", 8, generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def test_more_than_128_contexts_are_spread_over_associations(workdir):
    # 50 classes pynetdicom's own Storage SCP serves (it aborts on retired ones such as Stored Print)
    classes = [cx.abstract_syntax for cx in StoragePresentationContexts
               if uid_to_service_class(cx.abstract_syntax) is StorageServiceClass][:50]
    assert len(classes) == 50
    paths = []
    for number, sop_class in enumerate(classes):  # 50 classes x 3 contexts (explicit, implicit, deflated)
        for syntax in (ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
            path = workdir / f"{number:02d}-{syntax}.dcm"
            _tiny_image(sop_class, number, syntax).save_as(path, enforce_file_format=True)
            paths.append(path)
    with RecordingSCP() as scp:
        summary = asyncio.run(StoreService(profile_for(scp), parallel=2).store(workdir))
        assert summary.complete, summary.problems
        assert len(summary.stored) == 100
        assert max(scp.requested_contexts) <= 128 and sum(scp.requested_contexts) >= 150, scp.requested_contexts
        assert scp.associations >= 2
        deflated = [s for s in scp.stored if s.transfer_syntax == DeflatedExplicitVRLittleEndian]
        assert len(deflated) == 50  # sent as stored, deflated
        assert all(int(s.dataset.pixel_array[0, 0]) == classes.index(s.dataset.SOPClassUID) for s in deflated)


def test_a_broken_association_re_sends_only_what_was_not_confirmed(lab_data: Catalog):
    files = [i.path for i in lab_data.instances[:30]]
    with RecordingSCP(abort_at={10}) as scp:  # aborts instead of answering store request 10
        summary = asyncio.run(StoreService(profile_for(scp, retries=2), parallel=1).store(files))
        assert summary.complete, summary.problems
        assert summary.associations == 2 and scp.aborted == 1
        assert sorted(Counter(s.sop_instance_uid for s in scp.stored).values()) == [1] * 30  # once each
        attempts = {r.path: r.attempts for r in summary.results}
        assert attempts[files[9]] == 2  # the unconfirmed one, sent again
        assert all(n == 1 for path, n in attempts.items() if path != files[9])
        assert scp.requests == 31


def test_a_peer_that_keeps_aborting_gives_per_file_failures(fault_scp, lab_data: Catalog):
    scp = fault_scp("abort_after_n", abort_after=5)  # every store after the 5th is aborted
    files = [i.path for i in lab_data.instances[:12]]
    started = time.monotonic()
    summary = asyncio.run(StoreService(profile_for(scp, retries=1), parallel=1).store(files))
    elapsed = time.monotonic() - started
    print(f"\n12 files to a peer that keeps aborting: {elapsed * 1000:.0f} ms")
    assert elapsed < 20  # no waiting for timeouts
    assert len(summary.stored) == 5 and len(summary.failed) == 7 and not summary.complete
    assert summary.error is not None and "closed the association" in str(summary.error)
    reasons = Counter(r.reason.split(":")[0] for r in summary.failed)
    assert set(reasons) <= {"not confirmed by the PACS", "not sent"}, reasons

    # the command line, on a peer that aborts every store by now: nothing stored, a network exit status
    scp.aet = scp.ae_title
    result = store_cli(scp, *files[:3], extra=["--retries", "1"])
    assert result.returncode == 8, (result.stdout, result.stderr)  # EXIT_ABORTED
    assert result.stdout.startswith("Stored 0 of 3 files"), result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: The PACS closed the association"), lines
    assert all(line.startswith("failed ") for line in lines[:-1]) and len(lines) == 4, lines


def test_connection_refused_raises_and_nothing_is_left_open(unused_port, lab_data: Catalog):
    class Nowhere:
        host, port, aet = "127.0.0.1", unused_port, "NOBODY"

    reports = []
    with pytest.raises(ConnectionFailed, match="connection refused"):
        asyncio.run(StoreService(profile_for(Nowhere), parallel=3).store(lab_data.paths()[:5],
                                                                              on_progress=reports.append))
    final = reports[-1]  # the window still gets every file's result before the error
    assert final.finished and final.failed == 5 and final.stored == 0
    assert all(r.reason.startswith("not sent: Cannot connect") for report in reports for r in report.results)


def test_cancel_stops_at_once_and_aborts(lab_data: Catalog):
    with RecordingSCP(delay=5.0) as scp:  # a PACS that takes 5 s to answer each file
        async def scenario():
            task = asyncio.create_task(StoreService(profile_for(scp, timeout=30), parallel=2).store(lab_data.root))
            deadline = time.monotonic() + 5
            while scp.requests < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert scp.requests == 2
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - started

        elapsed = asyncio.run(scenario())
        print(f"\ncancel -> the send ended in {elapsed * 1000:.0f} ms")
        assert elapsed < 2.5  # before the PACS's 5 s answer
    # the no_leftovers fixture checks that the worker threads ended (they would wait 30 s otherwise)


def test_a_pacs_allowing_fewer_associations_than_asked_still_gets_everything(lab_data: Catalog):
    with RecordingSCP(max_associations=2, delay=0.005) as scp:  # rejects the 3rd and 4th (transient)
        summary = asyncio.run(StoreService(profile_for(scp, retries=1), parallel=4).store(lab_data.root))
        assert summary.complete, summary.problems
        assert len(summary.stored) == len(lab_data.instances)
        assert summary.error is None
        assert sorted(Counter(s.sop_instance_uid for s in scp.stored).values()) == [1] * len(lab_data.instances)
