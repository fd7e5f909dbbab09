"""One C-STORE receiver, two ways in: what our Storage SCP answers a sender and what a C-GET answers
the PACS are the same statuses from the same handler; a full disk says so in both."""

from __future__ import annotations

import asyncio
import errno

import pytest
from pynetdicom import AE

import pacsbrowser.core.archive.writer as archive_writer
from pacsbrowser.core.errors import DIMSEError
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.server import ArchiveServer
from tests.lab.client import profile_for

from .helpers import CT_IMAGE_STORAGE, LOOPBACK, make_dataset, our_files, temp_files

DISK_FULL = "Out of resources: the archive disk is full"


@pytest.fixture
def full_disk(monkeypatch):
    """Every archive write fails half way with ENOSPC, as on a full disk."""

    def fill_the_disk(fd, chunks):
        archive_writer.os.write(fd, list(chunks)[0][:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_writer, "_write_chunks", fill_the_disk)


def _send(port: int, count: int) -> list[tuple[int, str]]:
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(CT_IMAGE_STORAGE)
    assoc = ae.associate(LOOPBACK, port, ae_title="PBTEST")
    assert assoc.is_established
    try:
        out = []
        for _ in range(count):
            status = assoc.send_c_store(make_dataset())
            out.append((int(status.Status), str(status.get("ErrorComment", ""))))
        return out
    finally:
        assoc.release()


def test_a_full_disk_answers_a_sender_out_of_resources(archive, full_disk):
    async def main():
        async with ArchiveServer(0, "PBTEST", archive, host=LOOPBACK) as scp:
            statuses = await asyncio.to_thread(_send, scp.address[1], 2)
        return statuses, scp.stats

    statuses, stats = asyncio.run(asyncio.wait_for(main(), 60))
    assert statuses == [(0xA700, DISK_FULL)] * 2
    assert stats.failed == 2 and stats.stored == 0 and stats.last_failure == DISK_FULL
    assert our_files(archive.root) == [] and temp_files(archive.root) == []


@pytest.mark.interop  # Orthanc sends the C-STORE sub-operations of the C-GET
def test_a_full_disk_answers_a_c_get_out_of_resources(orthanc, lab_data, archive, full_disk):
    study = lab_data.studies[0]
    service = RetrieveService(profile_for(orthanc), archive, listener_host=LOOPBACK)
    with pytest.raises(DIMSEError) as info:  # nothing arrived: the PACS's failure status is the error
        asyncio.run(asyncio.wait_for(service.get_study(study.uid).wait(), 60))
    summary = info.value.summary
    assert summary.received == 0 and not summary.complete
    assert any(f"could not be written to the archive: {DISK_FULL}" in reason for reason in summary.reasons), \
        summary.reasons
    assert our_files(archive.root) == [] and temp_files(archive.root) == []
