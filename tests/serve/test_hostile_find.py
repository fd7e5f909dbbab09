"""A C-FIND requester that stops reading while our SCP still has answers queued: the server gives
up within its timeouts instead of waiting forever for a send queue no one will drain.

Apart from tests/serve/test_hostile_peers.py because it is slow by nature: the socket buffers take
about 2 MB of answers before the send stalls, and our SCP encodes them in Python first (~20 s on a
loaded machine).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.lab import rawpdu
from tests.lab.data import Catalog

from .hostile import CT, FIND, SERVER_AE, SYNTAXES, TIMEOUTS, HostileLab, identifier, start_lab, stop_lab

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120),
              pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")]


@pytest.fixture
def lab(lab_data: Catalog) -> Iterator[HostileLab]:
    made = start_lab(lab_data, [])
    try:
        yield made
    finally:
        stop_lab(made)


def _many_instances(archive, count: int) -> None:
    """`count` small instances (no pixel data) in one series of a new study."""
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    study, series = generate_uid(), generate_uid()
    for number in range(1, count + 1):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CT, f"2.25.{int(series.split('.')[-1]) % 10**20}{number:05d}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID, ds.Modality, ds.InstanceNumber = "MANY^ANSWERS", "MANY1", "CT", number
        archive.store(rawpdu.encode_dataset(ds), ExplicitVRLittleEndian, sop_class_uid=CT,
                      sop_instance_uid=ds.SOPInstanceUID)
    archive.flush()


def test_a_find_requester_that_stops_reading_frees_its_slot(lab: HostileLab, workdir):
    """A C-FIND requester that stops reading while answers are queued (500 answers of ~10 KB: the
    return keys ask for thousands of attributes, more than the socket buffers hold): the server
    gives up within its timeouts instead of waiting forever for its send queue to drain."""
    from pydicom.datadict import DicomDictionary

    from pacsbrowser.core.archive import Archive
    from pacsbrowser.core.dicom.server import DicomServer, ServerSettings

    archive = Archive(workdir / "archive", durable=False)
    server = DicomServer(ServerSettings(host="127.0.0.1", port=0, ae_title=SERVER_AE, query_retrieve=True,
                                        timeouts=TIMEOUTS), archive)
    try:
        _many_instances(archive, 500)
        server.start()
        query = identifier("IMAGE", StudyInstanceUID="", SeriesInstanceUID="", SOPInstanceUID="")
        for tag, (vr, _, _, retired, keyword) in DicomDictionary.items():
            if vr in ("LO", "SH", "CS", "LT", "ST", "DA", "TM", "PN") and keyword and not retired \
                    and tag >> 16 not in (0x0000, 0x0002) and keyword not in query:
                setattr(query, keyword, "")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(server.address)
        with rawpdu.RawPeer(sock) as peer:
            peer.associate(SERVER_AE, [(3, FIND, SYNTAXES)], max_pdu=16384)
            peer.send_message(rawpdu.c_find(FIND, query), 3)
            first = peer.read_message()
            assert first is not None and first.status == 0xFF00
            print(f"\n{len(query)} keys asked, {len(first.data)} bytes an answer; then nothing read", end="")
            lab.server, real = server, lab.server  # wait_freed looks at this server
            try:
                freed = lab.wait_freed(45)
            finally:
                lab.server = real
            # the bound: the answers the socket buffers take (~2 MB, encoded in Python), then the timeouts
            print(f"; freed after {freed:.2f} s", end="")
    finally:
        server.shutdown()
        archive.close()
