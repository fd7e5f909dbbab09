"""DICOM files on disk, before anything is sent: finding them, reading their File Meta
Information, and checking that they are whole. pydicom only, no network: the window uses it too
(to count the DICOM files in a dropped folder), and core.dicom.store sends what it plans.

1. `iter_sources` walks the paths given (folders recursively) without reading anything.
2. `read_header` reads the File Meta Information only (archive.part10's reader: SOP class and
   instance, transfer syntax and where the data set starts): cheap, so a folder of 10,000 files
   can be planned without holding more than a few hundred bytes per file. `scan` does both.
3. `check_file` walks a file's elements (headers only, seeking over values): a truncated or
   damaged file is found before it is sent, never sent.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .archive.part10 import MalformedDataset, split_part10
from .records import StoreOutcome, StoreResult
from .sopclasses import is_dicomdir, is_image_class

_META_READ = 1 << 16  # bytes read for the File Meta Information (the archive reads as much)


# --------------------------------------------------------------------------------------------
# Finding and planning files


class Unsendable(Exception):
    """The input cannot be sent: not DICOM, damaged, unreadable. `str()` says why, in words."""


@dataclass
class StoreItem:
    """One file or dataset to send, as planned from its header (small: no pixel data)."""

    name: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    path: Path | None = None
    offset: int = -1  # where the data set starts in the file; -1: no File Meta (send decoded)
    size: int = 0
    dataset: Dataset | None = field(default=None, repr=False)
    attempts: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.sop_class_uid, self.transfer_syntax)

    def result(self, outcome: StoreOutcome, reason: str = "", status: int | None = None, *,
               transfer_syntax: str = "", converted: bool = False) -> StoreResult:
        return StoreResult(
            name=self.name, outcome=outcome, reason=reason, status=status, path=self.path,
            sop_class_uid=self.sop_class_uid, sop_instance_uid=self.sop_instance_uid,
            transfer_syntax=transfer_syntax, converted=converted, size=self.size,
            attempts=max(1, self.attempts),
        )


def skipped(name: str, reason: str, path: Path | None = None, size: int = 0) -> StoreResult:
    return StoreResult(name=name, outcome=StoreOutcome.SKIPPED, reason=reason, path=path, size=size,
                       attempts=0)


def iter_sources(sources: Iterable[Any]) -> Iterator[tuple[str, Path | Dataset, str]]:
    """(name, path-or-dataset, problem) for every file under `sources`, lazily, folders walked in
    sorted order. `problem` is empty, or why the name cannot be read (missing, a socket, a folder
    that cannot be listed...). A file reached twice (a folder and a file in it) comes once."""
    seen: set[str] = set()
    dataset_number = itertools.count(1)
    for source in sources:
        if isinstance(source, Dataset):
            yield f"dataset {next(dataset_number)}", source, ""
            continue
        path = Path(os.fsdecode(source))
        name = str(source)
        if path.is_dir():
            unreadable: list[OSError] = []
            for root, dirs, files in os.walk(path, onerror=unreadable.append):
                while unreadable:
                    error = unreadable.pop(0)
                    where = str(error.filename or root)
                    yield where, Path(where), f"cannot read the folder: {error.strerror or error}"
                dirs.sort()
                for filename in sorted(files):
                    child = Path(root) / filename
                    real = os.path.realpath(child)
                    if real in seen:
                        continue
                    seen.add(real)
                    if child.is_file():
                        yield str(child), child, ""
                    elif not child.exists():
                        yield str(child), child, "a broken link"
                    else:
                        yield str(child), child, "not a regular file"
            for error in unreadable:
                where = str(error.filename or path)
                yield where, Path(where), f"cannot read the folder: {error.strerror or error}"
        elif path.is_file():
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                yield name, path, ""
        elif path.exists():
            yield name, path, "not a regular file or folder"
        else:
            yield name, path, "no such file or folder"


class FileMeta(NamedTuple):
    """What a DICOM Part 10 file's File Meta Information says about it."""

    transfer_syntax: str
    offset: int  # where the data set starts
    sop_class_uid: str
    sop_instance_uid: str


def read_file_meta(path: str | os.PathLike[str]) -> FileMeta | None:
    """The File Meta Information of the file at `path`, or None when it has none (no DICM prefix).

    Raises OSError, or MalformedDataset when the header is damaged or cut short."""
    with open(path, "rb") as fp:
        prefix = fp.read(_META_READ)
        if len(prefix) < 132 or prefix[128:132] != b"DICM":
            return None
        syntax, offset, values = split_part10(prefix)
        if len(prefix) == _META_READ and offset + 8 > len(prefix) and fp.read(1):
            raise MalformedDataset(f"the file meta information is longer than {_META_READ} bytes")
    return FileMeta(syntax, offset, values.get(0x0002, ""), values.get(0x0003, ""))


def read_header(name: str, path: Path) -> StoreItem:
    """Plan one file from its File Meta Information, or raise Unsendable saying why."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise Unsendable("an empty file")
        meta = read_file_meta(path)
    except PermissionError:
        raise Unsendable("cannot read it: permission denied") from None
    except OSError as exc:
        raise Unsendable(f"cannot read it: {exc.strerror or exc}") from None
    except MalformedDataset as exc:
        raise Unsendable(f"a damaged DICOM file header ({exc})") from None
    if meta is None:
        return _read_raw_header(name, path, size)
    missing = [k for k, v in (("MediaStorageSOPClassUID", meta.sop_class_uid),
                              ("MediaStorageSOPInstanceUID", meta.sop_instance_uid)) if not v]
    if missing:
        raise Unsendable(f"a damaged DICOM file: its header lacks {', '.join(missing)}")
    if is_dicomdir(meta.sop_class_uid):
        raise Unsendable("a DICOMDIR (an index of a disc or folder), not an image")
    if meta.offset >= size:
        raise Unsendable("a damaged DICOM file: it ends after its header, without a data set")
    return StoreItem(
        name=name,
        path=path,
        sop_class_uid=meta.sop_class_uid,
        sop_instance_uid=meta.sop_instance_uid,
        transfer_syntax=meta.transfer_syntax,
        offset=meta.offset,
        size=size,
    )


def _read_raw_header(name: str, path: Path, size: int) -> StoreItem:
    """A data set without the DICOM file header (older software writes those): accepted only when
    it reads as one and names its SOP class and instance; it is then sent decoded."""
    try:
        ds = dcmread(path, force=True, stop_before_pixels=True,
                     specific_tags=["SOPClassUID", "SOPInstanceUID", "SpecificCharacterSet"])
        sop_class = str(ds.get("SOPClassUID", "") or "")
        sop_instance = str(ds.get("SOPInstanceUID", "") or "")
        implicit = ds.original_encoding[0]
    except Exception:  # noqa: BLE001 - anything pydicom cannot parse is not DICOM
        raise Unsendable("not a DICOM file") from None
    if not (_looks_like_uid(sop_class) and _looks_like_uid(sop_instance)):
        raise Unsendable("not a DICOM file")
    return StoreItem(
        name=name,
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        transfer_syntax=str(ImplicitVRLittleEndian if implicit is not False else ExplicitVRLittleEndian),
        offset=-1,
        size=size,
    )


def _looks_like_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and all(part.isdigit() for part in value.split("."))


def dataset_item(name: str, ds: Dataset) -> StoreItem:
    """Plan an in-memory dataset (sent decoded; never modified here)."""
    sop_class = str(ds.get("SOPClassUID", "") or "")
    sop_instance = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_class or not sop_instance:
        raise Unsendable("the dataset has no SOP Class UID or SOP Instance UID")
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""
    if not syntax:
        implicit, little = ds.original_encoding
        if implicit is None:
            implicit = getattr(ds, "is_implicit_VR", None)
        syntax = str(ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
        if little is False:
            syntax = str(ExplicitVRBigEndian)
    return StoreItem(name=name, sop_class_uid=sop_class, sop_instance_uid=sop_instance,
                     transfer_syntax=syntax, dataset=ds)


def scan(sources: Iterable[Any]) -> Iterator[StoreItem | StoreResult]:
    """For every file (or dataset) under `sources`, lazily: a StoreItem planned from its header, or
    a SKIPPED result saying why it cannot be sent."""
    for name, source, problem in iter_sources(sources):
        path = source if isinstance(source, Path) else None
        if problem:
            yield skipped(name, problem, path)
            continue
        try:
            yield dataset_item(name, source) if isinstance(source, Dataset) else read_header(name, source)
        except Unsendable as exc:
            yield skipped(name, str(exc), path, _size(path))


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def short_error(exc: BaseException) -> str:
    """The first line of an exception's message (at most 160 characters), or its class name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:160]


# --------------------------------------------------------------------------------------------
# Checking a file before sending it: a walk over element headers, seeking over values


_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_PIXEL_DATA = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_SHORT_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
              b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
_MAX_DEPTH = 64


class _Walker:
    def __init__(self, fp: Any, size: int, little: bool) -> None:
        self.fp, self.size = fp, size
        order = "<" if little else ">"
        self.tag_and_rest = struct.Struct(order + "HH4s")
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "L")
        self.found: dict[int, bytes] = {}

    def read(self, n: int) -> bytes:
        data = self.fp.read(n)
        if len(data) != n:
            raise Unsendable(f"a truncated DICOM file: it ends in the middle of an element (at byte {self.size})")
        return data

    def skip(self, length: int, limit: int) -> None:
        position = self.fp.tell()
        if position + length > limit:
            if limit == self.size:
                raise Unsendable(f"a truncated DICOM file: an element of {length} bytes at byte {position} "
                                 f"runs past its end (at byte {self.size})")
            raise Unsendable(f"a damaged DICOM file: an element at byte {position} overruns its sequence item")
        self.fp.seek(length, 1)

    def header(self, implicit: bool) -> tuple[int, bytes, int]:
        """(tag, VR or b"", length) of the next element or delimiter."""
        group, element, rest = self.tag_and_rest.unpack(self.read(8))
        tag = group << 16 | element
        if implicit or group == 0xFFFE:  # delimiters and items have no VR, even in explicit VR
            return tag, b"", self.u32.unpack(rest)[0]
        vr = rest[:2]
        if vr in _LONG_VRS:
            return tag, vr, self.u32.unpack(self.read(4))[0]
        if vr in _SHORT_VRS:
            return tag, vr, self.u16.unpack(rest[2:])[0]
        raise Unsendable("a damaged DICOM file: its data set is not encoded the way its header says "
                         f"(no value representation at byte {self.fp.tell() - 8})")

    def elements(self, implicit: bool, end: int | None, depth: int, top: bool) -> None:
        """Walk elements to `end` (a defined length), an item delimiter (`end` None) or the end of
        the file (`top`)."""
        if depth > _MAX_DEPTH:
            raise Unsendable("a damaged DICOM file: sequences nested too deep")
        limit = self.size if end is None else end
        while True:
            position = self.fp.tell()
            if end is not None and position >= end:
                if position > end:
                    raise Unsendable("a damaged DICOM file: a sequence item overruns its length")
                return
            if end is None and position >= self.size:
                if top:
                    return
                raise Unsendable("a truncated DICOM file: it ends inside a sequence")
            tag, vr, length = self.header(implicit)
            if tag == _ITEM_END and not top and end is None:
                return
            if tag >> 16 == 0xFFFE:
                raise Unsendable(f"a damaged DICOM file: a misplaced item or delimiter at byte {position}")
            if length == _UNDEFINED:
                if top and tag in _PIXEL_DATA:
                    self.found[tag] = b""
                if tag in _PIXEL_DATA and not implicit:
                    self.fragments()
                elif implicit or vr in (b"SQ", b"UN"):
                    # an undefined-length UN is a sequence encoded in Implicit VR Little Endian
                    self.sequence(implicit or vr == b"UN", depth + 1)
                else:
                    raise Unsendable(f"a damaged DICOM file: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
                                     "has an undefined length")
                continue
            if top and tag in _PIXEL_DATA:
                self.found[tag] = b""
            if top and tag in (0x00080016, 0x00080018) and length <= 128:
                if self.fp.tell() + length > limit:
                    self.skip(length, limit)  # raises
                self.found[tag] = self.read(length)
            else:
                self.skip(length, limit)

    def items(self, ended: str) -> Iterator[tuple[int, int, int]]:
        """(position, tag, length) of each item up to the sequence delimiter; `ended` says what
        it means when the file ends first."""
        while True:
            position = self.fp.tell()
            if position >= self.size:
                raise Unsendable(f"a truncated DICOM file: {ended}")
            tag, _, length = self.header(True)
            if tag == _SEQUENCE_END:
                return
            yield position, tag, length

    def sequence(self, implicit: bool, depth: int) -> None:
        for position, tag, length in self.items("it ends inside a sequence"):
            if tag != _ITEM:
                raise Unsendable(f"a damaged DICOM file: expected a sequence item at byte {position}")
            if length == _UNDEFINED:
                self.elements(implicit, None, depth, top=False)
            else:
                start = self.fp.tell()
                if start + length > self.size:
                    self.skip(length, self.size)  # raises
                self.elements(implicit, start + length, depth, top=False)

    def fragments(self) -> None:
        for position, tag, length in self.items("its compressed pixel data ends early"):
            if tag != _ITEM or length == _UNDEFINED:
                raise Unsendable(f"a damaged DICOM file: a bad pixel data fragment at byte {position}")
            self.skip(length, self.size)


def check_file(item: StoreItem) -> None:
    """Raise Unsendable when the file is truncated or damaged; reads element headers only.

    pydicom reads a truncated file without complaint (the missing bytes just are not there),
    and a PACS would store the broken image: so look before sending."""
    if item.path is None:
        return
    syntax = UID(item.transfer_syntax)
    try:
        size = item.path.stat().st_size
        with open(item.path, "rb") as fp:
            if item.offset < 0:  # a data set without the file header: walk it unless it starts
                if fp.read(2) in (b"\x02\x00", b"\x00\x02"):  # with a header group after all
                    return
            fp.seek(max(0, item.offset))
            if syntax == DeflatedExplicitVRLittleEndian:
                _check_deflated(fp)
                return
            walker = _Walker(fp, size, little=syntax.is_little_endian if syntax.is_transfer_syntax else True)
            implicit = syntax.is_implicit_VR if syntax.is_transfer_syntax else False
            walker.elements(implicit, None, 0, top=True)
    except Unsendable:
        raise
    except OSError as exc:
        raise Unsendable(f"cannot read it: {exc.strerror or exc}") from None
    except struct.error:
        raise Unsendable("a truncated DICOM file") from None
    found_class = walker.found.get(0x00080016, b"").rstrip(b"\0 ").decode("ascii", "replace")
    found_instance = walker.found.get(0x00080018, b"").rstrip(b"\0 ").decode("ascii", "replace")
    if not found_class or not found_instance:
        raise Unsendable("a damaged DICOM file: its data set has no SOP Class UID or SOP Instance UID")
    if found_instance != item.sop_instance_uid or found_class != item.sop_class_uid:
        raise Unsendable("a damaged DICOM file: its header and data set name different SOP instances")
    if is_image_class(found_class) and not any(tag in walker.found for tag in _PIXEL_DATA):
        # a file cut between two elements reads as a whole one: an image without pixels is not
        raise Unsendable("a truncated DICOM file: an image without pixel data")


def _check_deflated(fp: Any) -> None:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        while chunk := fp.read(1 << 20):
            inflater.decompress(chunk, 0)
            if inflater.eof:
                break
    except zlib.error as exc:
        raise Unsendable(f"a damaged DICOM file: its deflated data set is corrupt ({exc})") from None
    if not inflater.eof:
        raise Unsendable("a truncated DICOM file: its deflated data set ends early")


__all__ = [
    "FileMeta",
    "StoreItem",
    "Unsendable",
    "check_file",
    "dataset_item",
    "iter_sources",
    "read_file_meta",
    "read_header",
    "scan",
    "short_error",
    "skipped",
]
