"""A slow link: one big object through the test relay throttled to 2 MB/s arrives by C-GET with a
DIMSE timeout of 10 s. By default the object is 30 MB (about 15 s through the relay, half as long
again as the timeout: the same proof); PACSBROWSER_TEST_SOAK=1 makes it the 150 MB of issue 15
(about 75 s, measured 76-77 s), which would be a tenth of the whole suite's time.

Before the fix the C-GET was judged by DIMSE messages: the C-STORE sub-operation carrying the
object is one message, and pynetdicom's 10 s wait for it aborted the retrieve (and every retry).
Now idle means no byte for the DIMSE timeout (core.dicom.activity, core.retrieve.running).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.dicom.server import DicomServer, ServerSettings
from pacsbrowser.core.records import RetrieveMethod, RetryPolicy, ServerProfile, StoreOutcome, Timeouts
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.store import StoreService
from tests.lab.client import run
from tests.lab.peers import free_port
from tests.lab.relay import Relay

from .conftest import LISTENER_AE, PACS_AE, Pacs, profile_via, start_pacs
from .links import big_file

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

SOAK = os.environ.get("PACSBROWSER_TEST_SOAK", "") not in ("", "0")
SIZE = 150_000_000 if SOAK else 30_000_000  # bytes of pixel data
RATE = 2_000_000  # bytes per second through the relay
STUDY, SERIES, INSTANCE = "2.25.1502001", "2.25.1502002", "2.25.1502003"


@pytest.fixture(scope="module")
def big_pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("slow-links")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = INSTANCE
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, SERIES
    ds.PatientID, ds.PatientName, ds.Modality, ds.StudyDate = "SLOW", "SLOW^LINK", "OT", "20240101"
    ds.set_pixel_data(np.zeros((SIZE // 10_000, 5_000), dtype=np.uint16), "MONOCHROME2", 16,
                      generate_instance_uid=False)
    source = root / "big.dcm"
    ds.save_as(source, enforce_file_format=True)
    del ds
    archive = Archive(root / "archive", durable=False)
    archive.import_file(source)
    source.unlink()  # disk: the archive's copy only
    server = start_pacs(archive, listener_port=free_port(),
                        timeouts=Timeouts(connect=5, acse=10, dimse=10, network=60))
    try:
        yield server.address
    finally:
        server.shutdown()
        archive.close()
        shutil.rmtree(root, ignore_errors=True)


def test_a_big_object_arrives_through_2_mb_per_s_with_a_10_s_dimse_timeout(big_pacs: tuple[str, int],
                                                                              tmp_path: Path) -> None:
    with Relay(*big_pacs) as relay, Archive(tmp_path / "archive", durable=False) as archive:
        relay.throttle(down=RATE)
        profile = ServerProfile(name="slow", host=relay.host, port=relay.port, called_ae=PACS_AE,
                                retry=RetryPolicy(max_retries=0),
                                timeouts=Timeouts(connect=5, acse=10, dimse=10, network=60))
        service = RetrieveService(profile, archive, listener_host="127.0.0.1")
        started = time.monotonic()
        summary = run(service.get_study(STUDY).wait(), timeout=250)
        elapsed = time.monotonic() - started
        rows = archive.instances(study_uid=STUDY)
        through = relay.down.passed
    print(f"\n[links] {SIZE // 1_000_000} MB by C-GET through a 2 MB/s relay, DIMSE timeout 10 s: {elapsed:.1f} s "
          f"({through / elapsed / 1e6:.2f} MB/s through the relay)")
    assert summary.complete, summary.reasons
    assert summary.received == 1 and len(rows) == 1
    assert through > SIZE
    assert elapsed > SIZE / RATE * 0.9  # it really went through the throttle
    assert elapsed > 10  # longer than the DIMSE timeout: one message the old watchdog would have aborted


def test_a_big_send_on_a_slow_link_waits_for_the_answer_once_it_is_out(pacs: Pacs, tmp_path: Path) -> None:
    """20 MB through 2 MB/s take about 10 s, with a DIMSE timeout of 3 s: the wait for the PACS's
    answer starts when the last PDU has been written, not when the message was queued."""
    big = big_file(tmp_path / "slow.dcm", 20, uid_tag=2020)
    with Relay(*pacs.address) as relay:
        relay.throttle(up=RATE)
        service = StoreService(profile_via(relay), parallel=1)  # DIMSE timeout 3 s
        started = time.monotonic()
        summary = run(service.store(big), timeout=120)
        elapsed = time.monotonic() - started
    print(f"\n[links] 20 MB sent through a 2 MB/s relay with a DIMSE timeout of 3 s: {elapsed:.1f} s, "
          f"{summary.results[0].outcome.value}")
    assert summary.error is None, summary.error
    assert summary.results[0].outcome is StoreOutcome.SUCCESS, summary.results[0]
    assert elapsed > 20e6 / RATE * 0.8


def test_a_slow_object_at_our_listener_keeps_a_move_alive(tmp_path: Path) -> None:
    """C-MOVE to us: the PACS's C-STORE of 20 MB reaches our listener through a 2 MB/s relay (about
    10 s) while the C-MOVE association stays quiet; DIMSE timeout 3 s. The bytes arriving at the
    listener are activity: the move completes (before the fix it was aborted after 3 s)."""
    big = big_file(tmp_path / "moved.dcm", 20, uid_tag=2121)
    listener_port = free_port()
    timeouts = Timeouts(connect=5, acse=5, dimse=3, network=30)
    with Relay("127.0.0.1", listener_port) as to_us, Archive(tmp_path / "pacs", durable=False) as source, \
            Archive(tmp_path / "ours", durable=False) as archive:
        source.import_file(big)
        to_us.throttle(down=None, up=RATE)  # the PACS's C-STORE towards our listener
        settings = ServerSettings(host="127.0.0.1", port=0, ae_title=PACS_AE, query_retrieve=True,
                                  timeouts=Timeouts(connect=5, acse=10, dimse=30, network=60),
                                  destinations=((LISTENER_AE, to_us.host, to_us.port),))
        server = DicomServer(settings, source)
        host, port = server.start()
        try:
            profile = ServerProfile(name="slow move", host=host, port=port, called_ae=PACS_AE,
                                    calling_ae=LISTENER_AE, listener_port=listener_port,
                                    retrieve_method=RetrieveMethod.MOVE, retry=RetryPolicy(max_retries=0),
                                    timeouts=timeouts)
            service = RetrieveService(profile, archive, listener_host="127.0.0.1")
            started = time.monotonic()
            summary = run(service.move_study("2.25.2121902").wait(), timeout=120)
            elapsed = time.monotonic() - started
        finally:
            server.shutdown()
    print(f"\n[links] C-MOVE of 20 MB to our listener through a 2 MB/s relay, DIMSE timeout 3 s: {elapsed:.1f} s")
    assert summary.complete, summary.reasons
    assert summary.received == 1
    assert elapsed > 20e6 / RATE * 0.8
