"""The archive answers C-FIND identifiers: PS3.4 C.2.2.2 matching as SQL on the index.

    query = ArchiveQuery(archive)
    for answer in query.find(identifier, model="STUDY"):   # pydicom Datasets, one per match
        ...
    for row in query.instances(identifier, model="STUDY"):  # what a C-GET / C-MOVE sends
        ...

Matching, per attribute of the identifier at or above its QueryRetrieveLevel (keys of lower levels
are ignored and not returned):
- zero length: universal matching (returned, no condition);
- `*` and `?`: wildcard matching (SQLite GLOB, `[` escaped);
- several values (`\\`): any of them (a list of UIDs, of modalities);
- DA, TM: `A-B`, `A-`, `-B` ranges (an empty stored value never matches a range or a value);
- person names: case-insensitive (upper-case on both sides, Unicode-aware), and a name without
  wildcards also matches the alphabetic group of a value with ideographic groups (`A=B`);
- integers (SeriesNumber, InstanceNumber...): equal.
Counts (NumberOfStudyRelatedSeries/Instances, ModalitiesInStudy, NumberOfSeriesRelatedInstances,
NumberOfPatientRelatedStudies/Series/Instances) are computed only when asked for.

Values come back as the index holds them (decoded text); the answer says ISO_IR 192 when one of
its values is not ASCII, and pydicom encodes it so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from ..matching import has_wildcard
from .index import IndexReader

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MODELS = ("PATIENT", "STUDY")  # Patient Root, Study Root


class QueryError(ValueError):
    """The identifier cannot be answered (no or a wrong QueryRetrieveLevel, a level the model lacks)."""


@dataclass(frozen=True)
class Attribute:
    keyword: str
    level: str
    sql: str
    kind: str  # PN, DA, TM, UI, TEXT, INT, COUNT, MODALITIES


_STUDY_SERIES = "(SELECT COUNT(*) FROM series x WHERE x.study_uid = st.study_uid)"
_STUDY_INSTANCES = ("(SELECT COUNT(*) FROM series x JOIN instances y ON y.series_uid = x.series_uid "
                    "WHERE x.study_uid = st.study_uid)")
_PATIENT_STUDIES = "(SELECT COUNT(*) FROM studies z WHERE z.patient_key = p.patient_key)"
_PATIENT_SERIES = ("(SELECT COUNT(*) FROM studies z JOIN series x ON x.study_uid = z.study_uid "
                   "WHERE z.patient_key = p.patient_key)")
_PATIENT_INSTANCES = ("(SELECT COUNT(*) FROM studies z JOIN series x ON x.study_uid = z.study_uid "
                      "JOIN instances y ON y.series_uid = x.series_uid WHERE z.patient_key = p.patient_key)")

ATTRIBUTES = {a.keyword: a for a in (
    Attribute("PatientName", "PATIENT", "p.patient_name", "PN"),
    Attribute("PatientID", "PATIENT", "p.patient_id", "TEXT"),
    Attribute("IssuerOfPatientID", "PATIENT", "p.issuer", "TEXT"),
    Attribute("PatientBirthDate", "PATIENT", "p.birth_date", "DA"),
    Attribute("PatientSex", "PATIENT", "p.sex", "TEXT"),
    Attribute("NumberOfPatientRelatedStudies", "PATIENT", _PATIENT_STUDIES, "COUNT"),
    Attribute("NumberOfPatientRelatedSeries", "PATIENT", _PATIENT_SERIES, "COUNT"),
    Attribute("NumberOfPatientRelatedInstances", "PATIENT", _PATIENT_INSTANCES, "COUNT"),
    Attribute("StudyInstanceUID", "STUDY", "st.study_uid", "UI"),
    Attribute("StudyDate", "STUDY", "st.study_date", "DA"),
    Attribute("StudyTime", "STUDY", "st.study_time", "TM"),
    Attribute("AccessionNumber", "STUDY", "st.accession_number", "TEXT"),
    Attribute("StudyID", "STUDY", "st.study_id", "TEXT"),
    Attribute("StudyDescription", "STUDY", "st.description", "TEXT"),
    Attribute("ReferringPhysicianName", "STUDY", "st.referring_physician", "PN"),
    Attribute("ModalitiesInStudy", "STUDY",
              "(SELECT GROUP_CONCAT(DISTINCT x.modality) FROM series x WHERE x.study_uid = st.study_uid)",
              "MODALITIES"),
    Attribute("NumberOfStudyRelatedSeries", "STUDY", _STUDY_SERIES, "COUNT"),
    Attribute("NumberOfStudyRelatedInstances", "STUDY", _STUDY_INSTANCES, "COUNT"),
    Attribute("SeriesInstanceUID", "SERIES", "se.series_uid", "UI"),
    Attribute("Modality", "SERIES", "se.modality", "TEXT"),
    Attribute("SeriesNumber", "SERIES", "se.series_number", "INT"),
    Attribute("SeriesDescription", "SERIES", "se.description", "TEXT"),
    Attribute("SeriesDate", "SERIES", "se.series_date", "DA"),
    Attribute("BodyPartExamined", "SERIES", "se.body_part", "TEXT"),
    Attribute("NumberOfSeriesRelatedInstances", "SERIES",
              "(SELECT COUNT(*) FROM instances y WHERE y.series_uid = se.series_uid)", "COUNT"),
    Attribute("SOPInstanceUID", "IMAGE", "i.sop_instance_uid", "UI"),
    Attribute("SOPClassUID", "IMAGE", "i.sop_class_uid", "UI"),
    Attribute("InstanceNumber", "IMAGE", "i.instance_number", "INT"),
    Attribute("Rows", "IMAGE", "i.rows", "INT"),
    Attribute("Columns", "IMAGE", "i.columns", "INT"),
    Attribute("NumberOfFrames", "IMAGE", "i.frames", "INT"),
)}

# With the counts the index keeps (core.archive.counts, schema 2): read, not counted.
_KEPT_COUNTS = {
    "ModalitiesInStudy": "st.modalities",
    "NumberOfStudyRelatedSeries": "st.series_count",
    "NumberOfStudyRelatedInstances": "st.instance_count",
    "NumberOfSeriesRelatedInstances": "se.instance_count",
    "NumberOfPatientRelatedSeries": "(SELECT COALESCE(SUM(z.series_count), 0) FROM studies z "
                                    "WHERE z.patient_key = p.patient_key)",
    "NumberOfPatientRelatedInstances": "(SELECT COALESCE(SUM(z.instance_count), 0) FROM studies z "
                                       "WHERE z.patient_key = p.patient_key)",
}

_FROM = {
    "PATIENT": "FROM patients p",
    "STUDY": "FROM studies st JOIN patients p ON p.patient_key = st.patient_key",
    "SERIES": "FROM series se JOIN studies st ON st.study_uid = se.study_uid "
              "JOIN patients p ON p.patient_key = st.patient_key",
    "IMAGE": "FROM instances i JOIN series se ON se.series_uid = i.series_uid "
             "JOIN studies st ON st.study_uid = se.study_uid JOIN patients p ON p.patient_key = st.patient_key",
}
_ORDER = {
    "PATIENT": "ORDER BY p.patient_name, p.patient_id",
    "STUDY": "ORDER BY st.study_date DESC, st.study_time DESC, st.study_uid",
    "SERIES": "ORDER BY st.study_uid, se.series_number, se.series_uid",
    "IMAGE": "ORDER BY se.series_uid, i.instance_number, i.sop_instance_uid",
}
# The key of each level: what the C-GET / C-MOVE at that level names.
UNIQUE_KEYS = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
               "IMAGE": "SOPInstanceUID"}


@dataclass(frozen=True)
class MatchedInstance:
    """One instance a C-GET / C-MOVE identifier selects."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path


def _glob(pattern: str) -> str:
    """A DICOM wildcard pattern as a GLOB pattern (`*` and `?` are the same; `[` is literal)."""
    return pattern.replace("[", "[[]")


def _values(element: Any) -> list[str]:
    value = element.value
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


def _condition(attribute: Attribute, values: list[str], params: list[Any]) -> str | None:
    """The SQL condition for one non-empty key (None: nothing can match)."""
    col, kind = attribute.sql, attribute.kind
    if kind == "COUNT":  # counts are returned, not matched
        return ""
    if kind == "PN":
        parts = []
        for value in values:
            value = value.strip()
            if has_wildcard(value):
                parts.append("pb_upper(" + col + ") GLOB ?")
                params.append(_glob(value.upper()))
            else:
                parts.append("(pb_upper(" + col + ") = ? OR pb_upper(" + col + ") GLOB ?)")
                params.extend([value.upper(), _glob(value.upper()) + "=*"])
        return "(" + " OR ".join(parts) + ")"
    if kind in ("DA", "TM") and len(values) == 1 and "-" in values[0]:
        low, _, high = values[0].partition("-")
        low, high = low.strip(), high.strip()
        if kind == "TM":  # colons of the old ACR-NEMA form
            low, high = low.replace(":", ""), high.replace(":", "")
        parts = [f"{col} != ''"]
        if low:
            parts.append(f"{col} >= ?")
            params.append(low)
        if high:
            parts.append(f"substr({col}, 1, {len(high)}) <= ?")
            params.append(high)
        return "(" + " AND ".join(parts) + ")"
    if kind == "INT":
        numbers = []
        for value in values:
            try:
                numbers.append(int(value.strip()))
            except ValueError:
                pass
        if not numbers:
            return None
        params.extend(numbers)
        return f"{col} IN ({', '.join('?' * len(numbers))})"
    if kind == "MODALITIES":
        parts = []
        for value in values:
            value = value.strip()
            if has_wildcard(value):
                parts.append("x.modality GLOB ?")
                params.append(_glob(value))
            else:
                parts.append("x.modality = ?")
                params.append(value)
        return ("EXISTS (SELECT 1 FROM series x WHERE x.study_uid = st.study_uid AND ("
                + " OR ".join(parts) + "))")
    plain = [v.strip() if kind != "TEXT" else v.rstrip() for v in values]
    exact = [v for v in plain if not has_wildcard(v)]
    wild = [v for v in plain if has_wildcard(v)]
    parts = []
    if exact:
        parts.append(f"{col} IN ({', '.join('?' * len(exact))})")
        params.extend(exact)
    for value in wild:
        parts.append(f"{col} GLOB ?")
        params.append(_glob(value))
    return "(" + " OR ".join(parts) + ")"


def _level(identifier: Dataset, model: str) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in LEVELS:
        raise QueryError(f"the identifier has no valid QueryRetrieveLevel ({level!r})")
    if model not in MODELS:
        raise QueryError(f"unknown information model {model!r}")
    if model == "STUDY" and level == "PATIENT":
        raise QueryError("the Study Root model has no PATIENT level")
    return level


_RETRIEVE_AE = BaseTag(0x00080054)
_CHARSET = BaseTag(0x00080005)
_LEVEL = BaseTag(0x00080052)


def _element(tag: BaseTag, vr: str, value: Any) -> DataElement:
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def _answer(level: str, plan: list[tuple[BaseTag, str, str, int]], row: tuple, retrieve_ae: str,
            charset: Any) -> Dataset:
    """One answer: every key returned, in the identifier's order, valued from `row`."""
    ds = Dataset()
    elements = ds._dict  # building thousands of answers: setattr would validate each value, slowly
    elements[_LEVEL] = _element(_LEVEL, "CS", level)
    wide = False
    for tag, vr, kind, column in plan:
        if column < 0:
            elements[tag] = _element(tag, vr, [] if vr == "SQ" else None)
            continue
        value = row[column]
        if kind == "MODALITIES":
            value = sorted(m for m in (value or "").split(",") if m)
        elif value == "":
            value = None
        elif isinstance(value, str) and not value.isascii():
            wide = True
        elements[tag] = _element(tag, vr, value)
    if retrieve_ae:
        elements[_RETRIEVE_AE] = _element(_RETRIEVE_AE, "AE", retrieve_ae)
    if wide:
        elements[_CHARSET] = _element(_CHARSET, "CS", "ISO_IR 192")
    elif charset:
        elements[_CHARSET] = _element(_CHARSET, "CS", charset)
    return ds


class ArchiveQuery:
    """C-FIND and retrieve matching over an archive's index (any thread)."""

    def __init__(self, archive: Any) -> None:
        self.archive = archive
        self._columns: dict[str, str] | None = None

    def _column(self, keyword: str) -> str:
        """The SQL of a returned attribute: kept counts when the index has them."""
        if self._columns is None:
            kept = any(row[1] == "modalities" for row in self._run("PRAGMA table_info(studies)", []))
            self._columns = {k: a.sql for k, a in ATTRIBUTES.items()}
            if kept:
                self._columns.update(_KEPT_COUNTS)
        return self._columns[keyword]

    def _run(self, sql: str, params: list[Any]) -> list[tuple]:
        reader: IndexReader = self.archive.index_reader
        return reader.query(sql, tuple(params))

    def _where(self, identifier: Dataset, level: str) -> tuple[list[tuple[str, Any]], str, list[Any]] | None:
        """The keys returned (keyword, element) and the WHERE clause; None when nothing can match."""
        depth = LEVELS.index(level)
        returned: list[tuple[str, Any]] = []
        conditions: list[str] = []
        params: list[Any] = []
        for element in identifier:
            keyword = element.keyword
            if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle") or not keyword:
                continue
            attribute = ATTRIBUTES.get(keyword)
            if attribute is not None and LEVELS.index(attribute.level) > depth:
                continue  # a key below the level: not permitted, ignored
            returned.append((keyword, element))
            if attribute is None or element.VR == "SQ":
                continue
            values = _values(element)
            if not values or values == ["*"]:
                continue
            condition = _condition(attribute, values, params)
            if condition is None:
                return None
            if condition:
                conditions.append(condition)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        return returned, where, params

    def find(self, identifier: Dataset, model: str = "STUDY", *, retrieve_ae: str = "") -> Iterator[Dataset]:
        """The answers to a C-FIND identifier, one Dataset per match. Raises QueryError."""
        level = _level(identifier, model)
        rows = self.rows(identifier, model)
        if rows is None:
            return
        returned, values = rows
        known = [k for k, e in returned if k in ATTRIBUTES and e.VR != "SQ"]
        # (tag, VR, kind, column index or -1) per key returned, worked out once
        plan = [(BaseTag(e.tag), e.VR, ATTRIBUTES[k].kind if k in ATTRIBUTES else "",
                 known.index(k) if k in known else -1) for k, e in returned]
        charset = identifier.get("SpecificCharacterSet")
        ae = retrieve_ae if "RetrieveAETitle" in identifier else ""
        for row in values:
            yield _answer(level, plan, row, ae, charset)

    def rows(self, identifier: Dataset, model: str = "STUDY") -> tuple[list[tuple[str, Any]], list[tuple]] | None:
        """The keys returned and the index rows matching (one column per known key); None when
        nothing can match. Raises QueryError."""
        level = _level(identifier, model)
        shaped = self._where(identifier, level)
        if shaped is None:
            return None
        returned, where, params = shaped
        known = [k for k, e in returned if k in ATTRIBUTES and e.VR != "SQ"]
        columns = ", ".join(self._column(k) for k in known) or "1"
        return returned, self._run(f"SELECT {columns} {_FROM[level]} {where} {_ORDER[level]}", params)

    def instances(self, identifier: Dataset, model: str = "STUDY") -> list[MatchedInstance]:
        """Every instance under what the identifier selects at its level (C-GET / C-MOVE)."""
        level = _level(identifier, model)
        shaped = self._where(identifier, level)
        if shaped is None:
            return []
        _, where, params = shaped
        rows = self._run("SELECT i.sop_instance_uid, i.sop_class_uid, i.transfer_syntax_uid, i.path "
                         f"{_FROM['IMAGE']} {where} {_ORDER['IMAGE']}", params)
        root = self.archive.root
        return [MatchedInstance(uid, cls, syntax, root / PurePosixPath(path)) for uid, cls, syntax, path in rows]


__all__ = ["ATTRIBUTES", "LEVELS", "MODELS", "UNIQUE_KEYS", "ArchiveQuery", "MatchedInstance", "QueryError"]
