"""The benchmark's peers and data, on loopback, in one temporary directory removed at the end.

    with BenchLab(want_dcmqrscp=True) as lab:
        lab.orthanc      # tests.lab OrthancPeer: 4,999 tiny studies + the 500-image study
        lab.dcmqrscp     # DcmqrscpPeer with the first 500 tiny studies indexed, or None
        lab.storescp     # DCMTK storescp (AE STORESCP), Orthanc's C-MOVE destination "storescp"
        lab.move_port    # where our Storage SCP (AE PACSBROWSER) listens for C-MOVE

Every peer runs under the lab's LD_PRELOAD shim (wildcard binds become 127.0.0.1) with
TCP_NODELAY=1, and is stopped in `close()` (SIGTERM, bounded wait, SIGKILL), also on Ctrl-C.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.lab.peers import (
    DCMTK_BIN,
    LOOPBACK,
    DcmqrscpPeer,
    LabError,
    OrthancPeer,
    _PeerProcess,
    free_port,
    stop_all,
)

from . import data
from .spent import set_aside

TINY_STUDIES = 4_999  # with the big study: 5,000 studies in Orthanc
BIG_INSTANCES = 500
# DCMTK 3.6.7's dcmqrscp holds at most 500 studies per storage area: DB_UpperMaxStudies is a
# compile-time constant (dcmqrdbi.h) that sizes the study table of index.dat, and the config's
# maxStudies is clamped to it (dcmqridx even crashes past it). A 5,000-study C-FIND cannot be
# asked of it, so its find case uses 500 studies.
DCMQRSCP_STUDIES = 500


class StorescpPeer(_PeerProcess):
    """DCMTK storescp writing what it receives into `output` (bit-preserving, largest PDU)."""

    binary = DCMTK_BIN / "storescp"
    package = "dcmtk"
    label = "storescp"

    def __init__(self, aet: str = "STORESCP", workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.aet = aet
        self.host = LOOPBACK
        self.port = free_port()
        self.output = self.workdir / "received"
        self.output.mkdir(parents=True, exist_ok=True)

    def _pick_ports(self) -> None:
        self.port = free_port()

    def _ports(self) -> list[int]:
        return [self.port]

    def _command(self) -> list[str]:
        # +B: write the bytes as received (what our archive does too); -pdu: DCMTK's largest
        return [str(self.binary), "-aet", self.aet, "-od", str(self.output), "+B", "-pdu", "131072",
                "-dhl", str(self.port)]

    def received(self) -> int:
        return sum(1 for _ in self.output.iterdir())

    def clear(self) -> None:
        set_aside(self.output, self.workdir / "spent")
        self.output.mkdir(parents=True, exist_ok=True)


class BenchLab:
    def __init__(self, *, want_dcmqrscp: bool = True, tiny: int = TINY_STUDIES, big: int = BIG_INSTANCES,
                 log: Any = print) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pacsbrowser-bench-"))
        self.want_dcmqrscp = want_dcmqrscp
        self.tiny_count, self.big_count = tiny, big
        self.log = log
        self.peers: list[_PeerProcess] = []
        self.orthanc: OrthancPeer | None = None
        self.dcmqrscp: DcmqrscpPeer | None = None
        self.storescp: StorescpPeer | None = None
        self.move_port = free_port()
        self.timings: dict[str, float] = {}
        self.tiny: data.Generated | None = None
        self.big: data.Generated | None = None

    def _time(self, what: str, started: float) -> None:
        self.timings[what] = time.perf_counter() - started
        self.log(f"  {what}: {self.timings[what]:.1f} s")

    def start(self) -> "BenchLab":
        t = time.perf_counter()
        self.tiny = data.tiny_studies(self.root / "data" / "tiny", self.tiny_count)
        self.big = data.big_study(self.root / "data" / "big", self.big_count)
        self._time(f"generate {self.tiny_count} tiny studies and a {self.big_count}-image study", t)

        t = time.perf_counter()
        self.storescp = StorescpPeer(workdir=self.root / "storescp")
        self.peers.append(self.storescp)
        self.orthanc = OrthancPeer(
            move_port=self.move_port,
            modalities={"storescp": [self.storescp.aet, LOOPBACK, self.storescp.port]},
            # Answer C-FIND from the index alone (Orthanc's default reads every matching file)
            extra_config={"StorageAccessOnFind": "Never"},
            workdir=self.root / "orthanc",
        )
        self.peers.append(self.orthanc)
        self.storescp.start()
        self.orthanc.start()
        if self.want_dcmqrscp:
            self.dcmqrscp = DcmqrscpPeer(workdir=self.root / "dcmqrscp", max_pdu=131072)
            self.peers.append(self.dcmqrscp)
        self._time("start Orthanc and storescp", t)

        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            dcmqr = pool.submit(self._load_dcmqrscp) if self.dcmqrscp is not None else None
            self.load_orthanc(self.tiny.paths + self.big.paths, threads=3)
            if dcmqr is not None:
                dcmqr.result()
        stats = self.orthanc.statistics()
        expected = self.tiny_count + self.big_count
        if int(stats["CountInstances"]) != expected:
            raise LabError(f"Orthanc holds {stats['CountInstances']} instances, expected {expected}")
        self._time(f"load {expected} instances into Orthanc (REST, 3 connections)"
                   + (f" and {DCMQRSCP_STUDIES} into dcmqrscp" if self.dcmqrscp else ""), t)
        return self

    def _load_dcmqrscp(self) -> None:
        assert self.dcmqrscp is not None and self.tiny is not None
        started = time.perf_counter()
        self.dcmqrscp.load(self.tiny.paths[:DCMQRSCP_STUDIES])
        self.dcmqrscp.start()
        self.timings["dcmqrscp index"] = time.perf_counter() - started

    def load_orthanc(self, paths: list[Path], threads: int = 3) -> None:
        assert self.orthanc is not None
        orthanc = self.orthanc

        def upload(chunk: list[Path]) -> None:
            client = OrthancPeer.__new__(OrthancPeer)  # a REST connection of its own
            client.http_port, client._http = orthanc.http_port, None
            try:
                for path in chunk:
                    answer = client.rest("/instances", "POST", path.read_bytes())
                    if not isinstance(answer, dict) or answer.get("Status") not in ("Success", "AlreadyStored"):
                        raise LabError(f"Orthanc refused {path}: {answer!r}")
            finally:
                client._close_http()

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(upload, [paths[i::threads] for i in range(threads)]))

    def delete_big_study(self) -> None:
        assert self.orthanc is not None and self.big is not None
        self.orthanc.delete_uid(self.big.study_uids[0])

    def big_study_count(self) -> int:
        assert self.orthanc is not None and self.big is not None
        found = self.orthanc.lookup(self.big.study_uids[0])
        if not found:
            return 0
        return len(self.orthanc.rest(f"{found[0]['Path']}/instances"))

    def close(self) -> None:
        try:
            stop_all(self.peers)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "BenchLab":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
