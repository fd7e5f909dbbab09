"""Fixtures of the serve tests: our SCP with every role over an archive holding the lab's data.

    served      (module) a running DicomServer (query/retrieve on) as AE PBSERVE on 127.0.0.1,
                its archive holding every lab instance (Archive.import_file), and storescp
                (+xa, AE STORESCP) as its one move destination
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.dicom.server import DicomServer, ServerSettings
from tests.lab.data import Catalog
from tests.lab.peers import DCMTK_BIN, free_port, listening_sockets, peer_env

SERVER_AE = "PBSERVE"
STORESCP_AE = "STORESCP"


@dataclass
class Served:
    server: DicomServer
    archive: Archive
    host: str
    port: int
    ae_title: str
    storescp_dir: Path
    storescp_port: int
    workdir: Path

    @property
    def aet(self) -> str:
        return self.ae_title


def start_server(archive: Archive, **options) -> DicomServer:
    settings = ServerSettings(host="127.0.0.1", port=0, ae_title=options.pop("ae_title", SERVER_AE),
                              query_retrieve=True, **options)
    server = DicomServer(settings, archive)
    server.start()
    return server


@pytest.fixture(scope="module")
def served(lab_data: Catalog) -> Iterator[Served]:
    workdir = Path(tempfile.mkdtemp(prefix="pacsbrowser-serve-"))
    archive = Archive(workdir / "archive", durable=False)
    for path in lab_data.paths():
        archive.import_file(path)
    out = workdir / "storescp"
    out.mkdir()
    port = free_port()
    storescp = subprocess.Popen([str(DCMTK_BIN / "storescp"), "+xa", "-aet", STORESCP_AE, "-od", str(out),
                                 str(port)], env=peer_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        deadline = time.monotonic() + 20
        while not any(p == port for _, p in listening_sockets(storescp.pid)):
            if storescp.poll() is not None or time.monotonic() > deadline:
                pytest.fail("storescp did not start", pytrace=False)
            time.sleep(0.05)
        server = start_server(archive, destinations=((STORESCP_AE, "127.0.0.1", port),))
        host, bound = server.address
        yield Served(server, archive, host, bound, SERVER_AE, out, port, workdir)
    finally:
        if server is not None:
            server.shutdown()
        storescp.terminate()
        try:
            storescp.wait(10)
        except subprocess.TimeoutExpired:
            storescp.kill()
            storescp.wait(10)
        archive.close()
        shutil.rmtree(workdir, ignore_errors=True)
