"""Query (C-FIND): what to look for and what came back."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import Enum
from typing import Any, ClassVar

from .profiles import QueryModel

# --------------------------------------------------------------------------------------------
# Query (C-FIND): what to look for and what came back. core.query applies the matching rules
# (wildcards, case, date presets), core.dicom.identifiers turns keys into datasets and responses
# into these records; nothing here names a DICOM tag.


class QueryLevel(str, Enum):
    """Query/Retrieve Level; the value is what goes into (0008,0052)."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    INSTANCE = "IMAGE"

    @classmethod
    def parse(cls, text: "str | QueryLevel") -> "QueryLevel":
        """'patient', 'study', 'series', 'instance' or 'image' (any case) to a level."""
        if isinstance(text, QueryLevel):
            return text
        word = text.strip().upper()
        if word == "INSTANCE":
            return cls.INSTANCE
        try:
            return cls(word)
        except ValueError:
            raise ValueError(f"unknown query level {text!r}: patient, study, series or instance") from None


def _date_key(value: object) -> str:
    """A date key as text: a date, a (first, last) pair of dates (either None), or text as typed
    (DICOM 'YYYYMMDD', a range, or a preset word that core.query resolves when the query is sent)."""
    def one(d: object) -> str:
        if d is None:
            return ""
        if isinstance(d, date):
            return d.strftime("%Y%m%d")
        return str(d).strip()

    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError("a date range is a (first, last) pair")
        first, last = one(value[0]), one(value[1])
        return f"{first}-{last}" if (first or last) else ""
    return one(value)


def _text_key(value: object) -> str:
    return "" if value is None else str(value).strip()


def _extra_keys(extra: object) -> tuple[tuple[str, str], ...]:
    if not extra:
        return ()
    items: Iterable[Any] = extra.items() if isinstance(extra, dict) else extra  # type: ignore[assignment]  # a dict or an iterable of "KEY=value" / pairs, checked per item below
    out = []
    for item in items:
        if isinstance(item, str):
            key, _, value = item.partition("=")
        else:
            key, value = item
        key = str(key).strip()
        if not key:
            raise ValueError("an extra query key needs a name (keyword or tag)")
        out.append((key, "" if value is None else str(value)))
    return tuple(out)


@dataclass(frozen=True)
class QueryKeys:
    """What to search for at one level. Empty text means "any" (and asks for the value back).

    Build with the level's constructor: `QueryKeys.patients(...)`, `.studies(...)`,
    `.series(study_uid, ...)`, `.instances(study_uid, series_uid, ...)`. Values are kept as the user
    typed them; core.query turns them into DICOM matching (name prefix and case, date presets) when
    the query is sent. `extra` holds any other key as (keyword or tag, value); an empty value asks
    for the attribute back without matching on it.
    """

    level: QueryLevel
    patient_name: str = field(default="", repr=False)  # repr() leaks no patient data
    patient_id: str = field(default="", repr=False)
    birth_date: str = field(default="", repr=False)
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    modalities: tuple[str, ...] = ()  # study level: Modalities in Study (any of them)
    study_description: str = ""
    referring_physician: str = ""
    study_id: str = ""
    study_instance_uid: str = ""
    modality: str = ""  # series level
    series_number: str = ""
    series_description: str = ""
    body_part: str = ""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    instance_number: str = ""
    sop_class_uid: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", QueryLevel.parse(self.level))
        if self.level in (QueryLevel.SERIES, QueryLevel.INSTANCE) and not self.study_instance_uid:
            raise ValueError(f"a {self.level.name.lower()} query needs the Study Instance UID")
        if self.level is QueryLevel.INSTANCE and not self.series_instance_uid:
            raise ValueError("an instance query needs the Series Instance UID")

    @classmethod
    def patients(cls, *, patient_name: str = "", patient_id: str = "", birth_date: object = "",
                 sex: str = "", extra: object = ()) -> "QueryKeys":
        return cls(QueryLevel.PATIENT, patient_name=_text_key(patient_name), patient_id=_text_key(patient_id),
                   birth_date=_date_key(birth_date), sex=_text_key(sex).upper(), extra=_extra_keys(extra))

    @classmethod
    def studies(cls, *, patient_name: str = "", patient_id: str = "", birth_date: object = "",
                study_date: object = "", study_time: str = "", accession_number: str = "",
                modalities: "str | tuple[str, ...] | list[str]" = (), study_description: str = "",
                referring_physician: str = "", study_id: str = "", study_instance_uid: str = "",
                extra: object = ()) -> "QueryKeys":
        if isinstance(modalities, str):
            modalities = modalities.replace(",", "\\").split("\\")
        mods = tuple(m.strip().upper() for m in modalities if m and m.strip())
        return cls(QueryLevel.STUDY, patient_name=_text_key(patient_name), patient_id=_text_key(patient_id),
                   birth_date=_date_key(birth_date), study_date=_date_key(study_date),
                   study_time=_text_key(study_time), accession_number=_text_key(accession_number),
                   modalities=mods, study_description=_text_key(study_description),
                   referring_physician=_text_key(referring_physician), study_id=_text_key(study_id),
                   study_instance_uid=_text_key(study_instance_uid), extra=_extra_keys(extra))

    @classmethod
    def series(cls, study_instance_uid: str, *, modality: str = "", series_number: "int | str" = "",
               series_description: str = "", body_part: str = "", series_instance_uid: str = "",
               patient_id: str = "", extra: object = ()) -> "QueryKeys":
        return cls(QueryLevel.SERIES, study_instance_uid=_text_key(study_instance_uid),
                   modality=_text_key(modality).upper(), series_number=_text_key(series_number),
                   series_description=_text_key(series_description), body_part=_text_key(body_part).upper(),
                   series_instance_uid=_text_key(series_instance_uid), patient_id=_text_key(patient_id),
                   extra=_extra_keys(extra))

    @classmethod
    def instances(cls, study_instance_uid: str, series_instance_uid: str, *, sop_instance_uid: str = "",
                  instance_number: "int | str" = "", sop_class_uid: str = "", patient_id: str = "",
                  extra: object = ()) -> "QueryKeys":
        return cls(QueryLevel.INSTANCE, study_instance_uid=_text_key(study_instance_uid),
                   series_instance_uid=_text_key(series_instance_uid), sop_instance_uid=_text_key(sop_instance_uid),
                   instance_number=_text_key(instance_number), sop_class_uid=_text_key(sop_class_uid),
                   patient_id=_text_key(patient_id), extra=_extra_keys(extra))


@dataclass(frozen=True)
class PersonName:
    """A DICOM person name split into its component groups, each as 'Family^Given^Middle^Prefix^Suffix'."""

    alphabetic: str = ""
    ideographic: str = ""
    phonetic: str = ""

    @classmethod
    def from_dicom(cls, text: str | None) -> "PersonName":
        groups = (text or "").split("=")
        groups += [""] * (3 - len(groups))
        # trailing component delimiters carry nothing ('SMITH^JOHN^^' is 'SMITH^JOHN'; a group of
        # only '^' is empty, as Orthanc sends a group it could not write in its character set)
        return cls(*(g.strip().rstrip("^").rstrip() for g in groups[:3]))

    @property
    def dicom(self) -> str:
        """The name as DICOM writes it ('A=I=P', trailing empty groups dropped)."""
        return "=".join((self.alphabetic, self.ideographic, self.phonetic)).rstrip("=")

    def _parts(self) -> list[str]:
        group = self.alphabetic or self.ideographic or self.phonetic
        parts = group.split("^")
        return parts + [""] * (5 - len(parts))

    @property
    def family(self) -> str:
        return self._parts()[0]

    @property
    def given(self) -> str:
        return self._parts()[1]

    @property
    def middle(self) -> str:
        return self._parts()[2]

    @property
    def prefix(self) -> str:
        return self._parts()[3]

    @property
    def suffix(self) -> str:
        return self._parts()[4]

    @staticmethod
    def _readable(group: str) -> str:
        family, _, rest = group.partition("^")
        given = " ".join(p for p in rest.split("^")[:2] if p)
        return f"{family}, {given}" if family and given else (family or given)

    @property
    def display(self) -> str:
        """'Family, Given Middle', with the ideographic form in brackets when there is one."""
        main = self._readable(self.alphabetic)
        other = self._readable(self.ideographic).replace(", ", " ")
        if main and other:
            return f"{main} ({other})"
        return main or other or self._readable(self.phonetic)

    def __bool__(self) -> bool:
        return bool(self.alphabetic or self.ideographic or self.phonetic)

    def __str__(self) -> str:
        return self.display


class DeferredDataset:
    """A result's dataset not built yet: `build()` makes it, once, when `result.dataset` is first read.

    A C-FIND response read straight from its bytes (core.dicom.rawidentifiers) keeps them in one of
    these instead of a pydicom Dataset: most results are only shown, and building a Dataset for each
    of 5,000 responses was much of a find's time."""

    __slots__ = ()

    def build(self) -> Any:
        raise NotImplementedError


_BUILD_LOCK = threading.Lock()


class _DatasetSlot:
    """The `dataset` of a result: what was given, or what its DeferredDataset builds on first read
    (then kept). A data descriptor, so the frozen dataclass's __init__ stores through it."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return None  # the class attribute: the field's default
        value = obj.__dict__.get("dataset")
        if isinstance(value, DeferredDataset):
            with _BUILD_LOCK:  # one Dataset per result, also when two threads read it at once
                value = obj.__dict__["dataset"]
                if isinstance(value, DeferredDataset):
                    value = obj.__dict__["dataset"] = value.build()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["dataset"] = value


@dataclass(frozen=True, kw_only=True)
class _FindResult:
    """What every C-FIND result carries besides its level's fields.

    `dataset` is the response identifier with its text decoded (str values, (0008,0005) rewritten to
    ISO_IR 192 so it re-encodes losslessly), built on first read when the result was made from the
    response's bytes (a DeferredDataset given as `dataset`); `charset_received` is the (0008,0005) the
    PACS sent; `charset_used` the character set the text was read with; `charset_note` says in words
    when that was not the PACS's own declaration (missing, wrong, or bytes replaced), '' otherwise.
    """

    dataset: Any = field(default=None, compare=False, repr=False)
    charset_received: tuple[str, ...] = ()
    charset_used: str = ""
    charset_note: str = ""


# After the dataclass has made __init__ (default None): reads and writes of `dataset` go through the slot.
_FindResult.dataset = _DatasetSlot()


@dataclass(frozen=True, kw_only=True)
class PatientResult(_FindResult):
    patient_id: str = field(default="", repr=False)
    patient_name: PersonName = field(default_factory=PersonName, repr=False)
    birth_date: date | None = field(default=None, repr=False)
    sex: str = ""
    issuer_of_patient_id: str = ""
    number_of_studies: int | None = None
    number_of_series: int | None = None
    number_of_instances: int | None = None

    level: ClassVar[QueryLevel] = QueryLevel.PATIENT

    @property
    def key(self) -> tuple[str, str]:
        return (self.patient_id, self.issuer_of_patient_id)


@dataclass(frozen=True, kw_only=True)
class StudyResult(_FindResult):
    study_instance_uid: str = ""
    patient_id: str = field(default="", repr=False)
    patient_name: PersonName = field(default_factory=PersonName, repr=False)
    birth_date: date | None = field(default=None, repr=False)
    sex: str = ""
    study_date: date | None = None
    study_time: time | None = None
    accession_number: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician: PersonName = field(default_factory=PersonName, repr=False)
    modalities: tuple[str, ...] | None = None  # None: the PACS did not say
    number_of_series: int | None = None
    number_of_instances: int | None = None

    level: ClassVar[QueryLevel] = QueryLevel.STUDY

    @property
    def key(self) -> str:
        return self.study_instance_uid

    @property
    def study_datetime(self) -> datetime | None:
        if self.study_date is None:
            return None
        return datetime.combine(self.study_date, self.study_time or time())


@dataclass(frozen=True, kw_only=True)
class SeriesResult(_FindResult):
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""
    series_date: date | None = None
    series_time: time | None = None
    number_of_instances: int | None = None

    level: ClassVar[QueryLevel] = QueryLevel.SERIES

    @property
    def key(self) -> str:
        return self.series_instance_uid


@dataclass(frozen=True, kw_only=True)
class InstanceResult(_FindResult):
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    instance_number: int | None = None
    number_of_frames: int | None = None

    level: ClassVar[QueryLevel] = QueryLevel.INSTANCE

    @property
    def key(self) -> str:
        return self.sop_instance_uid


class Completeness(str, Enum):
    COMPLETE = "complete"  # the PACS said it sent every match
    POSSIBLY_INCOMPLETE = "possibly incomplete"  # a PACS warning, or a count that looks like a cap
    INCOMPLETE = "incomplete"  # our limit, a cancel, an abort or a failure stopped it


@dataclass(frozen=True)
class FindSummary:
    """How a C-FIND ended, for the window's status line and the command line's summary.

    `count` results were handed to the caller; `complete`, `incomplete` (for certain: our limit, a
    cancel, an abort, a failure) and `possibly_incomplete` (anything but complete, including a PACS
    warning or a count that looks like a server's cap) say whether there may be more. `limit_reached`: our own `limit` stopped it (C-CANCEL
    sent). `cancelled`: the caller cancelled. `aborted`: the PACS did not stop after C-CANCEL (or did
    not answer) and the association was aborted. `reasons` are sentences for the user.
    `queries` are the identifiers sent, as text (more than one when a name was retried in another
    case); they may hold patient data: show them to the user, log them only through logs.phi().
    """

    level: QueryLevel
    count: int
    completeness: Completeness
    status: int | None = None  # the final DIMSE status; None if none came
    limit: int | None = None
    limit_reached: bool = False
    cancelled: bool = False
    aborted: bool = False
    unsupported_keys: bool = False  # 0xFF01: the PACS ignored some optional keys
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what else the user may want to know (keys the PACS ignored...)
    queries: tuple[str, ...] = field(default=(), repr=False)
    query_model: "QueryModel | None" = None
    elapsed: float = 0.0
    first_result_after: float | None = None

    @property
    def complete(self) -> bool:
        return self.completeness is Completeness.COMPLETE

    @property
    def incomplete(self) -> bool:
        return self.completeness is Completeness.INCOMPLETE

    @property
    def possibly_incomplete(self) -> bool:
        return self.completeness is not Completeness.COMPLETE

    @property
    def summary(self) -> str:
        noun = {QueryLevel.PATIENT: "patient", QueryLevel.STUDY: "study", QueryLevel.SERIES: "series",
                QueryLevel.INSTANCE: "instance"}[self.level]
        plural = {"study": "studies", "series": "series"}.get(noun, noun + "s") if self.count != 1 else noun
        text = f"{self.count} {plural}"
        if self.completeness is not Completeness.COMPLETE:
            text += f" ({self.completeness.value}: {'; '.join(self.reasons)})" if self.reasons else \
                f" ({self.completeness.value})"
        return text
