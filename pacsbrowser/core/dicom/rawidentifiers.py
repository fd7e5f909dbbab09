"""C-FIND response identifiers read from their bytes into result records, without a pydicom Dataset.

A C-FIND of 5,000 studies spent much of its time building a pydicom Dataset per response (pynetdicom's
decode, then our decoding of its text), to read some fifteen short values out of it. Here the
identifier's bytes (implicit or explicit VR little endian) are walked with `struct`, the text decoded by
core.dicom.charsets (`decode_elements`: the same TextDecoder, notes and fallback as `decode_response`)
and the record made by core.dicom.identifiers (`make_result`, as `parse_result` does): the same fields,
the same charset_received/used/note. The record's `dataset` is a `RawIdentifier`, built on first read
into exactly the Dataset `parse_result` would have left (pynetdicom's decode, then `decode_response`).

Anything this walk does not take exactly as pydicom would (another transfer syntax, a sequence, an
undefined length, an item tag, a value running past the end, bytes left over, a repeated tag, a first
element that would make pydicom switch between implicit and explicit VR, a VR pydicom would guess
about, a (0008,0005) value pydicom raises on) goes the pydicom way instead: pynetdicom's decode and
`parse_result`; so does any fault of the walk itself. An identifier pydicom cannot decode either is unreadable (None),
as pynetdicom counts it.
"""

from __future__ import annotations

import logging
import struct
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32
from pynetdicom.dsutils import decode

from ..records import DeferredDataset, InstanceResult, PatientResult, QueryLevel, SeriesResult, StudyResult
from .charsets import TEXT_VRS, decode_elements, decode_response, dictionary_vr, utf8_value
from .identifiers import RETURN_KEYS, bytes_text, make_result, parse_result, split_values, tag_of

log = logging.getLogger(__name__)

Result = PatientResult | StudyResult | SeriesResult | InstanceResult

_IMPLICIT = struct.Struct("<HHL").unpack_from
_EXPLICIT = struct.Struct("<HH2sH").unpack_from
_LONG = struct.Struct("<L").unpack_from
_SHORT_VRS = {str(vr).encode(): str(vr) for vr in EXPLICIT_VR_LENGTH_16}  # 2-byte length
_LONG_VRS = {str(vr).encode(): str(vr) for vr in EXPLICIT_VR_LENGTH_32}  # 2 reserved bytes, 4-byte length
_UNDEFINED = 0xFFFFFFFF

Elements = dict[int, tuple[str, bytes]]


_DICTIONARY_VRS: dict[int, str] = {}  # keyed by plain int: a pydicom BaseTag key compares in Python


def _dictionary_vr(tag: int) -> str:
    vr = _DICTIONARY_VRS[tag] = dictionary_vr(tag)
    return vr


def _looks_explicit(raw: bytes) -> bool:
    """pydicom's test of the first element (filereader._is_implicit_vr): two capital letters after the tag."""
    return 0x40 < raw[4] < 0x5B and 0x40 < raw[5] < 0x5B


def walk(raw: bytes, implicit: bool) -> Elements | None:
    """The top-level elements of a little endian identifier, tag -> (VR, value), in the order they
    came; None when it is not one this walk reads exactly as pydicom would (see the module doc)."""
    end = len(raw)
    if end >= 6 and _looks_explicit(raw) == implicit:
        return None  # pydicom would switch encodings here
    elements: Elements = {}
    pos = 0
    while pos < end:
        if end - pos < 8:
            return None  # bytes left over
        start = pos
        if implicit:
            group, elem, length = _IMPLICIT(raw, pos)
            pos += 8
            tag = group << 16 | elem
            vr = _DICTIONARY_VRS.get(tag) or _dictionary_vr(tag)
        else:
            group, elem, code, length = _EXPLICIT(raw, pos)
            pos += 8
            tag = group << 16 | elem
            vr = _SHORT_VRS.get(code) or ""
            if not vr:
                vr = _LONG_VRS.get(code) or ""
                if not vr or end - pos < 4:
                    return None  # a VR pydicom would guess about, or no room for the length
                length = _LONG(raw, pos)[0]
                pos += 4
        if group == 0xFFFE or vr == "SQ" or length == _UNDEFINED or pos + length > end or tag in elements:
            return None
        elements[tag] = (vr, raw[pos:pos + length])
        pos += length
        if tag == _CHARSET and not _charset_readable(raw[start:pos], implicit):
            return None
    return elements


_CHARSET = 0x00080005
_CHARSETS_READ: dict[tuple[bytes, bool], bool] = {}


def _charset_readable(element: bytes, implicit: bool) -> bool:
    """Whether pydicom reads this (0008,0005) element without raising (it does for some damaged
    values, a NUL in a term for one): then the whole identifier is unreadable, and the pydicom way
    says so. Asked of pydicom itself, once per distinct value."""
    key = (element, implicit)
    known = _CHARSETS_READ.get(key)
    if known is None:
        try:  # pydicom's warnings about an odd value come once here, not once per response
            decode(BytesIO(element), implicit, True, False)
        except Exception:  # noqa: BLE001 - any failure: let the pydicom way meet it
            known = False
        else:
            known = True
        if len(_CHARSETS_READ) < 1024:
            _CHARSETS_READ[key] = known
    return known


class RawIdentifier(DeferredDataset):
    """A response identifier's bytes; `build()` gives the Dataset `parse_result` would have left."""

    __slots__ = ("raw", "implicit", "fallback")

    def __init__(self, raw: bytes, implicit: bool, fallback: str) -> None:
        self.raw, self.implicit, self.fallback = raw, implicit, fallback

    def build(self) -> Dataset:
        try:
            ds = decode(BytesIO(self.raw), self.implicit, True, False)
        except Exception as exc:  # noqa: BLE001 - walked already, so not expected; a result keeps a dataset
            log.warning("a response identifier could not be decoded again: %s", exc.__class__.__name__)
            return Dataset()
        decode_response(ds, self.fallback)
        return ds

    def __getstate__(self) -> tuple[bytes, bool, str]:
        return self.raw, self.implicit, self.fallback

    def __setstate__(self, state: tuple[bytes, bool, str]) -> None:
        self.raw, self.implicit, self.fallback = state


# the keywords make_result reads, by tag (identifiers.tag_of, without a call)
_TAGS: dict[str, int] = {}
for _keywords in RETURN_KEYS.values():
    _TAGS.update((keyword, tag) for keyword in _keywords if (tag := tag_of(keyword)) is not None)


def record_from_elements(level: QueryLevel, elements: Elements, dataset: Any, fallback: str) -> Result:
    """The record `parse_result` makes of the same identifier (see the module doc)."""
    decoded = decode_elements(elements, fallback)
    texts = decoded.texts

    def raw_text(tag: int) -> str:
        """What identifiers._tag_text reads in the decoded Dataset: text values re-encoded as UTF-8,
        the others as they came."""
        vr, value = elements[tag]
        if vr in TEXT_VRS:
            text = texts.get(tag)
            if text is not None:
                value = utf8_value(text)
        return bytes_text(value) if value else ""

    def text(keyword: str) -> str:
        tag = _TAGS.get(keyword) or tag_of(keyword)
        value = texts.get(tag)  # type: ignore[arg-type]  # None (an unknown keyword) finds nothing
        if value is None:
            return raw_text(tag) if tag in elements else ""
        return (value if value.__class__ is str else "\\".join(value)).strip()

    def multi(keyword: str) -> tuple[str, ...]:
        tag = tag_of(keyword)
        if tag is None or tag not in elements:
            return ()
        return split_values(raw_text(tag))

    return make_result(level, decoded, text, multi, dataset)


def read_result(level: QueryLevel, raw: bytes, *, implicit: bool, little: bool = True, deflated: bool = False,
                fallback: str = "ISO_IR 100") -> Result | None:
    """A C-FIND response identifier as a result record of `level`, as `parse_result` reads it after
    pynetdicom's decode; None when pydicom cannot decode it either (an unreadable response)."""
    try:
        elements = walk(raw, implicit) if little and not deflated else None
        if elements is not None:
            return record_from_elements(level, elements, RawIdentifier(raw, implicit, fallback), fallback)
    except Exception as exc:  # noqa: BLE001 - not expected (both never raise): the pydicom way still reads it
        log.warning("a response identifier could not be walked (%s): read the pydicom way", exc.__class__.__name__)
    try:
        ds = decode(BytesIO(raw), implicit, little, deflated)
    except Exception as exc:  # noqa: BLE001 - pynetdicom's own reaction: the identifier is unreadable
        log.debug("a response identifier could not be decoded: %s", exc.__class__.__name__)
        return None
    return parse_result(level, ds, fallback)


__all__ = ["RawIdentifier", "read_result", "record_from_elements", "walk"]
