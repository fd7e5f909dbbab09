"""C-STORE, synchronously: reading files lazily, checking them, planning presentation contexts,
and sending each file in a syntax the PACS accepted (decompressing it when that is the only way).

Synchronous: call only from worker threads (see core.executor).

The path of a file through here:

1. `iter_sources` walks the paths given (folders recursively) without reading anything.
2. `read_header` reads the File Meta Information only (SOP class and instance, transfer syntax and
   where the data set starts): cheap, so a folder of 10,000 files can be planned without holding
   more than a few hundred bytes per file.
3. `plan_contexts` proposes, per SOP class, Explicit VR Little Endian and Implicit VR Little Endian
   each in its own presentation context, and every other syntax the files use (RLE, JPEG...) in a
   context of its own: an SCP accepts one syntax per context, so this lets the PACS accept the
   compressed syntax *and* an uncompressed one, and us choose per file. Classes are packed into
   groups of at most 128 contexts; each group gets its own associations.
4. `send_item`, on the worker that owns the association: `check_file` walks the file's elements
   (headers only; a truncated or damaged file is reported, never sent), then the file goes out
   - as stored, streamed from disk without decoding, when its own syntax was accepted;
   - re-encoded by pynetdicom when another uncompressed little-endian syntax was accepted;
   - decompressed (pydicom + pylibjpeg plugins) when only an uncompressed syntax was accepted;
   - not at all, reported, when nothing fits.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_preamble
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import _config as pynetdicom_config
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.status import code_to_category

from ..errors import AssociationAborted, Timeout, status_words
from .ae import interrupt, settle_reactor
from .syntaxes import MAX_CONTEXTS, UNCOMPRESSED
from ..logs import phi
from ..records import StoreOutcome, StoreResult

log = logging.getLogger(__name__)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR: an index of media, not an instance


# --------------------------------------------------------------------------------------------
# Streaming files as stored, per thread
#
# pynetdicom streams a file given to send_c_store() by path (no decoding, a PDU's worth of bytes
# at a time) only when the module-wide switch _config.STORE_SEND_CHUNKED_DATASET is on; otherwise
# it reads and re-encodes the whole data set. A module-wide switch would change how every other
# part of the application (a C-GET SCP handing paths to pynetdicom, say) sends. So the switch
# becomes a per-thread one: it reads as the previous global value everywhere, except on a thread
# inside `_chunked()`. send_c_store() reads it once, on the calling thread.


class _PerThreadSwitch:
    def __init__(self, default: bool) -> None:
        self.default = bool(default)
        self._local = threading.local()

    def __bool__(self) -> bool:
        return getattr(self._local, "value", self.default)

    def set(self, value: bool | None) -> None:
        if value is None:
            self._local.__dict__.pop("value", None)
        else:
            self._local.value = value

    def __repr__(self) -> str:
        return f"<per-thread switch, default {self.default}>"


_switch_lock = threading.Lock()


def _switch() -> _PerThreadSwitch | None:
    with _switch_lock:
        current = pynetdicom_config.STORE_SEND_CHUNKED_DATASET
        if isinstance(current, _PerThreadSwitch):
            return current
        if current is True:  # somebody turned streaming on for everyone: nothing to do
            return None
        switch = _PerThreadSwitch(bool(current))
        pynetdicom_config.STORE_SEND_CHUNKED_DATASET = switch  # type: ignore[assignment]
        return switch


class _chunked:
    """`with _chunked(): assoc.send_c_store(path)` streams the file as stored."""

    def __enter__(self) -> None:
        self.switch = _switch()
        if self.switch is not None:
            self.switch.set(True)

    def __exit__(self, *exc: object) -> None:
        if self.switch is not None:
            self.switch.set(None)


# --------------------------------------------------------------------------------------------
# What to send


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


def read_header(name: str, path: Path) -> StoreItem:
    """Plan one file from its File Meta Information, or raise Unsendable saying why."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise Unsendable("an empty file")
        with open(path, "rb") as fp:
            try:
                read_preamble(fp, False)
            except InvalidDicomError:
                return _read_raw_header(name, path, size)
            meta = read_dataset(fp, is_implicit_VR=False, is_little_endian=True,
                                stop_when=lambda tag, vr, length: tag.group != 2)
            offset = fp.tell()
    except Unsendable:
        raise
    except PermissionError:
        raise Unsendable("cannot read it: permission denied") from None
    except OSError as exc:
        raise Unsendable(f"cannot read it: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged headers
        raise Unsendable(f"a damaged DICOM file header ({_short(exc)})") from None
    missing = [k for k in ("TransferSyntaxUID", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID")
               if not meta.get(k)]
    if missing:
        raise Unsendable(f"a damaged DICOM file: its header lacks {', '.join(missing)}")
    sop_class = str(meta.MediaStorageSOPClassUID).strip("\0 ")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        raise Unsendable("a DICOMDIR (an index of a disc or folder), not an image")
    if offset >= size:
        raise Unsendable("a damaged DICOM file: it ends after its header, without a data set")
    return StoreItem(
        name=name,
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=str(meta.MediaStorageSOPInstanceUID).strip("\0 "),
        transfer_syntax=str(meta.TransferSyntaxUID).strip("\0 "),
        offset=offset,
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


def _short(exc: BaseException) -> str:
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

    def sequence(self, implicit: bool, depth: int) -> None:
        while True:
            position = self.fp.tell()
            if position >= self.size:
                raise Unsendable("a truncated DICOM file: it ends inside a sequence")
            tag, _, length = self.header(True)
            if tag == _SEQUENCE_END:
                return
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
        while True:
            position = self.fp.tell()
            if position >= self.size:
                raise Unsendable("a truncated DICOM file: its compressed pixel data ends early")
            tag, _, length = self.header(True)
            if tag == _SEQUENCE_END:
                return
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
    if _is_image_class(found_class) and not any(tag in walker.found for tag in _PIXEL_DATA):
        # a file cut between two elements reads as a whole one: an image without pixels is not
        raise Unsendable("a truncated DICOM file: an image without pixel data")


def _is_image_class(sop_class: str) -> bool:
    name = UID(sop_class).name
    return "Image Storage" in name and "Key Object" not in name


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


# --------------------------------------------------------------------------------------------
# Presentation contexts


@dataclass(frozen=True)
class ContextGroup:
    """SOP classes whose contexts go on the same associations (at most 128 contexts)."""

    sop_classes: frozenset[str]
    contexts: tuple[PresentationContext, ...]

    def __contains__(self, sop_class: str) -> bool:
        return sop_class in self.sop_classes


def contexts_for_class(sop_class: str, syntaxes: Iterable[str]) -> list[PresentationContext]:
    """Explicit and Implicit VR Little Endian, then each other syntax, each in its own context."""
    others = sorted({str(s) for s in syntaxes} - {str(u) for u in UNCOMPRESSED})
    return [build_context(sop_class, [syntax]) for syntax in (*UNCOMPRESSED, *others)]


def plan_contexts(keys: Iterable[tuple[str, str]], limit: int = MAX_CONTEXTS) -> list[ContextGroup]:
    """Groups of contexts for (SOP class, transfer syntax) pairs, in order of first appearance."""
    syntaxes: dict[str, set[str]] = {}
    for sop_class, syntax in keys:
        syntaxes.setdefault(sop_class, set()).add(syntax)
    groups: list[ContextGroup] = []
    classes: list[str] = []
    contexts: list[PresentationContext] = []
    for sop_class, used in syntaxes.items():
        own = contexts_for_class(sop_class, used)[:limit]
        if contexts and len(contexts) + len(own) > limit:
            groups.append(ContextGroup(frozenset(classes), tuple(contexts)))
            classes, contexts = [], []
        classes.append(sop_class)
        contexts.extend(own)
    if contexts:
        groups.append(ContextGroup(frozenset(classes), tuple(contexts)))
    return groups


# --------------------------------------------------------------------------------------------
# Sending


def _next_message_id(assoc: Any) -> int:
    counter = getattr(assoc, "_pacsbrowser_message_id", 0) % 65535 + 1
    assoc._pacsbrowser_message_id = counter
    return counter


def _store(assoc: Any, dataset: Any) -> Any:
    """assoc.send_c_store(), then let its reactor wake (see ae.settle_reactor): (status, seconds taken)."""
    started = time.monotonic()
    try:
        return assoc.send_c_store(dataset, msg_id=_next_message_id(assoc)), time.monotonic() - started
    finally:
        settle_reactor(assoc)


def _accepted(assoc: Any, sop_class: str) -> list[Any]:
    return [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == sop_class and cx.as_scu]


def syntax_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else uid


def class_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else f"SOP class {uid}"


def send_item(assoc: Any, item: StoreItem) -> StoreResult:
    """Send one planned item on `assoc` and say what happened.

    Returns a result for everything the PACS answered and for everything that cannot be sent
    (damaged, no fitting context, cannot be decompressed). Raises AssociationAborted or Timeout
    when the association broke before the PACS confirmed the file: it may then be sent again."""
    try:
        check_file(item)
    except Unsendable as exc:
        return item.result(StoreOutcome.SKIPPED, str(exc))
    accepted = _accepted(assoc, item.sop_class_uid)
    if not accepted:
        return item.result(StoreOutcome.FAILED, _refusal(assoc, item))
    syntax = UID(item.transfer_syntax)
    exact = [cx for cx in accepted if cx.transfer_syntax[0] == syntax]
    uncompressed = [cx for cx in accepted if cx.transfer_syntax[0] in UNCOMPRESSED]
    try:
        if exact and item.path is not None and item.offset >= 0:
            with _chunked():
                status = _store(assoc, item.path)
            return _answer(assoc, item, status, syntax, converted=False)
        if exact:
            status = _store(assoc, _load(item))
            return _answer(assoc, item, status, syntax, converted=False)
        if not uncompressed:
            offered = ", ".join(syntax_name(cx.transfer_syntax[0]) for cx in accepted)
            return item.result(StoreOutcome.FAILED,
                               f"the PACS accepts {class_name(item.sop_class_uid)} only as {offered}; "
                               f"this file is {syntax_name(syntax)} and cannot be converted to that")
        target = uncompressed[0].transfer_syntax[0]
        if syntax.is_transfer_syntax and not syntax.is_little_endian:
            return item.result(StoreOutcome.FAILED,
                               f"the PACS does not accept {syntax_name(syntax)} and this file cannot be "
                               f"converted to {syntax_name(target)}")
        ds = _load(item)
        converted = True
        if syntax.is_transfer_syntax and syntax.is_compressed:
            if item.dataset is not None:
                ds = copy.deepcopy(ds)
            try:
                ds.decompress(generate_instance_uid=False)
            except Exception as exc:  # noqa: BLE001 - a missing plugin, a corrupt codestream
                return item.result(StoreOutcome.FAILED,
                                   f"the PACS accepts only uncompressed images and this "
                                   f"{syntax_name(syntax)} file could not be decompressed ({_short(exc)})")
        status = _store(assoc, ds)
        return _answer(assoc, item, status, target, converted=converted)
    except Unsendable as exc:
        return item.result(StoreOutcome.SKIPPED, str(exc))
    except (AssociationAborted, Timeout):
        raise
    except (AttributeError, ValueError) as exc:  # pynetdicom refused it before sending anything
        return item.result(StoreOutcome.FAILED, f"could not be sent: {_short(exc)}")
    except RuntimeError as exc:  # pynetdicom: the association is no longer established
        if not assoc.is_established:
            raise AssociationAborted("The association with the PACS ended before the file was sent",
                                     detail=_short(exc)) from exc
        _abort_quietly(assoc)
        return item.result(StoreOutcome.FAILED, f"could not be sent: {_short(exc)}")
    except Exception as exc:  # noqa: BLE001 - a file that vanished, an encoding failure...
        # The message may have been half sent: the association's state is unknown, so end it.
        log.warning("sending %s failed: %s", phi(item.name), _short(exc))
        _abort_quietly(assoc)
        return item.result(StoreOutcome.FAILED, f"could not be sent: {_short(exc)}")


class SendInterrupted(Exception):
    """The association broke while `item` was on its way: the PACS did not confirm it."""

    def __init__(self, error: AssociationAborted | Timeout, item: StoreItem, confirmed: int) -> None:
        super().__init__(str(error))
        self.error, self.item, self.confirmed = error, item, confirmed


def send_items(assoc: Any, take: Callable[[], StoreItem | None], emit: Callable[[StoreResult], None],
               stop: threading.Event) -> int:
    """Send items from `take()` until it returns None, `stop` is set or the association ends;
    each result goes to `emit` as soon as the PACS answered. Returns how many were answered.
    Raises SendInterrupted (with the unconfirmed item) when the association broke."""
    answered = 0
    while not stop.is_set() and assoc.is_established:
        item = take()
        if item is None:
            break
        try:
            result = send_item(assoc, item)
        except (AssociationAborted, Timeout) as error:
            raise SendInterrupted(error, item, answered) from error
        answered += 1
        emit(result)
    return answered


def _refusal(assoc: Any, item: StoreItem) -> str:
    """Why no context for the item's class was accepted, in words."""
    rejected = [cx for cx in assoc.rejected_contexts if cx.abstract_syntax == item.sop_class_uid]
    if rejected and all(cx.result == 0x04 for cx in rejected):  # transfer syntaxes not supported
        offered = ", ".join(sorted({syntax_name(cx.transfer_syntax[0]) for cx in rejected}))
        return (f"the PACS accepts {class_name(item.sop_class_uid)} objects in none of the transfer syntaxes "
                f"this file can be sent in ({offered})")
    return f"the PACS does not accept {class_name(item.sop_class_uid)} objects"


def _abort_quietly(assoc: Any) -> None:
    try:
        if assoc.is_established:
            assoc.abort()
    except Exception:  # noqa: BLE001
        pass


def _load(item: StoreItem) -> Dataset:
    if item.dataset is not None:
        ds = item.dataset
        meta = getattr(ds, "file_meta", None)
        if meta is None or not meta.get("TransferSyntaxUID"):
            # pynetdicom needs the syntax in the file meta: give it one on a shallow copy
            ds = Dataset(ds)
            ds.file_meta = FileMetaDataset(meta or FileMetaDataset())
            ds.file_meta.TransferSyntaxUID = UID(item.transfer_syntax)
        return ds
    assert item.path is not None
    try:
        ds = dcmread(item.path, force=item.offset < 0)
    except Exception as exc:  # noqa: BLE001
        raise Unsendable(f"a damaged DICOM file ({_short(exc)})") from None
    if item.offset < 0:  # no file header: the syntax it was read in
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(item.transfer_syntax)
    return ds


def _answer(assoc: Any, item: StoreItem, sent: tuple[Any, float], syntax: str, *, converted: bool) -> StoreResult:
    status_ds, elapsed = sent
    if status_ds is None or "Status" not in status_ds:
        timeout = assoc.dimse_timeout
        if timeout and elapsed >= timeout * 0.95:  # pynetdicom aborts when the DIMSE timeout expires
            raise Timeout("waiting for the PACS to confirm the file", timeout)
        raise AssociationAborted("The PACS closed the association before confirming the file")
    code = int(status_ds.Status)
    comment = str(status_ds.get("ErrorComment", "") or "")
    category = code_to_category(code)
    _, words = status_words(code, "C-STORE")
    reason = words + (f" ({comment})" if comment else "")
    if category == "Success":
        outcome, reason = StoreOutcome.SUCCESS, ""
    elif category == "Warning":
        outcome = StoreOutcome.WARNING
    else:
        outcome = StoreOutcome.FAILED
    return item.result(outcome, reason, code, transfer_syntax=str(syntax), converted=converted)


__all__ = [
    "ContextGroup",
    "MAX_CONTEXTS",
    "SendInterrupted",
    "StoreItem",
    "Unsendable",
    "check_file",
    "class_name",
    "contexts_for_class",
    "dataset_item",
    "interrupt",
    "iter_sources",
    "plan_contexts",
    "read_header",
    "send_item",
    "send_items",
    "skipped",
    "syntax_name",
]
