"""Our own client against our own SCP: C-GET and C-MOVE of the lab's studies into a second archive
(complete, every data set equal to its source), a C-MOVE to an AE we do not know, and a C-GET of a
400-instance study cancelled midway, then resumed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom.uid import RLELossless

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.errors import MoveDestinationUnknown
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.client import profile_for, run
from tests.lab.data import Catalog
from tests.lab.peers import free_port
from tests.retrieve.helpers import assert_same_as_source, make_big_study, whole_files_only

from .conftest import Served, start_server

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


def test_get_every_study(served: Served, lab_data: Catalog, archive: Archive) -> None:
    service = RetrieveService(profile_for(served), archive, listener_host="127.0.0.1")
    for study in lab_data.studies:
        summary = run(service.get_study(study.uid).wait())
        assert summary.complete, (study.accession, summary.reasons)
        assert summary.received == study.instance_count
    assert assert_same_as_source(archive, lab_data.instances) == len(lab_data.instances)
    # our client proposes the compressed syntaxes too: the RLE files come as they are stored
    rle = {i.sop_instance_uid for i in lab_data.instances if i.is_rle}
    assert rle and {r.sop_instance_uid for r in archive.instances() if r.transfer_syntax_uid == RLELossless} == rle


def test_move_to_ourselves_and_to_an_unknown_ae(served: Served, lab_data: Catalog, archive: Archive) -> None:
    port = free_port()
    server = start_server(served.archive, ae_title="PBMOVER", destinations=(("PACSBROWSER", "127.0.0.1", port),))
    try:
        host, bound = server.address
        peer = type("Peer", (), {"host": host, "port": bound, "aet": "PBMOVER"})()
        service = RetrieveService(profile_for(peer, listener_port=port), archive, listener_host="127.0.0.1")
        study = lab_data.studies[0]
        summary = run(service.move_study(study.uid).wait())
        assert summary.complete and summary.received == study.instance_count
        assert_same_as_source(archive, lab_data.instances_of_study(study.uid))
        stranger = RetrieveService(profile_for(peer, calling_ae="NOBODYKNOWS", listener_port=port), archive,
                                   listener_host="127.0.0.1")
        with pytest.raises(MoveDestinationUnknown):
            run(stranger.move_study(study.uid, resume=False).wait())
    finally:
        server.shutdown()


def test_cancel_a_get_midway_then_resume(workdir: Path, archive: Archive) -> None:
    big = make_big_study(workdir / "big", 400)
    source = Archive(workdir / "source", durable=False)
    try:
        for path in big.paths():
            source.import_file(path)
        server = start_server(source, ae_title="PBBIG")
        try:
            host, port = server.address
            peer = type("Peer", (), {"host": host, "port": port, "aet": "PBBIG"})()
            service = RetrieveService(profile_for(peer), archive, listener_host="127.0.0.1", cancel_timeout=3.0)
            job = service.get_study(big.study_uid)

            async def cancel_after(count: int) -> float | None:
                cancelled_at = None
                async for progress in job:
                    if cancelled_at is None and progress.received >= count:
                        cancelled_at = time.monotonic()
                        job.cancel()
                return cancelled_at

            cancelled_at = run(cancel_after(40))
            first = run(job.wait())
            assert cancelled_at is not None, "the retrieve ended before it could be cancelled"
            assert first.cancelled and not first.complete
            assert 40 <= first.received < 400, first.received
            kept = {row.sop_instance_uid for row in archive.instances(study_uid=big.study_uid)}
            assert len(kept) == first.received
            whole_files_only(archive)
            second = run(service.get_study(big.study_uid).wait(), timeout=120)
            assert second.complete, second.reasons
            assert second.already_present == len(kept) and second.received == 400 - len(kept)
            assert_same_as_source(archive, big.instances)
        finally:
            server.shutdown()
    finally:
        source.close()




def test_cancel_a_find_midway(workdir: Path) -> None:
    """5,000 studies in the index: a C-FIND cancelled after 50 answers stops with 0xFE00, far short."""
    from benchmarks.archive_query import fill_index
    from tests.query.conftest import service_for

    root = workdir / "many"
    fill_index(root, studies=5000, series=1, instances=1)
    with Archive(root, durable=False) as many:
        server = start_server(many, ae_title="PBMANY")
        try:
            host, port = server.address
            peer = type("Peer", (), {"host": host, "port": port, "aet": "PBMANY"})()

            async def read():
                found = service_for(peer).find_studies()
                got = []
                async for study in found:
                    got.append(study)
                    if len(got) == 50:
                        found.cancel()
                return got, found.outcome

            got, outcome = run(read())
        finally:
            server.shutdown()
    assert outcome.cancelled and outcome.status == 0xFE00
    assert 50 <= len(got) < 5000
