"""Character sets of C-FIND identifiers (PS3.5 6.1): reading a response's text, checking a query's.

The query carries (0008,0005); each response is read by its own (0008,0005). When a response has
none, or one that does not fit its bytes (a PACS that answers in UTF-8 but says Latin-1, or says
nothing), the text is read as UTF-8 when the bytes are valid UTF-8, otherwise by the profile's
fallback character set; bytes no character set can read become U+FFFD. Decoding is done here,
strictly, rather than by pydicom's lenient decoder, which only warns and so cannot tell us to try
the next candidate (and whose strictness is a process-wide setting).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydicom.charset import CODES_TO_ENCODINGS, ESC, convert_encodings, handled_encodings, python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

UTF8 = "ISO_IR 192"

TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})
SINGLE_VALUED_TEXT = frozenset({"ST", "LT", "UT"})
_PN_DELIMITERS = {0x5E}
_TEXT_DELIMITERS = {0x0D, 0x0A, 0x09, 0x0C, 0x5C}
# Python codecs that read one byte per character: any byte string "decodes", so a valid
# multi-byte UTF-8 string declared as one of these is taken to be mislabelled UTF-8.
_SINGLE_BYTE = frozenset({
    "ascii", "latin_1", "iso8859", "iso8859_2", "iso8859_3", "iso8859_4", "iso_ir_126", "iso_ir_127",
    "iso_ir_138", "iso_ir_144", "iso_ir_148", "iso_ir_166",
})
# Names PACS write that are not DICOM terms, and a few common misspellings.
_ALIASES = {
    "UTF8": UTF8, "UTF-8": UTF8, "ISO-IR 192": UTF8, "ISO_IR192": UTF8, "ISO IR 192": UTF8,
    "LATIN1": "ISO_IR 100", "LATIN-1": "ISO_IR 100", "ISO-8859-1": "ISO_IR 100", "ISO8859-1": "ISO_IR 100",
    "GB 18030": "GB18030", "ISO_IR 58": "ISO 2022 IR 58",
}


def charset_terms(value: Any) -> tuple[str, ...]:
    """(0008,0005) as a tuple of terms ('' for the default repertoire); () when absent or empty."""
    if value is None:
        return ()
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if isinstance(value, str):
        parts = value.split("\\")
    else:
        parts = [str(v) for v in value]
    terms = tuple(p.strip() for p in parts)
    return terms if any(terms) else ()


def canonical_term(term: str) -> str | None:
    """The DICOM defined term for `term` (tolerating common misspellings), or None if unknown."""
    text = term.strip().upper()
    if text in ("", "ISO_IR 6", "ISO 2022 IR 6"):
        return text or ""
    if text in python_encoding:
        return text
    if text in _ALIASES:
        return _ALIASES[text]
    match = re.fullmatch(r"ISO[ _-]?(2022)?[ _-]?IR[ _-]?(\d+)", text)
    if match:
        candidate = f"ISO 2022 IR {match.group(2)}" if match.group(1) else f"ISO_IR {match.group(2)}"
        if candidate in python_encoding:
            return candidate
    return None


def _codec(term: str) -> str:
    """Python codec of a canonical term; the default repertoire is strict ASCII here."""
    if term in ("", "ISO_IR 6", "ISO 2022 IR 6"):
        return "ascii"
    return python_encoding[term]


def encodings_for(terms: Iterable[str]) -> list[str] | None:
    """Python codecs for the terms of a (0008,0005) value, or None if any term is unknown."""
    codecs: list[str] = []
    for term in terms:
        canonical = canonical_term(term)
        if canonical is None:
            return None
        codecs.append(_codec(canonical))
    return codecs or None


def _strict_decode(raw: bytes, encodings: list[str], delimiters: set[int]) -> str:
    """Decode like pydicom.charset.decode_bytes, but raise on anything it would only warn about."""
    if ESC not in raw:
        return raw.decode(encodings[0])
    out = []
    for fragment in re.findall(b"(^[^\x1b]+|[\x1b][^\x1b]*)", raw):
        if not fragment.startswith(ESC):
            out.append(fragment.decode(encodings[0]))
            continue
        length = 4 if fragment.startswith((b"\x1b$(", b"\x1b$)")) else 3
        codec = CODES_TO_ENCODINGS.get(fragment[:length])
        if codec is None or (codec not in encodings and codec != "iso8859"):
            raise UnicodeDecodeError("iso2022", fragment, 0, length, "escape sequence not declared")
        if codec == "iso8859":
            codec = "ascii"
        if codec in handled_encodings:
            out.append(fragment.decode(codec))
            continue
        body = fragment[length:]
        cut = next((i for i, byte in enumerate(body) if byte in delimiters), None)
        if cut is None:
            out.append(body.decode(codec))
        else:
            out.append(body[:cut].decode(codec) + body[cut:].decode(encodings[0]))
    return "".join(out)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _decoder_setup(received: tuple[str, ...], fallback: str
                   ) -> tuple[list[str] | None, list[str], str, str]:
    """(codecs of the received terms or None, codecs of the fallback, its name, the received name).
    The lists are shared between decoders: read, never changed."""
    declared = encodings_for(received) if received else None
    fallback_terms = charset_terms(fallback) or ("ISO_IR 100",)
    return (declared, encodings_for(fallback_terms) or ["latin_1"], "\\".join(fallback_terms),
            "\\".join(received))


@dataclass
class TextDecoder:
    """Reads the text of one response: its own (0008,0005) first, then UTF-8, then the fallback.

    `used` collects the character sets actually used, `notes` what the user should know.
    """

    received: tuple[str, ...]
    fallback: str = "ISO_IR 100"
    used: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # the same few (received, fallback) pairs come with every response of a find: worked out once
        self.declared, self.fallback_codecs, self.fallback_name, self.received_name = _decoder_setup(
            self.received, self.fallback)
        if self.received and self.declared is None:
            self._note(f"unknown Specific Character Set {self.received_name!r}")

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def decode(self, raw: bytes, delimiters: set[int]) -> str:
        if not raw:
            return ""
        if raw.isascii() and ESC not in raw:
            return raw.decode("ascii")
        declared = self.declared
        if declared:
            if ESC not in raw and declared[0] in _SINGLE_BYTE and len(declared) == 1 and _is_utf8(raw):
                self.used.add(UTF8)
                self._note(f"the PACS said {self.received_name or 'ISO_IR 6'} but sent UTF-8: read as UTF-8")
                return raw.decode("utf-8")
            try:
                text = _strict_decode(raw, declared, delimiters)
            except (UnicodeError, LookupError):
                self._note(f"text is not valid {self.received_name or 'ISO_IR 6'}")
            else:
                self.used.add(self.received_name or "ISO_IR 6")
                return text
        elif not self.received:
            self._note("the PACS sent no Specific Character Set")
        if ESC not in raw and _is_utf8(raw):
            self.used.add(UTF8)
            self._note("read as UTF-8")
            return raw.decode("utf-8")
        try:
            text = _strict_decode(raw, self.fallback_codecs, delimiters)
        except (UnicodeError, LookupError):
            pass
        else:
            self.used.add(self.fallback_name)
            self._note(f"read as {self.fallback_name} (the profile's fallback)")
            return text
        codec = (declared or self.fallback_codecs)[0]
        self.used.add(self.received_name or self.fallback_name)
        self._note("some characters could not be read and were replaced")
        try:
            return raw.decode(codec, errors="replace")
        except LookupError:
            return raw.decode("latin_1")

    @property
    def used_name(self) -> str:
        if not self.used:
            return self.received_name or "ISO_IR 6"
        return " + ".join(sorted(self.used))

    @property
    def note(self) -> str:
        if not self.notes:
            return ""
        # "no character set" and "read as UTF-8" make one sentence
        return "; ".join(self.notes)


def _strip_text(text: str, vr: str) -> str:
    text = text.rstrip("\x00")
    return text.rstrip(" ") if vr in ("ST", "LT", "UT") else text.strip(" ")


def _decode_value(decoder: TextDecoder, raw: bytes, vr: str) -> str | list[str]:
    if vr == "PN":
        groups = [decoder.decode(g, _PN_DELIMITERS) for g in raw.rstrip(b"\x00 ").split(b"=")]
        values = "=".join(groups).split("\\")
        values = [v.strip(" ") for v in values]
    else:
        text = decoder.decode(raw, _TEXT_DELIMITERS)
        values = [text] if vr in SINGLE_VALUED_TEXT else text.split("\\")
        values = [_strip_text(v, vr) for v in values]
    return values[0] if len(values) == 1 else values


def vr_of(tag: int, element: Any) -> str:
    vr = getattr(element, "VR", None)
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def utf8_value(text: str | list[str]) -> bytes:
    """A decoded value as the UTF-8 bytes of an element (values joined by '\\', even length)."""
    raw = (text if isinstance(text, str) else "\\".join(text)).encode("utf-8")
    return raw + b" " if len(raw) % 2 else raw


_VRS: dict[int, str] = {}


def dictionary_vr(tag: int) -> str:
    """The dictionary's VR of `tag` ('UN' when it has none), cached: the VR of an element read in
    the implicit VR transfer syntax."""
    try:
        return _VRS[tag]
    except KeyError:
        vr = _VRS[tag] = vr_of(tag, None)
        return vr


def _vr_of_raw(tag: int, element: RawDataElement) -> str:
    """The VR of a raw element (the dictionary's, cached, when the transfer syntax is implicit)."""
    if element.VR:
        return str(element.VR)
    return dictionary_vr(tag)


def _plain_text(value: bytes) -> str:
    """A value of a VR without character set (CS, DA, UI, IS...) as text, for the result records."""
    return value.decode("latin_1").rstrip("\x00").strip()


def _is_plain(vr: str) -> bool:
    return vr not in _BINARY_VRS and " or " not in vr


def _decode_dataset(ds: Dataset, decoder: TextDecoder, depth: int = 0,
                    texts: dict[int, str | list[str]] | None = None) -> None:
    """Decode the text values of `ds` in place. At the top level an element still in its raw form
    (how pynetdicom hands a response over) stays raw, re-encoded as UTF-8 under (0008,0005) ISO_IR
    192: building a pydicom DataElement for each (validation, conversion) was much of a C-FIND's
    time per response. The values also go to `texts` (tag -> text; other VRs as their ASCII text),
    for the result records."""
    replaced = False
    last_raw: RawDataElement | None = None
    raw_items = ds._dict
    for tag in list(raw_items):
        element = raw_items[tag]
        if depth == 0 and isinstance(element, RawDataElement):
            vr = _vr_of_raw(tag, element)
            value = element.value
            if vr != "SQ" and isinstance(value, bytes):
                if vr in TEXT_VRS:
                    text = _decode_value(decoder, value, vr)
                    raw = utf8_value(text)
                    raw_items[tag] = last_raw = element._replace(VR=vr, value=raw, length=len(raw))  # read lazily
                    replaced = True
                elif texts is not None and _is_plain(vr):
                    text = _plain_text(value)
                else:
                    continue
                if texts is not None:
                    texts[tag] = text
                continue
        element = ds.get_item(tag)
        vr = vr_of(tag, element)
        value = getattr(element, "value", None)
        if vr == "SQ":
            if depth >= 8:
                continue
            try:
                items = ds[tag].value  # parses a raw sequence; its items stay raw
            except Exception:  # noqa: BLE001 - a broken sequence must not break the result
                decoder._note("a sequence in the response could not be read")
                del ds[tag]
                continue
            for item in items or ():
                if isinstance(item, Dataset):
                    _decode_dataset(item, decoder, depth + 1)
            continue
        if vr not in TEXT_VRS or not isinstance(value, (bytes, bytearray)):
            continue
        text = _decode_value(decoder, bytes(value), vr)
        if texts is not None:
            texts[tag] = text
        ds[tag] = DataElement(tag, vr, text)
    if depth == 0 and (decoder.used or replaced):
        charset = raw_items.get(_CHARSET_TAG)
        if isinstance(charset, RawDataElement):  # as raw as the rest (a DataElement costs)
            raw_items[_CHARSET_TAG] = charset._replace(VR="CS", value=b"ISO_IR 192", length=10)
        elif charset is None and isinstance(last_raw, RawDataElement):  # none sent: a raw one like the others
            raw_items[_CHARSET_TAG] = last_raw._replace(tag=_CHARSET_TAG, VR="CS", value=b"ISO_IR 192", length=10,
                                                        value_tell=0)
        else:
            ds.SpecificCharacterSet = UTF8
    if replaced:  # pydicom converts a raw element with the character set it was read in: now UTF-8
        implicit, little = ds.original_encoding
        ds.set_original_encoding(implicit, little, convert_encodings([UTF8]))


_CHARSET_TAG = Tag(0x00080005)
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD",
                         "AT", "SQ"})


@dataclass(frozen=True)
class DecodedText:
    received: tuple[str, ...]
    used: str
    note: str
    texts: dict[int, str | list[str]] = field(default_factory=dict)  # top-level text values, decoded


def decode_response(ds: Dataset, fallback_charset: str = "ISO_IR 100") -> DecodedText:
    """Decode every text value of a response identifier in place (never raises).

    Text elements become str values and (0008,0005) becomes ISO_IR 192, so the dataset reads and
    re-encodes losslessly; what the PACS declared and what was used are returned.
    """
    received: tuple[str, ...] = ()
    try:
        element = ds.get_item(0x00080005)
        if element is not None:
            received = charset_terms(element.value)
    except Exception:  # a damaged (0008,0005) decodes with the fallback character set
        received = ()
    decoder = TextDecoder(received, fallback_charset)
    texts: dict[int, str | list[str]] = {}
    try:
        _decode_dataset(ds, decoder, texts=texts)
    except Exception as exc:  # noqa: BLE001 - a response we cannot fully read still makes a row
        decoder._note(f"the response could not be fully read ({exc.__class__.__name__})")
    return DecodedText(received, decoder.used_name, decoder.note, texts)


def decode_elements(elements: dict[int, tuple[str, bytes]], fallback_charset: str = "ISO_IR 100") -> DecodedText:
    """What `decode_response` finds in a response, from its top-level elements as read off the wire
    (tag -> (VR, value bytes), in the order they came; no sequence among them): the same character
    set, notes and decoded texts, without a Dataset. Never raises."""
    charset = elements.get(_CHARSET_TAG)
    received = charset_terms(charset[1]) if charset is not None else ()
    decoder = TextDecoder(received, fallback_charset)
    texts: dict[int, str | list[str]] = {}
    try:
        for tag, (vr, value) in elements.items():
            if vr in TEXT_VRS:
                if value.isascii() and ESC not in value:  # _decode_value's result, without its calls
                    if vr == "PN":
                        values = [v.strip(" ") for v in value.rstrip(b"\x00 ").decode("ascii").split("\\")]
                    else:
                        text = value.decode("ascii")
                        if vr in SINGLE_VALUED_TEXT:
                            values = [text.rstrip("\x00").rstrip(" ")]
                        else:
                            values = [v.rstrip("\x00").strip(" ") for v in text.split("\\")]
                    texts[tag] = values[0] if len(values) == 1 else values
                else:
                    texts[tag] = _decode_value(decoder, value, vr)
            elif vr not in _BINARY_VRS and " or " not in vr:
                texts[tag] = value.decode("latin_1").rstrip("\x00").strip()
    except Exception as exc:  # noqa: BLE001 - as decode_response: a response we cannot fully read still makes a row
        decoder._note(f"the response could not be fully read ({exc.__class__.__name__})")
    return DecodedText(received, decoder.used_name, decoder.note, texts)


def check_encodable(text: str, charset: str) -> None:
    """Raise ValueError (in words) when `text` cannot be written in the query's character set."""
    if not text or text.isascii():
        return
    codecs = encodings_for(charset_terms(charset)) or ["ascii"]
    if codecs[0] in ("ascii",) and len(codecs) == 1:
        raise ValueError(f"{text!r} has characters outside the default character set; the profile's query "
                         "character set must be ISO_IR 192 (UTF-8) or another that holds them")
    for codec in codecs:
        if codec in ("iso2022_jp", "iso2022_jp_2"):
            codec = "iso2022_jp_2"
        try:
            text.encode(codec)
            return
        except (UnicodeError, LookupError):
            continue
    raise ValueError(f"{text!r} cannot be written in {charset}: set the profile's query character set to "
                     "ISO_IR 192 (UTF-8)")


__all__ = [
    "SINGLE_VALUED_TEXT",
    "TEXT_VRS",
    "UTF8",
    "DecodedText",
    "TextDecoder",
    "canonical_term",
    "charset_terms",
    "check_encodable",
    "decode_elements",
    "decode_response",
    "dictionary_vr",
    "encodings_for",
    "utf8_value",
    "vr_of",
]
