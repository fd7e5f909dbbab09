"""The hostile-peer lab: our SCP (DicomServer, query/retrieve on) over an archive holding lab data,
two C-MOVE destinations (one that aborts part-way), and the checks every hostile scenario ends
with: every thread and association slot freed, the archive whole (nothing half-written listed,
nothing written outside it), and a well-behaved DCMTK storescu still served.

Timeouts are short (ACSE 1.5 s, DIMSE 2 s, network 1 s) so that a peer that goes quiet costs the test
seconds, not minutes; every wait is bounded.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.dicom.server import DicomServer, ServerSettings
from pacsbrowser.core.records import Timeouts
from tests.archive.helpers import make_dataset, save
from tests.lab.data import Catalog
from tests.lab.fault_scp import FaultSCP
from tests.lab.peers import dcmtk

from tests.lab import rawpdu  # isort: skip

SERVER_AE = "PBHOSTILE"
GOOD_DESTINATION = "GOODDEST"
ABORTING_DESTINATION = "ABORTDEST"
SLOW_DESTINATION = "SLOWDEST"  # answers each C-STORE after SLOW_STORE seconds
SLOW_STORE = 0.15
TIMEOUTS = Timeouts(connect=2, acse=1.5, dimse=2, network=1)
MAX_ASSOCIATIONS = 4
# The longest a connection may live after its peer went bad: the network timeout, then the
# abort's own bounded steps (pynetdicom sleeps 0.1 s, the DUL closes), with room for a busy machine.
FREED_WITHIN = TIMEOUTS.network + TIMEOUTS.dimse + 6.0

SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
FIND = str(StudyRootQueryRetrieveInformationModelFind)
GET = str(StudyRootQueryRetrieveInformationModelGet)
MOVE = str(StudyRootQueryRetrieveInformationModelMove)
CT = str(CTImageStorage)


def association_threads() -> list[threading.Thread]:
    """pynetdicom's per-association threads alive in this process (reactor and DUL)."""
    return [t for t in threading.enumerate() if isinstance(t, (Association, DULServiceProvider)) and t.is_alive()]


@dataclass
class HostileLab:
    server: DicomServer
    archive: Archive
    workdir: Path
    catalog: Catalog
    destinations: dict[str, FaultSCP]
    held: set[str] = field(default_factory=set)  # SOP Instance UIDs the archive must hold
    sent_by_storescu: int = 0

    @property
    def host(self) -> str:
        return self.server.address[0]

    @property
    def port(self) -> int:
        return self.server.address[1]

    def connect(self, timeout: float = 10.0) -> rawpdu.RawPeer:
        return rawpdu.RawPeer.connect(self.host, self.port, timeout)

    def associate(self, proposals=None, **options) -> tuple[rawpdu.RawPeer, dict[int, str]]:
        """A raw peer with an association: Verification (1), Study Root FIND (3), GET (5), MOVE (7)
        and CT storage (9) unless `proposals` says otherwise."""
        if proposals is None:
            proposals = [(1, str(Verification), SYNTAXES), (3, FIND, SYNTAXES), (5, GET, SYNTAXES),
                         (7, MOVE, SYNTAXES), (9, CT, SYNTAXES)]
        peer = self.connect()
        try:
            accepted = peer.associate(SERVER_AE, proposals, **options)
        except BaseException:
            peer.close()
            raise
        return peer, accepted

    # ------------------------------------------------------------------ the checks

    def wait_freed(self, bound: float = FREED_WITHIN) -> float:
        """Seconds until no association slot and no association thread is left; fails past `bound`."""
        started = time.monotonic()
        deadline = started + bound
        while self.server.active_associations() or association_threads():
            if time.monotonic() > deadline:
                names = [t.name for t in association_threads()]
                raise AssertionError(f"not freed within {bound:g} s: {len(self.server.active_associations())} "
                                     f"association slots, threads {names}")
            time.sleep(0.02)
        return time.monotonic() - started

    def storescu(self, *, calling: str = "GOODSCU", timeout: float = 30.0) -> str:
        """DCMTK storescu sends one new small CT image; it must be acknowledged and land in the index."""
        uid = generate_uid()
        path = save(make_dataset(sop=uid, patient_id="HOSTILE1", name="HOSTILE^GOOD"),
                    self.workdir / "files" / f"{uid}.dcm")
        result = dcmtk("storescu", "-aet", calling, "-aec", SERVER_AE, self.host, str(self.port), path,
                       timeout=timeout)
        assert result.returncode == 0, f"storescu failed ({result.returncode}): {result.stdout}{result.stderr}"
        self.archive.flush()
        assert self.archive.instance(uid) is not None, "storescu's image is not in the archive"
        self.held.add(uid)
        self.sent_by_storescu += 1
        return uid

    def assert_archive_whole(self) -> None:
        """No temporary or partial file anywhere; every indexed instance is whole; nothing but the
        expected instances indexed; nothing written next to the archive."""
        self.archive.flush()
        root = self.archive.root
        leftovers = [p for p in root.rglob("*") if p.is_file() and (p.name.startswith(".tmp") or p.suffix == ".part")]
        assert not leftovers, f"half-written files: {leftovers}"
        indexed = {row.sop_instance_uid for row in self.archive.instances()}
        assert indexed == self.held, f"unexpected index content: {sorted(indexed ^ self.held)[:5]}"
        report = self.archive.verify(deep=True)
        assert report.ok, report.problems
        outside = sorted(p.name for p in self.workdir.iterdir()) if self.workdir.exists() else []
        assert set(outside) <= {"archive", "files"}, f"written outside the archive: {outside}"

    def assert_recovered(self, *, storescu: bool = True) -> float:
        """The checks every hostile scenario ends with; returns the seconds until freed."""
        freed = self.wait_freed()
        if storescu:
            self.storescu()
        self.wait_freed()
        self.assert_archive_whole()
        return freed


def instance_uids(archive: Archive) -> set[str]:
    return {row.sop_instance_uid for row in archive.instances()}


def start_lab(catalog: Catalog, studies: list[str]) -> HostileLab:
    """The server over an archive holding `studies` of the lab catalog, with its two destinations."""
    workdir = Path(tempfile.mkdtemp(prefix="pacsbrowser-hostile-"))
    archive = Archive(workdir / "archive", durable=False)
    destinations: dict[str, FaultSCP] = {}
    server = None
    try:
        for study in studies:
            for instance in catalog.instances_of_study(study):
                archive.import_file(instance.path)
        destinations[GOOD_DESTINATION] = FaultSCP("ok", ae_title=GOOD_DESTINATION).start()
        destinations[ABORTING_DESTINATION] = FaultSCP("abort_after_n", ae_title=ABORTING_DESTINATION,
                                                      abort_after=1).start()
        destinations[SLOW_DESTINATION] = FaultSCP("slow", ae_title=SLOW_DESTINATION, delay=SLOW_STORE).start()
        settings = ServerSettings(
            host="127.0.0.1", port=0, ae_title=SERVER_AE, query_retrieve=True, max_associations=MAX_ASSOCIATIONS,
            timeouts=TIMEOUTS, destinations=tuple((ae, scp.host, scp.port) for ae, scp in destinations.items()))
        server = DicomServer(settings, archive)
        server.start()
        archive.flush()
        lab = HostileLab(server, archive, workdir, catalog, destinations)
        lab.held = instance_uids(archive)
        return lab
    except BaseException:
        stop_lab_parts(server, archive, destinations, workdir)
        raise


def stop_lab_parts(server, archive, destinations, workdir) -> None:
    if server is not None:
        server.shutdown()
    for scp in destinations.values():
        scp.shutdown()
    archive.close()
    shutil.rmtree(workdir, ignore_errors=True)


def stop_lab(lab: HostileLab) -> None:
    stop_lab_parts(lab.server, lab.archive, lab.destinations, lab.workdir)


def identifier(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def read_file_dataset(path: Path) -> Dataset:
    return pydicom.dcmread(path)
