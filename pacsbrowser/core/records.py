"""Plain, immutable records shared by the core, the CLI and the window.

Nothing here talks to the network or imports Qt: these are the nouns of the application.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from datetime import date, datetime, time  # query results
from typing import Any, ClassVar  # query results

# PS3.5 6.2: an AE title is at most 16 characters of the default repertoire, no backslash and no
# control characters; leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")

DEFAULT_CALLING_AE = "PACSBROWSER"
DEFAULT_MAX_PDU = 262_144  # bytes; large PDUs keep bulk transfers fast


def validate_ae_title(value: str, what: str = "AE title") -> str:
    """Return the AE title stripped of surrounding spaces, or raise ValueError saying why."""
    stripped = value.strip()
    if not stripped:
        raise ValueError(f"{what} is empty")
    if len(stripped) > 16:
        raise ValueError(f"{what} {stripped!r} is longer than 16 characters")
    if not _AE_TITLE.match(stripped):
        raise ValueError(f"{what} {stripped!r} contains a character DICOM does not allow (backslash or control)")
    return stripped


def validate_port(value: int, what: str = "port") -> int:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{what} must be a whole number from 1 to 65535, not {value!r}")
    return value


@dataclass(frozen=True)
class TLSConfiguration:
    """How to secure a connection. Paths are PEM files.

    `certificate` and `key` are our own (client) certificate, needed when the server asks for one;
    `ca_certificate` is what we trust for the server's certificate (the system's trust store when
    None); `server_name` is the name checked against the server certificate (the profile's host
    when None).
    """

    certificate: Path | None = None
    key: Path | None = None
    ca_certificate: Path | None = None
    verify_peer: bool = True
    minimum_version: str = "TLSv1.2"
    server_name: str | None = None

    def __post_init__(self) -> None:
        if self.minimum_version not in ("TLSv1.2", "TLSv1.3"):
            raise ValueError(f"minimum TLS version must be TLSv1.2 or TLSv1.3, not {self.minimum_version!r}")
        if (self.certificate is None) != (self.key is None):
            raise ValueError("a client certificate needs its private key, and a key its certificate")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of association establishment, with exponential backoff capped at `max_delay`.

    Attempt n (n = 1 for the first retry) waits min(max_delay, initial_delay * multiplier**(n-1)),
    then a random share of up to `jitter` of that delay is added or taken away.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")
        if self.multiplier < 1:
            raise ValueError("the retry multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a share of the delay, from 0 to 1")

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if retry < 1:
            raise ValueError("retries are numbered from 1")
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        if self.jitter and base:
            spread = base * self.jitter
            base += (rng or random).uniform(-spread, spread)
        return max(0.0, min(base, self.max_delay))

    def delays(self, rng: random.Random | None = None) -> list[float]:
        return [self.delay(n, rng) for n in range(1, self.max_retries + 1)]


NO_RETRY = RetryPolicy(max_retries=0)


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `connect`: TCP connect and TLS handshake; `acse`: waiting for the association
    answer and release; `dimse`: waiting for each DIMSE message; `network`: idle connection."""

    connect: float = 10.0
    acse: float = 30.0
    dimse: float = 60.0
    network: float = 120.0

    @classmethod
    def uniform(cls, seconds: float) -> "Timeouts":
        return cls(connect=seconds, acse=seconds, dimse=seconds, network=max(seconds, 60.0))


class RetrieveMethod(str, Enum):
    GET = "C-GET"
    MOVE = "C-MOVE"


class QueryModel(str, Enum):
    PATIENT_ROOT = "patient"
    STUDY_ROOT = "study"


@dataclass(frozen=True)
class ServerProfile:
    """A PACS (or any DICOM peer) and how we talk to it."""

    name: str
    host: str
    port: int
    called_ae: str
    calling_ae: str = DEFAULT_CALLING_AE
    tls: TLSConfiguration | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_pdu: int = DEFAULT_MAX_PDU
    retrieve_method: RetrieveMethod = RetrieveMethod.GET
    move_destination: str | None = None
    listener_port: int = 11112
    query_model: QueryModel = QueryModel.STUDY_ROOT
    query_charset: str = "ISO_IR 192"
    fallback_charset: str = "ISO_IR 100"

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a profile needs a name")
        if not self.host.strip():
            raise ValueError("a profile needs a host")
        validate_port(self.port)
        validate_port(self.listener_port, "listener port")
        object.__setattr__(self, "retrieve_method", RetrieveMethod(self.retrieve_method))
        object.__setattr__(self, "query_model", QueryModel(self.query_model))
        object.__setattr__(self, "called_ae", validate_ae_title(self.called_ae, "called AE title"))
        object.__setattr__(self, "calling_ae", validate_ae_title(self.calling_ae, "calling AE title"))
        if self.move_destination is not None:
            object.__setattr__(
                self, "move_destination", validate_ae_title(self.move_destination, "move destination AE title")
            )
        if self.max_pdu < 0:
            raise ValueError("maximum PDU size must not be negative (0 means unlimited)")


@dataclass(frozen=True)
class Received:
    """One instance our Storage SCP received, wrote to the local archive and indexed.

    `path` is the file in the archive; `replaced` is True when an earlier copy of the same SOP
    Instance UID was there and this one took its place. `received_at` is seconds since the epoch
    (time.time()). Patient name and ID are kept out of repr() so that logging a record leaks nothing.
    """

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    path: Path
    size: int
    calling_ae: str
    peer: str  # "host:port" of the sender
    received_at: float
    replaced: bool = False
    modality: str = ""
    patient_id: str = field(default="", repr=False)
    patient_name: str = field(default="", repr=False)


# --- Send (C-STORE): per-file results and progress -------------------------------------------


class StoreOutcome(str, Enum):
    SUCCESS = "success"  # the PACS stored it (status 0x0000)
    WARNING = "warning"  # stored, with a warning status (e.g. 0xB000 coercion of data elements)
    FAILED = "failed"  # not stored: the PACS refused it, nothing fit, or the network failed
    SKIPPED = "skipped"  # not sent: not a DICOM file, damaged, unreadable, a DICOMDIR...


@dataclass(frozen=True)
class StoreResult:
    """What happened to one file (or dataset) of a send.

    `name` is what to show (the path as given, or "dataset <n>"); `reason` is in words, with the
    DIMSE status in `status` when the PACS answered. `transfer_syntax` is the syntax it was sent in
    and `converted` says whether we had to decompress or re-encode it for the PACS.
    """

    name: str
    outcome: StoreOutcome
    reason: str = ""
    status: int | None = None
    path: Path | None = None
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax: str = ""
    converted: bool = False
    size: int = 0  # bytes of the source file (0 for datasets)
    attempts: int = 1  # times it was sent (more than one after a broken association)

    @property
    def stored(self) -> bool:
        return self.outcome in (StoreOutcome.SUCCESS, StoreOutcome.WARNING)


@dataclass(frozen=True)
class StoreProgress:
    """Where a send stands. `results` holds the results finished since the previous report, so a
    window can append them in one batch. `total` is None while folders are still being read."""

    total: int | None
    done: int
    stored: int
    warnings: int  # stored with a warning (counted in `stored` too)
    failed: int
    skipped: int
    bytes_done: int
    bytes_total: int
    elapsed: float
    results: tuple[StoreResult, ...] = ()
    finished: bool = False


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
    items = extra.items() if isinstance(extra, dict) else extra
    out = []
    for item in items:  # type: ignore[union-attr]
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


@dataclass(frozen=True, kw_only=True)
class _FindResult:
    """What every C-FIND result carries besides its level's fields.

    `dataset` is the response identifier with its text decoded (str values, (0008,0005) rewritten to
    ISO_IR 192 so it re-encodes losslessly); `charset_received` is the (0008,0005) the PACS sent;
    `charset_used` the character set the text was read with; `charset_note` says in words when that
    was not the PACS's own declaration (missing, wrong, or bytes replaced), '' otherwise.
    """

    dataset: Any = field(default=None, compare=False, repr=False)
    charset_received: tuple[str, ...] = ()
    charset_used: str = ""
    charset_note: str = ""


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


# --------------------------------------------------------------------------------------------
# Retrieve (C-GET / C-MOVE): progress and outcome. core.retrieve makes these; a window shows a
# progress bar from RetrieveProgress and the final line from RetrieveSummary.summary.


class RetrievePhase(str, Enum):
    PLANNING = "planning"  # asking the PACS what the study holds, comparing with the archive
    RETRIEVING = "retrieving"
    FINISHING = "finishing"  # the PACS has answered; waiting for the files to be indexed
    DONE = "done"


@dataclass(frozen=True)
class RetrieveProgress:
    """Where a retrieve stands.

    `total` is how many instances this run fetches (what the archive lacks; None while unknown, or
    when the PACS did not answer the instance query). `remaining`, `completed`, `failed` and
    `warning` are the PACS's own sub-operation counts (from its pending responses, added up over the
    requests of this run); `received` and `bytes_received` count what actually arrived and was
    written to the archive. `rate` is instances per second since the first request went out.
    `already_present`: instances skipped because the archive held them already.
    """

    method: RetrieveMethod
    phase: RetrievePhase
    total: int | None = None
    received: int = 0
    bytes_received: int = 0
    remaining: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0
    already_present: int = 0
    elapsed: float = 0.0
    rate: float = 0.0  # instances per second
    byte_rate: float = 0.0  # bytes per second
    request: int = 0  # the C-GET/C-MOVE request under way (1-based; 0 before the first)
    requests: int = 0  # requests planned so far
    cancelling: bool = False

    @property
    def fraction(self) -> float | None:
        """0..1 for a progress bar, None when the total is not known."""
        if self.total is None:
            done, left = self.completed + self.failed + self.warning, self.remaining
            if left is None or done + left == 0:
                return None
            return done / (done + left)
        if self.total == 0:
            return 1.0
        return min(1.0, self.received / self.total)


@dataclass(frozen=True)
class RetrieveSummary:
    """How a retrieve ended.

    `expected`: instances the PACS said the study (series, instance) holds, None when it did not say;
    `already_present`: of those, how many the archive held before; `requested`: how many this run
    asked for (None when unknown); `received`/`bytes_received`: what arrived and was written;
    `completed`/`failed`/`warning`: the PACS's final sub-operation counts, added up. `missing`: SOP
    Instance UIDs the PACS listed that the archive still lacks. `failed_uids`: what the PACS said it
    could not send. `reasons` say in words why it is not complete; `notes` what else is worth knowing.
    """

    method: RetrieveMethod
    level: QueryLevel
    study_instance_uid: str
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    destination_ae: str = ""
    expected: int | None = None
    already_present: int = 0
    requested: int | None = None
    received: int = 0
    bytes_received: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    missing: tuple[str, ...] = ()
    failed_uids: tuple[str, ...] = ()
    status: int | None = None  # the last final status the PACS sent
    cancelled: bool = False
    aborted: bool = False
    associations: int = 0
    requests: int = 0
    elapsed: float = 0.0
    transfer_seconds: float = 0.0  # first request sent to last final response
    planned: bool = False  # planned from an instance-level query (resume possible)
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Everything the PACS listed is in the archive (or, unplanned: nothing failed)."""
        return not (self.cancelled or self.aborted or self.missing or self.failed)

    @property
    def rate(self) -> float:
        """Instances received per second of transfer."""
        return self.received / self.transfer_seconds if self.transfer_seconds > 0 else 0.0

    @property
    def summary(self) -> str:
        mb = self.bytes_received / 1_000_000
        text = f"{self.received} instances ({mb:.1f} MB) in {self.elapsed:.2f} s"
        if self.received and self.transfer_seconds > 0:
            text += f" ({self.rate:.0f}/s)"
        if self.already_present:
            text += f", {self.already_present} already in the archive"
        if self.failed:
            text += f", {self.failed} failed"
        if self.warning:
            text += f", {self.warning} with warnings"
        if self.cancelled:
            text += "; cancelled"
        elif self.complete:
            text += "; complete"
        elif self.missing:
            text += f"; {len(self.missing)} still missing"
        else:
            text += "; incomplete"
        return text
