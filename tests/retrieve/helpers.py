"""Helpers of the retrieve tests: generated studies, comparing what arrived with its source, and a
small in-process C-GET/C-MOVE SCP that misbehaves on request (fixtures are in conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacsbrowser.core.archive import Archive, split_part10
from tests.lab.data import lab_uid
from tests.lab.scp import LoopbackSCP

# --------------------------------------------------------------------------------------------
# Generated studies


@dataclass(frozen=True)
class GeneratedInstance:
    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    path: Path
    transfer_syntax_uid: str


@dataclass(frozen=True)
class GeneratedStudy:
    study_uid: str
    instances: tuple[GeneratedInstance, ...]

    def paths(self) -> list[Path]:
        return [i.path for i in self.instances]

    @property
    def series_uids(self) -> list[str]:
        return list(dict.fromkeys(i.series_uid for i in self.instances))

    def of_series(self, series_uid: str) -> list[GeneratedInstance]:
        return [i for i in self.instances if i.series_uid == series_uid]

    def uids(self) -> set[str]:
        return {i.sop_instance_uid for i in self.instances}


def _base(study_uid: str, series_uid: str, sop_class: str, sop_uid: str, number: int, patient: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = f"RETRIEVE^{patient}"
    ds.PatientID = f"RT{patient}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    ds.AccessionNumber = f"RT{patient}"[:16]
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    return ds


def make_big_study(root: Path, count: int = 400, *, series: int = 2, size: int = 16, label: str = "big",
                   rle_every: int = 0) -> GeneratedStudy:
    """`count` small CT instances in `series` series (every `rle_every`-th one RLE Lossless)."""
    root.mkdir(parents=True, exist_ok=True)
    study_uid = lab_uid("retrieve", label, "study")
    out = []
    for n in range(count):
        series_uid = lab_uid("retrieve", label, "series", n % series)
        sop_uid = lab_uid("retrieve", label, "instance", n)
        ds = _base(study_uid, series_uid, "1.2.840.10008.5.1.4.1.1.2", sop_uid, n + 1, label.upper())
        ds.Modality = "CT"
        pixels = ((np.arange(size * size, dtype=np.int32).reshape(size, size) * 7 + n * 13) % 4000).astype(np.uint16)
        ds.set_pixel_data(pixels, "MONOCHROME2", 12, generate_instance_uid=False)
        if rle_every and n % rle_every == 0:
            ds.compress(RLELossless, generate_instance_uid=False)
        path = root / f"{n:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(GeneratedInstance(sop_uid, str(ds.SOPClassUID), series_uid, study_uid, path,
                                     str(ds.file_meta.TransferSyntaxUID)))
    return GeneratedStudy(study_uid, tuple(out))


# Image SOP classes for a series with more classes than one association's 128 contexts hold
# (each image class gets 13 contexts: 12 classes need 156).
MANY_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
    "1.2.840.10008.5.1.4.1.1.1.2",  # MG for presentation
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.7",  # SC
    "1.2.840.10008.5.1.4.1.1.12.1",  # XA
    "1.2.840.10008.5.1.4.1.1.12.2",  # RF
    "1.2.840.10008.5.1.4.1.1.20",  # NM
    "1.2.840.10008.5.1.4.1.1.128",  # PET
    "1.2.840.10008.5.1.4.1.1.481.1",  # RT Image
)


def make_many_class_study(root: Path, per_class: int = 2) -> GeneratedStudy:
    """One series holding `per_class` instances of each of MANY_CLASSES."""
    root.mkdir(parents=True, exist_ok=True)
    study_uid = lab_uid("retrieve", "many", "study")
    series_uid = lab_uid("retrieve", "many", "series")
    out = []
    n = 0
    for sop_class in MANY_CLASSES:
        for _ in range(per_class):
            sop_uid = lab_uid("retrieve", "many", "instance", n)
            ds = _base(study_uid, series_uid, sop_class, sop_uid, n + 1, "MANY")
            ds.Modality = "OT"
            pixels = ((np.arange(64, dtype=np.int32).reshape(8, 8) + n) % 255).astype(np.uint8)
            ds.set_pixel_data(pixels, "MONOCHROME2", 8, generate_instance_uid=False)
            path = root / f"{n:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            out.append(GeneratedInstance(sop_uid, sop_class, series_uid, study_uid, path, ExplicitVRLittleEndian))
            n += 1
    return GeneratedStudy(study_uid, tuple(out))


# --------------------------------------------------------------------------------------------
# What arrived


def assert_same_as_source(archive: Archive, sources: Iterable[Any]) -> int:
    """Every source file (anything with .path and .sop_instance_uid) is in the archive with the same
    data set: element for element, pixel data byte for byte when the transfer syntax is the same,
    the decoded pixels otherwise. Returns how many were compared."""
    compared = 0
    for source in sources:
        row = archive.instance(source.sop_instance_uid)
        assert row is not None, f"{source.sop_instance_uid} is not in the archive"
        got = pydicom.dcmread(row.path)
        want = pydicom.dcmread(source.path)
        assert got.file_meta.MediaStorageSOPInstanceUID == source.sop_instance_uid
        if got.file_meta.TransferSyntaxUID == want.file_meta.TransferSyntaxUID:
            assert got == want, f"{source.sop_instance_uid}: the data set differs from its source"
        else:
            got_rest = Dataset({t: e for t, e in got.items() if t != 0x7FE00010})
            want_rest = Dataset({t: e for t, e in want.items() if t != 0x7FE00010})
            assert got_rest == want_rest, f"{source.sop_instance_uid}: elements differ from the source"
            assert np.array_equal(got.pixel_array, want.pixel_array), f"{source.sop_instance_uid}: pixels differ"
        compared += 1
    return compared


def whole_files_only(archive: Archive) -> None:
    """No temporary file of an interrupted write; every file parses; index and files agree."""
    leftovers = [p for p in archive.root.rglob(".tmp-*")]
    assert not leftovers, f"half-written files left: {leftovers}"
    for path in archive.root.rglob("*.dcm"):
        data = path.read_bytes()
        split_part10(data)
        pydicom.dcmread(path)  # the whole file reads
    report = archive.verify(deep=True)
    assert report.ok, report.problems


# --------------------------------------------------------------------------------------------
# A C-GET / C-MOVE SCP of our own


class RetrieveSCP(LoopbackSCP):
    """An in-process pynetdicom Q/R SCP on 127.0.0.1 serving `files` (Study Root, FIND at SERIES and
    IMAGE level, GET, MOVE) that misbehaves on request:

    - ``abort_after``: A-ABORT after that many C-STORE sub-operations of a C-GET;
    - ``delay``: seconds before each sub-operation (honours C-CANCEL, recording when);
    - ``ignore_cancel``: keep sending after C-CANCEL;
    - ``stall_after``: after that many sub-operations, go silent (until shut down);
    - ``move_destinations``: AE title -> (host, port) for C-MOVE (unknown ones get 0xA801);
    - ``get=False`` / ``move=False`` / ``find=False``: do not offer that service (its context is
      rejected).

    Records the SOP Instance UIDs it sent (``sent``), cancels seen and aborts sent.
    """

    def __init__(self, files: Iterable[Path], *, abort_after: int | None = None, delay: float = 0.0,
                 ignore_cancel: bool = False, get: bool = True, move: bool = True, find: bool = True, ae_title: str = "RETRIEVESCP",
                 stall_after: int | None = None, move_destinations: dict[str, tuple[str, int]] | None = None,
                 ) -> None:
        super().__init__(ae_title)
        self.datasets = [pydicom.dcmread(p) for p in files]
        self.abort_after = abort_after
        self.delay = delay
        self.ignore_cancel = ignore_cancel
        self.get, self.move, self.find = get, move, find
        self.stall_after = stall_after
        self.move_destinations = dict(move_destinations or {})
        self.sent: list[str] = []
        self.cancels = 0
        self.aborts_sent = 0
        self._lock = threading.Lock()

    def _application_entity(self) -> tuple[AE, list[tuple[Any, Any]]]:
        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        ae.maximum_pdu_size = 262144
        if self.find:
            ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        if self.get:
            ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
        if self.move:
            ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        for sop_class in {str(ds.SOPClassUID) for ds in self.datasets}:
            ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES, scu_role=False, scp_role=True)
        for pair in {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in self.datasets}:
            ae.add_requested_context(*pair)  # the C-MOVE sub-association to the destination
        return ae, [(evt.EVT_C_FIND, self._on_find), (evt.EVT_C_GET, self._on_get), (evt.EVT_C_MOVE, self._on_move)]

    def _matches(self, identifier: Dataset) -> list[Dataset]:
        out = []
        for ds in self.datasets:
            ok = True
            for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                wanted = identifier.get(keyword)
                if wanted in (None, ""):
                    continue
                values = [str(v) for v in wanted] if not isinstance(wanted, str) else wanted.split("\\")
                if str(ds.get(keyword, "")) not in values:
                    ok = False
            if ok:
                out.append(ds)
        return out

    def _on_find(self, event: Any):
        identifier = event.identifier
        level = identifier.QueryRetrieveLevel
        seen = set()
        for ds in self._matches(identifier):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            answer = Dataset()
            answer.QueryRetrieveLevel = level
            answer.StudyInstanceUID = ds.StudyInstanceUID
            if level in ("SERIES", "IMAGE"):
                answer.SeriesInstanceUID = ds.SeriesInstanceUID
            if level == "SERIES":
                if ds.SeriesInstanceUID in seen:
                    continue
                seen.add(ds.SeriesInstanceUID)
            if level == "IMAGE":
                answer.SOPInstanceUID = ds.SOPInstanceUID
                answer.SOPClassUID = ds.SOPClassUID
            yield 0xFF00, answer

    def _on_move(self, event: Any):
        destination = self.move_destinations.get(str(event.move_destination or "").strip())
        if destination is None:
            yield None, None  # pynetdicom answers 0xA801
            return
        yield destination[0], destination[1]
        yield from self._sub_operations(event)

    def _on_get(self, event: Any):
        yield from self._sub_operations(event)

    def _sub_operations(self, event: Any):
        matches = self._matches(event.identifier)
        yield len(matches)
        done = 0
        for ds in matches:
            if event.is_cancelled and not self.ignore_cancel:
                with self._lock:
                    self.cancels += 1
                yield 0xFE00, None
                return
            if self.abort_after is not None and done >= self.abort_after:
                with self._lock:
                    self.aborts_sent += 1
                event.assoc.abort()
                return
            if self.stall_after is not None and done >= self.stall_after:
                self._stop.wait(60)
            if self.delay:
                self._stop.wait(self.delay)
            if self._stop.is_set():
                return
            with self._lock:
                self.sent.append(str(ds.SOPInstanceUID))
            done += 1
            yield 0xFF00, ds


def make_compressed_study(root: Path, catalog: Any) -> GeneratedStudy:
    """Lab images in a study of their own, one per compressed syntax: RLE, JPEG 2000 lossless (pydicom),
    JPEG-LS lossless (dcmcjpls), JPEG lossless SV1 and JPEG baseline (dcmcjpeg)."""
    from pydicom.uid import JPEG2000Lossless

    from tests.lab.peers import dcmtk

    root.mkdir(parents=True, exist_ok=True)
    study_uid = lab_uid("retrieve", "compressed", "study")
    series_uid = lab_uid("retrieve", "compressed", "series")
    ct = [i for i in catalog.instances_with_modality("CT") if not i.is_compressed]
    mr = [i for i in catalog.instances_with_modality("MR") if not i.is_compressed]
    us = [i for i in catalog.instances_with_modality("US") if not i.is_compressed and i.frames == 1]
    recipes = [("rle", ct[0], None), ("j2k", mr[0], None), ("jls", mr[1], ("dcmcjpls", ["+un"])),
               ("jpeg-lossless", ct[1], ("dcmcjpeg", ["+e1", "+un"])), ("jpeg-baseline", us[0], ("dcmcjpeg", ["+eb", "+un"]))]
    out = []
    for n, (label, source, tool) in enumerate(recipes):
        ds = pydicom.dcmread(source.path)
        sop_uid = lab_uid("retrieve", "compressed", label)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.InstanceNumber = n + 1
        ds.AccessionNumber = "RTCOMPRESSED"
        target = root / f"{label}.dcm"
        if label == "rle":
            ds.compress(RLELossless, generate_instance_uid=False)
        elif label == "j2k":
            ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        if tool is None:
            ds.save_as(target, enforce_file_format=True)
        else:
            plain = root / f"{label}-plain.dcm"
            ds.save_as(plain, enforce_file_format=True)
            dcmtk(tool[0], *tool[1], plain, target, check=True)
            plain.unlink()
        meta = pydicom.dcmread(target, stop_before_pixels=True).file_meta
        out.append(GeneratedInstance(sop_uid, str(ds.SOPClassUID), series_uid, study_uid, target,
                                     str(meta.TransferSyntaxUID)))
    return GeneratedStudy(study_uid, tuple(out))
