"""QIDO-RS: the query form's searches over DICOMweb, with the same QueryKeys, matching rules,
result records and FindSummary as C-FIND (core/query.py).

    service = WebQueryService(profile)
    job = service.find(QueryKeys.studies(patient_name="smith"), limit=500)
    async for batch in job.batches():       # one QIDO page (limit/offset) at a time, as it arrives
        tree.add(batch)
    job.outcome.summary

The keys are shaped by core.matching (the same rules as C-FIND: upper-cased names with a trailing
`*`, date presets, descriptions as "contains"), written as C-FIND identifiers by the same code, and
sent as QIDO parameters: a key with a value matches, a key without asks for the attribute back
(`includefield`). Levels: /studies, /studies/{uid}/series, /studies/{uid}/series/{uid}/instances.
DICOMweb has no patient level: a patient search asks for studies and hands over each patient once.

Like C-FIND, a name tried in another case is sent again only while nothing is found. One more
variant comes last: values a server must percent-decode (non-ASCII letters, spaces) with each run
of such characters replaced by the wildcard `*`, the answers then matched here with the value as
typed. It serves servers that do not decode percent-encoded query values (Orthanc's
DICOMweb plugin 1.7 is one) and costs one request where a search finds nothing anyway. (`?` would be narrower, but that
plugin matches it against nothing.)
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from pydicom.dataset import Dataset

from ..dicom.identifiers import build_identifier, identifier_keys, identifier_text, parse_result
from ..executor import run_blocking
from ..jobs import ResultStream
from ..logs import phi
from ..matching import shape_keys
from ..records import (
    Completeness,
    FindSummary,
    InstanceResult,
    PatientResult,
    QueryKeys,
    QueryLevel,
    QueryModel,
    SeriesResult,
    ServerProfile,
    StudyResult,
)
from .session import WebSession

log = logging.getLogger(__name__)

R = TypeVar("R", PatientResult, StudyResult, SeriesResult, InstanceResult)

# Attributes a QIDO answer carries that are not worth asking for by name, and keys of a C-FIND
# identifier that are not QIDO parameters.
_NOT_PARAMETERS = {"QueryRetrieveLevel", "SpecificCharacterSet"}
_PATIENT_COUNTS = {"NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
                   "NumberOfPatientRelatedInstances", "IssuerOfPatientID"}
_NEEDS_DECODING = re.compile(r"[^\x21-\x7e]|[%&#+]")  # what a server must percent-decode
_TEXT_VRS = {"PN", "LO", "SH", "ST", "LT", "UT", "CS", "AE", "UC"}


@dataclass(frozen=True)
class WebQuery:
    """One QIDO request (before paging): its path under the QIDO root, parameters, and the keys
    to match locally (the `?` variant's)."""

    path: tuple[str, ...]
    params: tuple[tuple[str, str], ...]
    identifier: Dataset
    local_match: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PreparedWebQuery:
    """What a find sends: the QIDO requests, tried in order while nothing is found."""

    level: QueryLevel
    queries: tuple[WebQuery, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(_request_text(q) for q in self.queries)

    def describe(self, *, redact: bool = True) -> str:
        keys = identifier_keys(self.queries[0].identifier, redact=redact)
        named = [(tag if name == "?" else name, value) for tag, name, value in keys
                 if name not in _NOT_PARAMETERS]
        matching = "; ".join(f"{name} = {value}" for name, value in named if value is not None)
        returned = ", ".join(name for name, value in named if value is None)
        return (f"{self.level.value} level, QIDO-RS; matching {matching or 'nothing'}"
                f"\nasks back {returned}")


def _request_text(query: WebQuery) -> str:
    lines = ["GET /" + "/".join(query.path)]
    lines += [f"  {key}={value}" for key, value in query.params]
    return "\n".join(lines)


def _widened(value: str) -> str:
    """Each run of characters a server must decode (and the wildcards next to it) as one `*`."""
    return re.sub(r"\*+", "*", _NEEDS_DECODING.sub("*", value))


def qido_queries(keys: QueryKeys, today: date, *, fuzzy: bool = False) -> tuple[WebQuery, ...]:
    """The QIDO requests of a find of `keys` (ValueError for keys that cannot be sent)."""
    level = keys.level
    variants = shape_keys(keys, today)
    queries: list[WebQuery] = []
    for variant in variants:
        identifier = build_identifier(variant, model=QueryModel.STUDY_ROOT)
        path, params = _path_and_params(level, variant, identifier, fuzzy)
        queries.append(WebQuery(path, tuple(params), identifier))
    # the `?` variant: the first one's values that need percent-decoding, widened
    first = queries[0]
    widened = tuple((k, _widened(v)) if k not in ("includefield", "fuzzymatching") else (k, v)
                    for k, v in first.params)
    if widened != first.params:
        local = tuple((k, v) for k, v in first.params if k not in ("includefield", "fuzzymatching")
                      and _NEEDS_DECODING.search(v))
        queries.append(WebQuery(first.path, widened, first.identifier, local))
    return tuple(queries)


def _path_and_params(level: QueryLevel, keys: QueryKeys, identifier: Dataset, fuzzy: bool
                     ) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    in_path: set[str] = set()
    if level is QueryLevel.SERIES:
        path: tuple[str, ...] = ("studies", keys.study_instance_uid, "series")
        in_path = {"StudyInstanceUID"}
    elif level is QueryLevel.INSTANCE:
        path = ("studies", keys.study_instance_uid, "series", keys.series_instance_uid, "instances")
        in_path = {"StudyInstanceUID", "SeriesInstanceUID"}
    else:
        path = ("studies",)
    if level in (QueryLevel.SERIES, QueryLevel.INSTANCE) and not keys.study_instance_uid:
        raise ValueError(f"a {level.name.lower()} query over DICOMweb needs the Study Instance UID")
    if level is QueryLevel.INSTANCE and not keys.series_instance_uid:
        raise ValueError("an instance query over DICOMweb needs the Series Instance UID")
    params: list[tuple[str, str]] = []
    include: list[str] = []
    for element in identifier:
        keyword = element.keyword or f"{element.tag:08X}"
        if keyword in _NOT_PARAMETERS or keyword in in_path or element.VR == "SQ":
            continue
        if level is QueryLevel.PATIENT and keyword in _PATIENT_COUNTS:
            continue
        value = element.value
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            text = ",".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        if text:
            params.append((keyword, text.replace("\\", ",")))
        else:
            include.append(keyword)
    params += [("includefield", keyword) for keyword in include]
    if fuzzy:
        params.append(("fuzzymatching", "true"))
    return path, params


def _pattern(value: str) -> re.Pattern[str]:
    """DICOM wildcard matching (`*`, `?`), case-insensitive, over the whole value."""
    text = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in value)
    return re.compile(text, re.IGNORECASE | re.DOTALL)


def _matches(ds: Dataset, keyword: str, value: str) -> bool:
    """Whether the answer's `keyword` matches `value` as typed (the widened variant's local check); a
    person name matches by the whole name or by any of its groups."""
    element = ds.data_element(keyword) if keyword in ds else None
    if element is None or element.value in (None, ""):
        return False
    raw = element.value
    values = list(raw) if isinstance(raw, (list, tuple)) or type(raw).__name__ == "MultiValue" else [raw]
    wanted = [_pattern(part) for part in value.split(",")]
    for item in values:
        text = str(item)
        candidates = [text, *text.split("=")] if element.VR == "PN" else [text]
        if any(p.fullmatch(c) for p in wanted for c in candidates):
            return True
    return False


def answer_dataset(item: dict[str, Any]) -> Dataset:
    """A QIDO answer object as a Dataset (Unicode text: JSON is UTF-8). BulkData URIs are dropped."""
    ds = Dataset.from_json(item, bulk_data_uri_handler=lambda tag, vr, uri: None)
    ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


class WebQueryService:
    """QIDO-RS at the four levels for a DICOMweb profile: the methods of core.query.QueryService."""

    def __init__(self, profile: ServerProfile, *, session: WebSession | None = None,
                 today: Callable[[], date] | None = None) -> None:
        if profile.web is None:
            raise ValueError(f"profile {profile.name!r} is not a DICOMweb profile")
        self.profile = profile
        self.session = session
        self.page_size = profile.web.page_size
        self.fuzzy = profile.web.fuzzy_matching
        self._today = today or date.today

    def prepare(self, keys: QueryKeys) -> PreparedWebQuery:
        return PreparedWebQuery(keys.level, qido_queries(keys, self._today(), fuzzy=self.fuzzy))

    def find(self, keys: QueryKeys, *, limit: int | None = None) -> "WebFindJob[Any]":
        if limit is not None and limit < 1:
            raise ValueError("a limit is a whole number of results, 1 or more")
        return WebFindJob(self, keys, limit=limit)

    def find_patients(self, keys: QueryKeys | None = None, *, limit: int | None = None,
                      **key_args: Any) -> "WebFindJob[PatientResult]":
        return self.find(keys or QueryKeys.patients(**key_args), limit=limit)

    def find_studies(self, keys: QueryKeys | None = None, *, limit: int | None = None,
                     **key_args: Any) -> "WebFindJob[StudyResult]":
        return self.find(keys or QueryKeys.studies(**key_args), limit=limit)

    def find_series(self, keys: QueryKeys | str, *, limit: int | None = None,
                    **key_args: Any) -> "WebFindJob[SeriesResult]":
        if isinstance(keys, str):
            keys = QueryKeys.series(keys, **key_args)
        return self.find(keys, limit=limit)

    def find_instances(self, keys: QueryKeys | str, series_instance_uid: str | None = None, *,
                       limit: int | None = None, **key_args: Any) -> "WebFindJob[InstanceResult]":
        if isinstance(keys, str):
            if not series_instance_uid:
                raise ValueError("an instance query needs the Series Instance UID")
            keys = QueryKeys.instances(keys, series_instance_uid, **key_args)
        return self.find(keys, limit=limit)


class WebFindJob(ResultStream[R]):
    """One QIDO search in progress: the reading side of core.query.FindJob (batches(), async for,
    collect(), cancel(), outcome, count, queries, prepared.describe()).

    Pages of `page_size` results (limit/offset) are asked one after the other and handed over as
    each arrives. `cancel()` stops after the page under way (its request is bounded by the
    profile's timeout); what came is kept and `outcome.cancelled` is set."""

    def __init__(self, service: WebQueryService, keys: QueryKeys, *, limit: int | None) -> None:
        self.service = service
        self.keys = keys
        self.level = keys.level
        self.limit = limit
        self.prepared = service.prepare(keys)  # ValueError now, before anything is sent
        self.queries: list[str] = []
        self.count = 0
        self.outcome: FindSummary | None = None
        self._cancel_requested = False
        self._filtered = 0


    def cancel(self) -> None:
        self._cancel_requested = True


    # -- the work ---------------------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[list[R], None]:
        started = time.perf_counter()
        first_after: float | None = None
        own_session = self.service.session is None
        session = self.service.session or WebSession(self.service.profile)
        failure: BaseException | None = None
        seen: set[Any] = set()
        patients: dict[tuple[str, str], Dataset] = {}
        limit_reached = False
        try:
            query: WebQuery
            for query in self.prepared.queries:
                if self._cancel_requested or limit_reached:
                    break
                url = session.url("qido", *query.path)
                self.queries.append(_request_text(query))
                log.info("QIDO-RS %s level", self.level.name.lower())
                log.debug("QIDO-RS request:\n%s", phi(self.queries[-1]))
                offset = 0
                page = self.service.page_size
                while not self._cancel_requested:
                    size = page
                    if self.limit is not None and self.level is not QueryLevel.PATIENT:
                        size = min(page, self.limit - self.count)
                    params: list[tuple[str, str]] = [*query.params, ("limit", str(size)), ("offset", str(offset))]
                    items = await run_blocking(session.get_json, url, "QIDO-RS query", params, name="qido")
                    offset += len(items)
                    fresh = self._screen(items, query, seen, patients)
                    if fresh:
                        if first_after is None:
                            first_after = time.perf_counter() - started
                        self.count += len(fresh)
                        yield fresh
                    if self.limit is not None and self.count >= self.limit:
                        limit_reached = True
                        break
                    if len(items) < size or not items:
                        break
                if self.count:
                    break
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if own_session:
                session.close()
            self.outcome = self._summary(started, first_after, limit_reached, failure)

    def _screen(self, items: list[dict[str, Any]], query: WebQuery, seen: set[Any],
                patients: dict[tuple[str, str], Dataset]) -> list[Any]:
        fresh: list[Any] = []
        fallback = self.service.profile.fallback_charset
        for item in items:
            ds = answer_dataset(item)
            if query.local_match and not all(_matches(ds, k, v) for k, v in query.local_match):
                self._filtered += 1
                continue
            if self.level is QueryLevel.PATIENT:  # DICOMweb has no patient level: each patient once
                key = (str(ds.get("PatientID", "")), str(ds.get("PatientName", "")))
                if key in patients:
                    continue
                patients[key] = ds
                fresh.append(parse_result(QueryLevel.PATIENT, ds, fallback))
                continue
            result = parse_result(self.level, ds, fallback)
            if result.key and result.key in seen:
                continue
            seen.add(result.key)
            fresh.append(result)
        if self.level is QueryLevel.PATIENT and self.limit is not None:
            fresh = fresh[: max(0, self.limit - self.count)]
        return fresh

    def _summary(self, started: float, first_after: float | None, limit_reached: bool,
                 failure: BaseException | None) -> FindSummary:
        reasons: list[str] = []
        notes: list[str] = []
        if limit_reached:
            reasons.append(f"the limit of {self.limit} results was reached")
        if self._cancel_requested:
            reasons.append("cancelled")
        if failure is not None and not isinstance(failure, (GeneratorExit, asyncio.CancelledError)):
            reasons.append(f"failed: {failure}")
        if self._filtered:
            notes.append(f"{self._filtered} answers of a widened query did not match and were left out")
        if len(self.queries) > 1:
            notes.append(f"sent {len(self.queries)} queries (another case, or non-ASCII letters widened to *)")
        complete = not reasons
        return FindSummary(
            level=self.level, count=self.count,
            completeness=Completeness.COMPLETE if complete else Completeness.INCOMPLETE,
            status=None, limit=self.limit, limit_reached=limit_reached, cancelled=self._cancel_requested,
            reasons=tuple(reasons), notes=tuple(notes), queries=tuple(self.queries),
            query_model=QueryModel.PATIENT_ROOT if self.level is QueryLevel.PATIENT else QueryModel.STUDY_ROOT,
            elapsed=time.perf_counter() - started, first_result_after=first_after)


__all__ = ["PreparedWebQuery", "WebFindJob", "WebQuery", "WebQueryService", "answer_dataset", "qido_queries",
           "identifier_text"]
