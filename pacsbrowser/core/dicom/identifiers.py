"""C-FIND identifiers: QueryKeys -> Dataset, and a response Dataset -> Patient/Study/Series/InstanceResult.

The only module that names DICOM attributes for queries. Keys arrive here already shaped by
core.matching's rules (wildcards, case, date ranges); this module writes them into a dataset
with the return keys a results tree needs, and reads responses back without ever raising. Their
text is decoded by core.dicom.charsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, time
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

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
from .charsets import (
    SINGLE_VALUED_TEXT,
    TEXT_VRS,
    UTF8,
    DecodedText,
    charset_terms,
    check_encodable,
    decode_response,
    vr_of,
)

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
# Reading values (raw bytes or decoded values, never raising)


_TAGS: dict[str, int | None] = {}


def tag_of(keyword: str) -> int | None:
    try:
        return _TAGS[keyword]
    except KeyError:
        tag = _TAGS[keyword] = tag_for_keyword(keyword)
        return tag


def _raw_text(ds: Dataset, keyword: str) -> str:
    """The value of `keyword` as text ('' when absent or empty), without pydicom's conversions."""
    tag = tag_of(keyword)
    return "" if tag is None else _tag_text(ds, tag)


def _tag_text(ds: Dataset, tag: int) -> str:
    if tag not in ds:
        return ""
    try:
        value = ds.get_item(tag).value
    except Exception:  # a damaged element reads as empty; it never fails the whole result
        return ""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):  # still raw: ASCII, or text decode_response made UTF-8
        return bytes_text(bytes(value))
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def bytes_text(value: bytes) -> str:
    """A raw value as text: UTF-8 (ASCII, or text decode_response re-encoded), else Latin-1."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin_1")
    return text.rstrip("\x00").strip()


def split_values(text: str) -> tuple[str, ...]:
    """The non-empty values of a multi-valued text."""
    return tuple(v.strip() for v in text.split("\\") if v.strip())


def _multi(ds: Dataset, keyword: str) -> tuple[str, ...]:
    return split_values(_raw_text(ds, keyword))


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
        return DataElement(tag, vr, None if vr not in TEXT_VRS | {"CS", "DA", "TM", "DT", "UI", "AE", "AS"}
                           else "")
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return DataElement(tag, vr, int(value))
    if vr in ("FL", "FD"):
        return DataElement(tag, vr, float(value))
    if "\\" in value and vr not in SINGLE_VALUED_TEXT:
        return DataElement(tag, vr, value.split("\\"))
    return DataElement(tag, vr, value)


def build_identifier(keys: QueryKeys, *, charset: str = UTF8,
                     model: QueryModel = QueryModel.STUDY_ROOT) -> Dataset:
    """The C-FIND identifier for `keys` (already shaped by core.matching's rules).

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
        if vr in TEXT_VRS:
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


def identifier_keys(ds: Dataset, *, redact: bool = False) -> list[tuple[str, str, str | None]]:
    """('(GGGG,EEEE)', keyword or '?', value as text) of each key of an identifier, in tag order; the
    value is None for a return key (asked back, sent empty). Holds patient data: with `redact`,
    patient values go through logs.phi() (shown only when patient data may be shown), for a log."""
    from ..logs import phi

    keys: list[tuple[str, str, str | None]] = []
    for tag in sorted(ds.keys()):
        element = ds[tag]
        name = element.keyword or "?"
        value = element.value
        shown: str | None
        if value is None or value == "":
            shown = None
        elif redact and name in PATIENT_KEYWORDS:
            shown = phi(value)
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            shown = "\\".join(str(v) for v in value)
        else:
            shown = str(value)
        keys.append((f"({tag.group:04X},{tag.element:04X})", name, shown))
    return keys


def identifier_text(ds: Dataset, *, redact: bool = False) -> str:
    """The identifier as readable lines, '(0010,0010) PatientName = SMITH*', the exact keys sent
    (patient data: see `identifier_keys`)."""
    return "\n".join(f"{tag} {name} = {'(return)' if shown is None else shown}"
                     for tag, name, shown in identifier_keys(ds, redact=redact))


# --------------------------------------------------------------------------------------------
# Response -> result records


def _counts(text: str) -> int | None:
    return parse_is(text)


def parse_result(level: QueryLevel, ds: Dataset, fallback_charset: str = "ISO_IR 100"
                 ) -> PatientResult | StudyResult | SeriesResult | InstanceResult:
    """Decode `ds` (in place) and read it as a result record of `level`. Never raises."""
    decoded = decode_response(ds, fallback_charset)
    texts = decoded.texts

    def text(keyword: str) -> str:
        tag = tag_of(keyword)
        value = texts.get(tag) if tag is not None else None
        if value is None:
            return _raw_text(ds, keyword)
        return (value if isinstance(value, str) else "\\".join(value)).strip()

    return make_result(level, decoded, text, lambda keyword: _multi(ds, keyword), ds)


def make_result(level: QueryLevel, decoded: DecodedText, text: Callable[[str], str],
                multi: Callable[[str], tuple[str, ...]], dataset: Any
                ) -> PatientResult | StudyResult | SeriesResult | InstanceResult:
    """The result record of `level` from a decoded response: `text(keyword)` its value as text ('' when
    absent), `multi(keyword)` its values; `dataset` what the record's `dataset` gives (a Dataset, or a
    DeferredDataset that builds it when first read). Never raises."""
    try:
        return _read(level, decoded, text, multi, dataset)
    except Exception as exc:  # noqa: BLE001 - a last resort: one bad row must not end a query
        note = "; ".join(filter(None, (decoded.note, f"response could not be read ({exc.__class__.__name__})")))
        cls = {QueryLevel.PATIENT: PatientResult, QueryLevel.STUDY: StudyResult,
               QueryLevel.SERIES: SeriesResult, QueryLevel.INSTANCE: InstanceResult}[level]
        return cls(dataset=dataset, charset_received=decoded.received, charset_used=decoded.used,
                   charset_note=note)


def _read(level: QueryLevel, decoded: DecodedText, t: Callable[[str], str],
          multi: Callable[[str], tuple[str, ...]], dataset: Any):
    common = {"dataset": dataset, "charset_received": decoded.received, "charset_used": decoded.used,
              "charset_note": decoded.note}

    def name(keyword: str) -> PersonName:
        return PersonName.from_dicom(t(keyword).split("\\")[0])

    if level is QueryLevel.PATIENT:
        return PatientResult(
            patient_id=t("PatientID"), patient_name=name("PatientName"),
            birth_date=parse_da(t("PatientBirthDate")), sex=t("PatientSex").upper(),
            issuer_of_patient_id=t("IssuerOfPatientID"),
            number_of_studies=_counts(t("NumberOfPatientRelatedStudies")),
            number_of_series=_counts(t("NumberOfPatientRelatedSeries")),
            number_of_instances=_counts(t("NumberOfPatientRelatedInstances")),
            **common,
        )
    if level is QueryLevel.STUDY:
        modalities = multi("ModalitiesInStudy")
        return StudyResult(
            study_instance_uid=t("StudyInstanceUID"), patient_id=t("PatientID"),
            patient_name=name("PatientName"), birth_date=parse_da(t("PatientBirthDate")),
            sex=t("PatientSex").upper(), study_date=parse_da(t("StudyDate")), study_time=parse_tm(t("StudyTime")),
            accession_number=t("AccessionNumber"), study_id=t("StudyID"),
            study_description=t("StudyDescription"), referring_physician=name("ReferringPhysicianName"),
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
        vr = vr_of(tag, element)
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
            text = _tag_text(ds, tag)
        except Exception:  # an undecodable value is null in the JSON, never a failed query
            out[key] = None
            continue
        if text == "":
            out[key] = None
            continue
        values: list[Any] = [v.strip() for v in text.split("\\")] if vr not in SINGLE_VALUED_TEXT else [text]
        if vr == "IS":
            values = [parse_is(v) if parse_is(v) is not None else v for v in values]
        elif vr == "DS":
            values = [_float_or_text(v) for v in values]
        out[key] = values[0] if len(values) == 1 else values
    return out


def _float_or_text(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


__all__ = [
    "RETURN_KEYS",
    "build_identifier",
    "bytes_text",
    "fill_study_summary",
    "identifier_keys",
    "identifier_text",
    "identifier_to_json",
    "make_result",
    "parse_da",
    "parse_is",
    "parse_result",
    "parse_tm",
    "resolve_key",
    "split_values",
    "tag_of",
]
