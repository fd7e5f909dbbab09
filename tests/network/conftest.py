"""Fixtures of the network-hardening tests: our own SCP (every role) over a small archive, reached
through the test relay (tests/lab/relay.py) that freezes or throttles the link.

    pacs        a running DicomServer (AE PBLINKS, query/retrieve) over an archive holding `study`,
                short timeouts (`SERVER_TIMEOUTS`), its one C-MOVE destination our listener
                (AE PACSBROWSER on `pacs.listener_port`)
    relay       a Relay in front of `pacs` (function scope)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.dicom.server import DicomServer, ServerSettings
from pacsbrowser.core.records import RetryPolicy, ServerProfile, Timeouts
from tests.lab.peers import free_port
from tests.lab.relay import Relay
from tests.retrieve.helpers import GeneratedStudy, make_big_study

PACS_AE = "PBLINKS"
LISTENER_AE = "PACSBROWSER"
# the client's: a stall is judged after DIMSE (3 s); an abort waits at most ACSE (3 s) more
CLIENT_TIMEOUTS = Timeouts(connect=5, acse=3, dimse=3, network=6)
# the PACS's: it gives up an idle association after 6 s, a frozen read or write after 3 s
SERVER_TIMEOUTS = Timeouts(connect=5, acse=3, dimse=3, network=6)


@dataclass
class Pacs:
    server: DicomServer
    archive: Archive
    study: GeneratedStudy
    listener_port: int

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address


def start_pacs(archive: Archive, *, listener_port: int, timeouts: Timeouts = SERVER_TIMEOUTS) -> DicomServer:
    settings = ServerSettings(host="127.0.0.1", port=0, ae_title=PACS_AE, query_retrieve=True, timeouts=timeouts,
                              destinations=((LISTENER_AE, "127.0.0.1", listener_port),))
    server = DicomServer(settings, archive)
    server.start()
    return server


@pytest.fixture(scope="module")
def pacs() -> Iterator[Pacs]:
    workdir = Path(tempfile.mkdtemp(prefix="pacsbrowser-links-"))
    archive = Archive(workdir / "archive", durable=False)
    study = make_big_study(workdir / "study", 24, series=1, size=256, label="links")
    for path in study.paths():
        archive.import_file(path)
    listener_port = free_port()
    server = start_pacs(archive, listener_port=listener_port)
    try:
        yield Pacs(server, archive, study, listener_port)
    finally:
        server.shutdown()
        archive.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def relay(pacs: Pacs) -> Iterator[Relay]:
    with Relay(*pacs.address) as running:
        yield running


def profile_via(relay: Relay, *, timeouts: Timeouts = CLIENT_TIMEOUTS, **changes) -> ServerProfile:
    options = dict(name="links", host=relay.host, port=relay.port, called_ae=PACS_AE,
                   retry=RetryPolicy(max_retries=0), timeouts=timeouts)
    options.update(changes)
    return ServerProfile(**options)
