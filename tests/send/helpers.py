"""Helpers for the send tests: our CLI in a child process, C-FIND with DCMTK's findscu, comparing
what a peer holds with the source files, and a small recording Storage SCP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt

from pacsbrowser.core.dicomfiles import read_header
from pacsbrowser.core.records import RetryPolicy, ServerProfile, Timeouts
from tests.lab.client import profile_for as lab_profile
from tests.lab.peers import dcmtk

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CompressedSet:
    root: Path
    made: dict[str, Path]  # label -> file: jpeg-lossless, jpeg-baseline, jpeg-ls, jpeg2000
    rle: list[Path]  # the lab's RLE Lossless files

    @property
    def all(self) -> list[Path]:
        return [*self.made.values(), *self.rle]


def profile_for(peer: Any, *, retries: int = 0, timeout: float = 10.0, **changes: Any) -> ServerProfile:
    """tests.lab.client's profile, with `retries` quick retries and a uniform `timeout`."""
    return lab_profile(peer, name="send test", timeouts=Timeouts.uniform(timeout),
                       retry=RetryPolicy(max_retries=retries, initial_delay=0.01, max_delay=0.05, jitter=0.0),
                       **changes)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PACSBROWSER_CONFIG_DIR"] = tempfile.gettempdir() + "/pacsbrowser-send-test-no-config"
    return subprocess.run([sys.executable, "-m", "pacsbrowser", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO, stdin=subprocess.DEVNULL)


def store_cli(peer: Any, *paths: Path | str, parallel: int | None = None, extra: Sequence[str] = ()):
    args = ["store", *map(str, paths), "--host", peer.host, "--port", str(peer.port), "--called-ae", peer.aet,
            "--timeout", "10", *extra]
    if parallel is not None:
        args += ["--parallel", str(parallel)]
    return run_cli(*args)


# ------------------------------------------------------------------------------------------
# C-FIND with DCMTK findscu (study -> series -> image, as strict hierarchical peers need)


def _findscu(peer: Any, level: str, keys: dict[str, str], want: Sequence[str]) -> list[Dataset]:
    with tempfile.TemporaryDirectory(prefix="pacsbrowser-findscu-") as out:
        args = ["-S", "-aec", peer.aet, "-k", f"QueryRetrieveLevel={level}"]
        for key, value in keys.items():
            args += ["-k", f"{key}={value}"]
        for key in want:
            args += ["-k", key]
        result = dcmtk("findscu", *args, "-X", "-od", out, peer.host, str(peer.port), timeout=30)
        assert result.returncode == 0, result.stderr[-2000:]
        return [pydicom.dcmread(p) for p in sorted(Path(out).glob("rsp*.dcm"))]


def find_all_instances(peer: Any) -> dict[str, str]:
    """SOP Instance UID -> SOP Class UID of everything the peer answers for, by C-FIND."""
    found: dict[str, str] = {}
    for study in _findscu(peer, "STUDY", {}, ["StudyInstanceUID"]):
        suid = str(study.StudyInstanceUID)
        for series in _findscu(peer, "SERIES", {"StudyInstanceUID": suid}, ["SeriesInstanceUID"]):
            keys = {"StudyInstanceUID": suid, "SeriesInstanceUID": str(series.SeriesInstanceUID)}
            for image in _findscu(peer, "IMAGE", keys, ["SOPInstanceUID", "SOPClassUID"]):
                found[str(image.SOPInstanceUID)] = str(image.get("SOPClassUID", ""))
    return found


# ------------------------------------------------------------------------------------------
# What a peer holds


def orthanc_file(orthanc: Any, sop_instance_uid: str, workdir: Path) -> Path:
    [instance] = [r for r in orthanc.lookup(sop_instance_uid) if r["Type"] == "Instance"]
    data = orthanc.rest(f"/instances/{instance['ID']}/file", raw=True)
    path = workdir / f"orthanc-{sop_instance_uid}.dcm"
    path.write_bytes(data)
    return path


def dataset_bytes(path: Path) -> bytes:
    """The data set of a DICOM file as stored, without the File Meta Information."""
    item = read_header(str(path), path)
    return path.read_bytes()[item.offset:]


def dcmqrscp_files(peer: Any) -> dict[str, Path]:
    """SOP Instance UID -> file in dcmqrscp's storage area."""
    out = {}
    for path in peer.storage.iterdir():
        if path.name == "index.dat" or not path.is_file():
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        out[str(ds.SOPInstanceUID)] = path
    return out


def same_pixels(received: Path | Dataset, source: Path) -> bool:
    a = received if isinstance(received, Dataset) else pydicom.dcmread(received)
    b = pydicom.dcmread(source)
    return np.array_equal(a.pixel_array, b.pixel_array)


def without_pixels(ds: Dataset) -> dict[str, Any]:
    """Top-level elements other than pixel data and group 0002, for comparing headers."""
    return {str(e.tag): e.value for e in ds if e.tag.group not in (0x0002, 0x7FE0)}


# ------------------------------------------------------------------------------------------
# A recording Storage SCP on 127.0.0.1


@dataclass
class Stored:
    sop_instance_uid: str
    transfer_syntax: str
    association: int
    dataset: Dataset = field(repr=False)


class RecordingSCP:
    """A pynetdicom Storage SCP on 127.0.0.1 that records what it received and on which
    association; `transfer_syntaxes` limits what it accepts; `sop_classes` limits the classes;
    `abort_at` lists store numbers (1-based, over its whole life) at which it aborts instead."""

    def __init__(self, *, ae_title: str = "RECORDER", transfer_syntaxes: Sequence[str] | None = None,
                 sop_classes: Iterable[str] | None = None, abort_at: Iterable[int] = (),
                 status: int = 0x0000, delay: float = 0.0, max_associations: int = 32) -> None:
        self.ae_title = self.aet = ae_title
        self.host = "127.0.0.1"
        self.abort_at = set(abort_at)
        self.status = status
        self.delay = delay
        self.stored: list[Stored] = []
        self.requested_contexts: list[int] = []  # contexts proposed, per association
        self.accepted_contexts: list[int] = []
        self.aborted = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        ae = AE(ae_title=ae_title)
        ae.maximum_associations = max_associations  # more are rejected: "local limit exceeded"
        ae.network_timeout = 10
        ae.dimse_timeout = 10
        classes = list(sop_classes) if sop_classes is not None else [cx.abstract_syntax for cx in StoragePresentationContexts]
        for sop_class in classes:
            ae.add_supported_context(sop_class, list(transfer_syntaxes or ALL_TRANSFER_SYNTAXES))
        self._ae = ae
        self._server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[
            (evt.EVT_C_STORE, self._on_store), (evt.EVT_ACCEPTED, self._on_accepted)])
        self.port = self._server.server_address[1]

    def _on_accepted(self, event: Any) -> None:
        with self._lock:
            self.requested_contexts.append(len(event.assoc.requestor.requested_contexts))
            self.accepted_contexts.append(len(event.assoc.accepted_contexts))

    def _on_store(self, event: Any) -> int:
        with self._lock:
            self.requests += 1
            number = self.requests
        if number in self.abort_at:
            with self._lock:
                self.aborted += 1
            event.assoc.abort()
            return 0xA700
        if self.delay:
            self._release.wait(self.delay)  # bounded: a slow PACS, interrupted by shutdown
        ds = event.dataset
        ds.file_meta = FileMetaDataset(event.file_meta)
        with self._lock:
            self.stored.append(Stored(str(ds.SOPInstanceUID), str(event.context.transfer_syntax),
                                      id(event.assoc), ds))
        return self.status

    @property
    def associations(self) -> int:
        return len(self.accepted_contexts)

    def by_uid(self) -> dict[str, list[Stored]]:
        out: dict[str, list[Stored]] = {}
        for item in self.stored:
            out.setdefault(item.sop_instance_uid, []).append(item)
        return out

    def shutdown(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._ae.shutdown()

    def __enter__(self) -> "RecordingSCP":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
