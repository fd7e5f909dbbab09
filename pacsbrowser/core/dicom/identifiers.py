"""C-FIND identifiers: QueryKeys -> Dataset, and a response Dataset -> Patient/Study/Series/InstanceResult.

The only module that names DICOM attributes for queries. Keys arrive here already shaped by
core.query's matching rules (wildcards, case, date ranges); this module writes them into a dataset
with the return keys a results tree needs, and reads responses back without ever raising.

Character sets (PS3.5 6.1): the query carries (0008,0005); each response is read by its own
(0008,0005). When a response has none, or one that does not fit its bytes (a PACS that answers in
UTF-8 but says Latin-1, or says nothing), the text is read as UTF-8 when the bytes are valid UTF-8,
otherwise by the profile's fallback character set; bytes no character set can read become U+FFFD.
Decoding is done here, strictly, rather than by pydicom's lenient decoder, which only warns and so
cannot tell us to try the next candidate (and whose strictness is a process-wide setting).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any, Iterable

from pydicom.charset import CODES_TO_ENCODINGS, ESC, handled_encodings, python_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from ..records import (
    InstanceResult,
    PatientResult,
    PersonName,
    QueryKeys,
    QueryLevel,
    QueryModel,
    SeriesResult,
    StudyResult,
)

UTF8 = "ISO_IR 192"

FIND_MODELS = {
    QueryModel.PATIENT_ROOT: PatientRootQueryRetrieveInformationModelFind,
    QueryModel.STUDY_ROOT: StudyRootQueryRetrieveInformationModelFind,
}

# Return keys per level (asked for with an empty value): what a results tree shows and needs.
RETURN_KEYS: dict[QueryLevel, tuple[str, ...]] = {
    QueryLevel.PATIENT: (
        "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
        "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances",
    ),
    QueryLevel.STUDY: (
        "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
        "ReferringPhysicianName", "StudyDescription", "StudyID", "PatientName", "PatientID",
        "PatientBirthDate", "PatientSex", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    ),
    QueryLevel.SERIES: (
        "StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
        "BodyPartExamined", "SeriesDate", "SeriesTime", "NumberOfSeriesRelatedInstances",
    ),
    QueryLevel.INSTANCE: (
        "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "InstanceNumber",
        "NumberOfFrames",
    ),
}

# In the Patient Root model the patient's own attributes live at the patient level only: a study
# query there carries the patient's unique key (Patient ID) and nothing else of the patient.
_PATIENT_LEVEL_ONLY = ("PatientName", "PatientBirthDate", "PatientSex")

# QueryKeys field -> (keyword per level). Series/instance-level fields only mean something there.
_MATCHING: dict[QueryLevel, tuple[tuple[str, str], ...]] = {
    QueryLevel.PATIENT: (
        ("patient_name", "PatientName"), ("patient_id", "PatientID"), ("birth_date", "PatientBirthDate"),
        ("sex", "PatientSex"),
    ),
    QueryLevel.STUDY: (
        ("patient_name", "PatientName"), ("patient_id", "PatientID"), ("birth_date", "PatientBirthDate"),
        ("sex", "PatientSex"), ("study_date", "StudyDate"), ("study_time", "StudyTime"),
        ("accession_number", "AccessionNumber"), ("study_description", "StudyDescription"),
        ("referring_physician", "ReferringPhysicianName"), ("study_id", "StudyID"),
        ("study_instance_uid", "StudyInstanceUID"),
    ),
    QueryLevel.SERIES: (
        ("study_instance_uid", "StudyInstanceUID"), ("modality", "Modality"), ("series_number", "SeriesNumber"),
        ("series_description", "SeriesDescription"), ("body_part", "BodyPartExamined"),
        ("series_instance_uid", "SeriesInstanceUID"),
    ),
    QueryLevel.INSTANCE: (
        ("study_instance_uid", "StudyInstanceUID"), ("series_instance_uid", "SeriesInstanceUID"),
        ("sop_instance_uid", "SOPInstanceUID"), ("instance_number", "InstanceNumber"),
        ("sop_class_uid", "SOPClassUID"),
    ),
}


# --------------------------------------------------------------------------------------------
# Character sets


_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})
_SINGLE_VALUED_TEXT = frozenset({"ST", "LT", "UT"})
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


def charset_terms(value: object) -> tuple[str, ...]:
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
        self.declared = encodings_for(self.received) if self.received else None
        fallback_terms = charset_terms(self.fallback) or ("ISO_IR 100",)
        self.fallback_codecs = encodings_for(fallback_terms) or ["latin_1"]
        self.fallback_name = "\\".join(fallback_terms)
        self.received_name = "\\".join(self.received)
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
        values = [text] if vr in _SINGLE_VALUED_TEXT else text.split("\\")
        values = [_strip_text(v, vr) for v in values]
    return values[0] if len(values) == 1 else values


def _vr_of(tag: int, element: Any) -> str:
    vr = getattr(element, "VR", None)
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _decode_dataset(ds: Dataset, decoder: TextDecoder, depth: int = 0) -> None:
    for tag in list(ds.keys()):
        element = ds.get_item(tag)
        vr = _vr_of(tag, element)
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
        if vr not in _TEXT_VRS or not isinstance(value, (bytes, bytearray)):
            continue
        text = _decode_value(decoder, bytes(value), vr)
        ds[tag] = DataElement(tag, vr, text)
    if depth == 0 and decoder.used:
        ds.SpecificCharacterSet = UTF8


@dataclass(frozen=True)
class DecodedText:
    received: tuple[str, ...]
    used: str
    note: str


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
    except Exception:  # noqa: BLE001
        received = ()
    decoder = TextDecoder(received, fallback_charset)
    try:
        _decode_dataset(ds, decoder)
    except Exception as exc:  # noqa: BLE001 - a response we cannot fully read still makes a row
        decoder._note(f"the response could not be fully read ({exc.__class__.__name__})")
    return DecodedText(received, decoder.used_name, decoder.note)


# --------------------------------------------------------------------------------------------
# Reading values (raw bytes or decoded values, never raising)


def _raw_text(ds: Dataset, keyword: str) -> str:
    """The value of `keyword` as text ('' when absent or empty), without pydicom's conversions."""
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return ""
    try:
        value = ds.get_item(tag).value
    except Exception:  # noqa: BLE001
        return ""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin_1").rstrip("\x00").strip()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _multi(ds: Dataset, keyword: str) -> tuple[str, ...]:
    text = _raw_text(ds, keyword)
    return tuple(v.strip() for v in text.split("\\") if v.strip())


def parse_da(text: str) -> date | None:
    """A DICOM DA value (or the old 'YYYY.MM.DD' / ISO 'YYYY-MM-DD' forms) as a date; None if not one."""
    digits = text.strip().replace(".", "").replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def parse_tm(text: str) -> time | None:
    """A DICOM TM value ('HH', 'HHMM', 'HHMMSS', 'HHMMSS.FFFFFF', or the old 'HH:MM:SS') as a time."""
    text = text.strip().replace(":", "")
    if not text:
        return None
    main, _, fraction = text.partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        return None
    try:
        hour = int(main[0:2])
        minute = int(main[2:4]) if len(main) >= 4 else 0
        second = int(main[4:6]) if len(main) >= 6 else 0
        micro = int((fraction + "000000")[:6]) if fraction else 0
        return time(hour, minute, min(second, 59), micro)
    except ValueError:
        return None


def parse_is(text: str) -> int | None:
    text = text.strip().split("\\")[0].strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None


def _name(ds: Dataset, keyword: str) -> PersonName:
    return PersonName.from_dicom(_raw_text(ds, keyword).split("\\")[0])


# --------------------------------------------------------------------------------------------
# Keys -> Dataset


def resolve_key(key: str) -> tuple[int, str, str]:
    """(tag, VR, keyword or '') of an extra key given as a keyword, 'GGGGEEEE' or '(GGGG,EEEE)'."""
    text = key.strip()
    tag = tag_for_keyword(text)
    if tag is None:
        hexa = re.sub(r"[()\s,]", "", text)
        if not re.fullmatch(r"[0-9A-Fa-f]{8}", hexa):
            raise ValueError(f"unknown DICOM attribute {key!r}: give a keyword such as PatientSex, or a tag "
                             "such as 00100040 or (0010,0040)")
        tag = int(hexa, 16)
    tag = Tag(tag)
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        vr = "LO"  # a private or unknown attribute: sent as text
    if vr in ("US or SS", "OB or OW", "US or OW", "US or SS or OW"):
        vr = vr.split(" ")[0]
    return int(tag), vr, keyword_for_tag(tag) or ""


def _element(tag: int, vr: str, value: str) -> DataElement:
    if vr == "SQ":
        return DataElement(tag, vr, Sequence([]))
    if value == "":
        return DataElement(tag, vr, None if vr not in _TEXT_VRS | {"CS", "DA", "TM", "DT", "UI", "AE", "AS"}
                           else "")
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return DataElement(tag, vr, int(value))
    if vr in ("FL", "FD"):
        return DataElement(tag, vr, float(value))
    if "\\" in value and vr not in _SINGLE_VALUED_TEXT:
        return DataElement(tag, vr, value.split("\\"))
    return DataElement(tag, vr, value)


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


def build_identifier(keys: QueryKeys, *, charset: str = UTF8,
                     model: QueryModel = QueryModel.STUDY_ROOT) -> Dataset:
    """The C-FIND identifier for `keys` (already shaped by core.query's matching rules).

    Raises ValueError when a value cannot be written in `charset` or an extra key is unknown.
    """
    level = keys.level
    ds = Dataset()
    terms = charset_terms(charset)
    if terms:
        ds.SpecificCharacterSet = list(terms) if len(terms) > 1 else terms[0]
    ds.QueryRetrieveLevel = level.value
    wanted: dict[int, tuple[str, str]] = {}

    def put(keyword: str, value: str) -> None:
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        wanted[tag] = (str(dictionary_VR(tag)), value)

    return_keys = RETURN_KEYS[level]
    if model is QueryModel.PATIENT_ROOT and level is not QueryLevel.PATIENT:
        return_keys = tuple(k for k in return_keys if k not in _PATIENT_LEVEL_ONLY)
    for keyword in return_keys:
        put(keyword, "")
    for name, keyword in _MATCHING[level]:
        value = getattr(keys, name)
        if not value:
            continue
        if keyword not in return_keys and keyword in _PATIENT_LEVEL_ONLY:
            raise ValueError(f"{keyword} cannot be matched at the {level.name.lower()} level of the Patient Root "
                             "model: use the Study Root model")
        put(keyword, value)
    if level is QueryLevel.STUDY and keys.modalities:
        put("ModalitiesInStudy", "\\".join(keys.modalities))
    if model is QueryModel.PATIENT_ROOT and level is not QueryLevel.PATIENT:
        put("PatientID", keys.patient_id)
    for key, value in keys.extra:
        tag, vr, _ = resolve_key(key)
        wanted[tag] = (vr, value)
    for tag, (vr, value) in sorted(wanted.items()):
        if vr in _TEXT_VRS:
            check_encodable(value, charset)
        elif value and not value.isascii():
            raise ValueError(f"{keyword_for_tag(tag) or hex(tag)} only takes plain ASCII, not {value!r}")
        try:
            ds[tag] = _element(tag, vr, value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{keyword_for_tag(tag) or f'({tag >> 16:04X},{tag & 0xFFFF:04X})'}: "
                             f"{value!r} is not a valid {vr} value") from exc
    return ds


PATIENT_KEYWORDS = frozenset({"PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs",
                              "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName"})


def identifier_text(ds: Dataset, *, redact: bool = False) -> str:
    """The identifier as readable lines, '(0010,0010) PatientName = SMITH*', the exact keys sent.
    Holds patient data: for the user's eyes; with `redact`, patient values go through logs.phi()
    (shown only when patient data may be shown), for a log."""
    from ..logs import phi

    lines = []
    for tag in sorted(ds.keys()):
        element = ds[tag]
        name = element.keyword or "?"
        value = element.value
        if value is None or value == "":
            shown = "(return)"
        elif redact and name in PATIENT_KEYWORDS:
            shown = phi(value)
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            shown = "\\".join(str(v) for v in value)
        else:
            shown = str(value)
        lines.append(f"({tag.group:04X},{tag.element:04X}) {name} = {shown}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Response -> result records


def _common(decoded: DecodedText, ds: Dataset) -> dict[str, Any]:
    return {"dataset": ds, "charset_received": decoded.received, "charset_used": decoded.used,
            "charset_note": decoded.note}


def _counts(text: str) -> int | None:
    return parse_is(text)


def parse_result(level: QueryLevel, ds: Dataset, fallback_charset: str = "ISO_IR 100"
                 ) -> PatientResult | StudyResult | SeriesResult | InstanceResult:
    """Decode `ds` (in place) and read it as a result record of `level`. Never raises."""
    decoded = decode_response(ds, fallback_charset)
    try:
        return _read(level, ds, decoded)
    except Exception as exc:  # noqa: BLE001 - a last resort: one bad row must not end a query
        note = "; ".join(filter(None, (decoded.note, f"response could not be read ({exc.__class__.__name__})")))
        cls = {QueryLevel.PATIENT: PatientResult, QueryLevel.STUDY: StudyResult,
               QueryLevel.SERIES: SeriesResult, QueryLevel.INSTANCE: InstanceResult}[level]
        return cls(dataset=ds, charset_received=decoded.received, charset_used=decoded.used, charset_note=note)


def _read(level: QueryLevel, ds: Dataset, decoded: DecodedText):
    common = _common(decoded, ds)
    t = lambda keyword: _raw_text(ds, keyword)  # noqa: E731
    if level is QueryLevel.PATIENT:
        return PatientResult(
            patient_id=t("PatientID"), patient_name=_name(ds, "PatientName"),
            birth_date=parse_da(t("PatientBirthDate")), sex=t("PatientSex").upper(),
            issuer_of_patient_id=t("IssuerOfPatientID"),
            number_of_studies=_counts(t("NumberOfPatientRelatedStudies")),
            number_of_series=_counts(t("NumberOfPatientRelatedSeries")),
            number_of_instances=_counts(t("NumberOfPatientRelatedInstances")),
            **common,
        )
    if level is QueryLevel.STUDY:
        modalities = _multi(ds, "ModalitiesInStudy")
        return StudyResult(
            study_instance_uid=t("StudyInstanceUID"), patient_id=t("PatientID"),
            patient_name=_name(ds, "PatientName"), birth_date=parse_da(t("PatientBirthDate")),
            sex=t("PatientSex").upper(), study_date=parse_da(t("StudyDate")), study_time=parse_tm(t("StudyTime")),
            accession_number=t("AccessionNumber"), study_id=t("StudyID"),
            study_description=t("StudyDescription"), referring_physician=_name(ds, "ReferringPhysicianName"),
            modalities=modalities or None,
            number_of_series=_counts(t("NumberOfStudyRelatedSeries")),
            number_of_instances=_counts(t("NumberOfStudyRelatedInstances")),
            **common,
        )
    if level is QueryLevel.SERIES:
        return SeriesResult(
            series_instance_uid=t("SeriesInstanceUID"), study_instance_uid=t("StudyInstanceUID"),
            modality=t("Modality").upper(), series_number=parse_is(t("SeriesNumber")),
            series_description=t("SeriesDescription"), body_part=t("BodyPartExamined"),
            series_date=parse_da(t("SeriesDate")), series_time=parse_tm(t("SeriesTime")),
            number_of_instances=_counts(t("NumberOfSeriesRelatedInstances")),
            **common,
        )
    return InstanceResult(
        sop_instance_uid=t("SOPInstanceUID"), sop_class_uid=t("SOPClassUID"),
        series_instance_uid=t("SeriesInstanceUID"), study_instance_uid=t("StudyInstanceUID"),
        instance_number=parse_is(t("InstanceNumber")), number_of_frames=parse_is(t("NumberOfFrames")),
        **common,
    )


def fill_study_summary(ds: Dataset | None, modalities: tuple[str, ...], number_of_series: int | None,
                       number_of_instances: int | None) -> None:
    """Write what we found out about a study (from its series) into its response dataset where the
    PACS left it empty, so the dataset agrees with the StudyResult."""
    if ds is None:
        return
    if modalities and not _raw_text(ds, "ModalitiesInStudy"):
        ds.ModalitiesInStudy = list(modalities)
    if number_of_series is not None and not _raw_text(ds, "NumberOfStudyRelatedSeries"):
        ds.NumberOfStudyRelatedSeries = number_of_series
    if number_of_instances is not None and not _raw_text(ds, "NumberOfStudyRelatedInstances"):
        ds.NumberOfStudyRelatedInstances = number_of_instances


_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})


def identifier_to_json(ds: Dataset) -> dict[str, Any]:
    """A decoded response as a JSON-ready dict keyed by DICOM keyword ('GGGGEEEE' without one).

    Text as str (person names in DICOM form, 'SMITH^JOHN'), multiple values as lists, IS and DS as
    numbers when they are numbers, empty values as None. Never raises.
    """
    out: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        tag = Tag(tag)
        key = keyword_for_tag(tag) or f"{tag.group:04X}{tag.element:04X}"
        element = ds.get_item(tag)
        vr = _vr_of(tag, element)
        try:
            if vr == "SQ":
                items = ds[tag].value or []
                out[key] = [identifier_to_json(item) for item in items if isinstance(item, Dataset)]
                continue
            if vr in _NUMBER_VRS or vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
                value = ds[tag].value
                if isinstance(value, (bytes, bytearray)):
                    value = bytes(value).hex() or None
                elif type(value).__name__ == "MultiValue":
                    value = list(value)
                out[key] = value if value not in ("", b"") else None
                continue
            text = _raw_text(ds, keyword_for_tag(tag)) if keyword_for_tag(tag) else _raw_text_tag(ds, tag)
        except Exception:  # noqa: BLE001
            out[key] = None
            continue
        if text == "":
            out[key] = None
            continue
        values: list[Any] = [v.strip() for v in text.split("\\")] if vr not in _SINGLE_VALUED_TEXT else [text]
        if vr == "IS":
            values = [parse_is(v) if parse_is(v) is not None else v for v in values]
        elif vr == "DS":
            values = [_float_or_text(v) for v in values]
        out[key] = values[0] if len(values) == 1 else values
    return out


def _raw_text_tag(ds: Dataset, tag: int) -> str:
    value = ds.get_item(tag).value
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin_1").rstrip("\x00").strip()
    return str(value).strip()


def _float_or_text(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


__all__ = [
    "FIND_MODELS",
    "RETURN_KEYS",
    "DecodedText",
    "TextDecoder",
    "build_identifier",
    "canonical_term",
    "charset_terms",
    "check_encodable",
    "decode_response",
    "fill_study_summary",
    "identifier_text",
    "identifier_to_json",
    "parse_da",
    "parse_is",
    "parse_result",
    "parse_tm",
    "resolve_key",
]
