"""C-FIND for people: QueryService's streamed, cancellable finds.

    service = QueryService(client, profile)
    async with service.find_studies(QueryKeys.studies(patient_name="smith", study_date="last 7 days"),
                                    limit=500) as found:
        async for batch in found.batches():     # or: async for study in found
            tree.add(batch)
        found.outcome.summary                   # "12 studies" / "500 studies (incomplete: ...)"

The matching rules (what a user types -> what the PACS is asked) are core.matching's; this module
applies them and sends the query. What it adds to them: every identifier sent is kept in
`FindJob.queries` ("show the exact query sent"), a name tried in another case is sent again only
while nothing is found, and a PACS that ignores Modalities in Study (answers without it, like
dcmqrscp) gets each candidate study's series asked for their modality: only studies with a wanted
one are handed over, and answers that say a modality not asked for are left out (counted in
`outcome.notes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from pydicom.dataset import Dataset

from .client import DICOMClient
from .dicom import find as dicom_find
from .dicom.bulkreceive import lean_find
from .dicom.find import FIND_MODELS, find_contexts
from .dicom.identifiers import (
    build_identifier,
    fill_study_summary,
    identifier_keys,
    identifier_text,
    identifier_to_json,
    parse_result,
)
from .dicom.operation import DEFAULT_CANCEL_TIMEOUT
from .dicom.rawidentifiers import read_result
from .errors import ServiceNotSupported
from .executor import run_blocking, start_detached, stream_blocking
from .find_summary import find_summary, raise_for_failure
from .jobs import ResultStream
from .logs import phi
from .matching import (
    DatePreset,
    contains_pattern,
    date_range,
    name_patterns,
    shape_keys,
    single_value,
    time_range,
)
from .records import (
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

if TYPE_CHECKING:
    from pynetdicom.association import Association

log = logging.getLogger(__name__)

R = TypeVar("R", PatientResult, StudyResult, SeriesResult, InstanceResult)


# --------------------------------------------------------------------------------------------
# The service


@dataclass(frozen=True)
class PreparedQuery:
    """What will be sent: the model and the identifier(s), tried in order while nothing is found."""

    level: QueryLevel
    model: QueryModel
    identifiers: tuple[Dataset, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        """Each identifier as readable lines, the exact keys sent (patient data included)."""
        return tuple(identifier_text(ds) for ds in self.identifiers)

    def describe(self, *, redact: bool = True) -> str:
        """The query as sent, in two lines: what it matches on, then what it asks back. With
        `redact` (for a log) patient data is shown only when the debug switch allows it."""
        keys = identifier_keys(self.identifiers[0], redact=redact)
        named = [(tag if name == "?" else name, value) for tag, name, value in keys]
        matching = "; ".join(f"{name} = {value}" for name, value in named if value is not None)
        returned = ", ".join(name for name, value in named if value is None)
        return (f"{self.level.value} level, {self.model.value.title()} Root; matching {matching or 'nothing'}"
                f"\nasks back {returned}")


class QueryService:
    """C-FIND at the four levels over a DICOMClient, results streamed as typed records.

    Uses the client's association when it is open (holding `client.lock` while a find runs),
    otherwise opens one for the find and releases it afterwards. `profile` supplies the query model,
    the query character set and the fallback character set (ServerProfile's defaults when None).
    """

    def __init__(self, client: DICOMClient, profile: ServerProfile | None = None, *,
                 cancel_timeout: float = DEFAULT_CANCEL_TIMEOUT,
                 today: Callable[[], date] | None = None) -> None:
        self.client = client
        self.query_model = profile.query_model if profile else QueryModel.STUDY_ROOT
        self.query_charset = profile.query_charset if profile else "ISO_IR 192"
        self.fallback_charset = profile.fallback_charset if profile else "ISO_IR 100"
        self.cancel_timeout = cancel_timeout
        self._today = today or date.today

    # -- building ---------------------------------------------------------------------------

    def model_for(self, keys: QueryKeys) -> QueryModel:
        """Patient Root at patient level; otherwise the profile's model, except that a Patient Root
        query below the patient level needs one known patient (a single Patient ID) and no other
        patient attribute to match on: when it has not, Study Root."""
        if keys.level is QueryLevel.PATIENT:
            return QueryModel.PATIENT_ROOT
        if self.query_model is QueryModel.PATIENT_ROOT and single_value(keys.patient_id) and not (
            keys.patient_name or keys.birth_date or keys.sex
        ):
            return QueryModel.PATIENT_ROOT
        return QueryModel.STUDY_ROOT

    def prepare(self, keys: QueryKeys, model: QueryModel | None = None) -> PreparedQuery:
        """The identifiers a find of `keys` sends (ValueError, in words, for keys that cannot be sent)."""
        variants = shape_keys(keys, self._today())
        model = model or self.model_for(keys)
        identifiers = tuple(build_identifier(k, charset=self.query_charset, model=model) for k in variants)
        return PreparedQuery(keys.level, model, identifiers)

    # -- finding ----------------------------------------------------------------------------

    def find(self, keys: QueryKeys, *, limit: int | None = None) -> "FindJob[Any]":
        if limit is not None and limit < 1:
            raise ValueError("a limit is a whole number of results, 1 or more")
        return FindJob(self, keys, limit=limit)

    def find_patients(self, keys: QueryKeys | None = None, *, limit: int | None = None,
                      **key_args: Any) -> "FindJob[PatientResult]":
        return self.find(_keys(keys, QueryLevel.PATIENT, QueryKeys.patients, key_args), limit=limit)

    def find_studies(self, keys: QueryKeys | None = None, *, limit: int | None = None,
                     **key_args: Any) -> "FindJob[StudyResult]":
        return self.find(_keys(keys, QueryLevel.STUDY, QueryKeys.studies, key_args), limit=limit)

    def find_series(self, keys: QueryKeys | str, *, limit: int | None = None,
                    **key_args: Any) -> "FindJob[SeriesResult]":
        if isinstance(keys, str):
            keys, key_args = QueryKeys.series(keys, **key_args), {}
        return self.find(_keys(keys, QueryLevel.SERIES, QueryKeys.series, key_args), limit=limit)

    def find_instances(self, keys: QueryKeys | str, series_instance_uid: str | None = None, *,
                       limit: int | None = None, **key_args: Any) -> "FindJob[InstanceResult]":
        if isinstance(keys, str):
            if not series_instance_uid:
                raise ValueError("an instance query needs the Series Instance UID")
            keys, key_args = QueryKeys.instances(keys, series_instance_uid, **key_args), {}
        return self.find(_keys(keys, QueryLevel.INSTANCE, QueryKeys.instances, key_args), limit=limit)


def _keys(keys: QueryKeys | None, level: QueryLevel, build: Callable[..., QueryKeys],
          key_args: dict[str, Any]) -> QueryKeys:
    if keys is None:
        return build(**key_args)
    if key_args:
        raise TypeError("give QueryKeys or key arguments, not both")
    if keys.level is not level:
        raise ValueError(f"these keys are for the {keys.level.name.lower()} level, not {level.name.lower()}")
    return keys


class FindJob(ResultStream[R]):
    """One C-FIND in progress: an async iterator of results (or of batches, `batches()`).

    Read it once. `cancel()` (from the loop, e.g. a Cancel button) sends C-CANCEL; the iteration
    then ends normally after the PACS's final status, with `outcome.cancelled`. Leaving the
    iteration early (break, an exception, the task being cancelled) does the same: use
    `async with` (or `aclose()`) to have that happen before the next line runs. `outcome` is set
    when the find has ended: count, completeness and why (limit reached, cancelled, a PACS warning,
    a count that looks like a server cap). Failures the PACS reports are raised after the results
    that came before them (DIMSEError); a PACS that goes silent raises Timeout.

    While it runs: `count` (results handed over so far), `queries` (identifiers sent, as text),
    `running`. A window shows `outcome.summary`, flags `outcome.possibly_incomplete` and lists
    `outcome.reasons` and `outcome.notes`.
    """

    def __init__(self, service: QueryService, keys: QueryKeys, *, limit: int | None) -> None:
        self.service = service
        self.keys = keys
        self.level: QueryLevel = keys.level
        self.limit = limit
        self.prepared = service.prepare(keys)  # raises ValueError now, before anything is sent
        self.queries: list[str] = []  # identifiers actually sent, as text (patient data: see logs.phi)
        self.count = 0
        self.outcome: FindSummary | None = None
        self._cancel_requested = False
        self._control: dicom_find.FindControl | None = None
        self._cancel_tasks: set[asyncio.Task] = set()
        self._filtered = 0  # results the PACS sent that did not match (keys it ignored)
        self._checked_modalities = 0
        self._unchecked = 0  # studies whose modalities could not be checked
        self._first_result_at: float | None = None

    # -- reading: core.jobs.ResultStream (batches(), async for, collect(), aclose()) ----------

    # -- stopping ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the find: C-CANCEL now, abort if the PACS has not stopped within the bound.
        Call on the loop; returns at once; the iteration ends by itself shortly after."""
        self._cancel_requested = True
        control = self._control
        if control is not None and not control.requested:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # called from a plain callback while the loop is between turns
                start_detached(control.cancel, name="find-cancel")
                return
            task = loop.create_task(run_blocking(control.cancel, name="find-cancel"))
            self._cancel_tasks.add(task)
            task.add_done_callback(self._cancel_tasks.discard)

    async def aclose(self) -> None:
        await super().aclose()
        await self._settle_cancel_tasks()

    async def _settle_cancel_tasks(self) -> None:
        if self._cancel_tasks:
            await asyncio.gather(*list(self._cancel_tasks), return_exceptions=True)

    # -- the work ---------------------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[list[R], None]:
        client, prepared = self.service.client, self.prepared
        loop = asyncio.get_running_loop()
        started = loop.time()
        summaries: list[dicom_find.FindResponses] = []
        checks: list[dicom_find.FindResponses] = []  # series queries checking modalities
        seen: set[Any] = set()
        wanted = set(self.keys.modalities) if self.level is QueryLevel.STUDY else set()
        unchecked: list[StudyResult] = []  # studies the PACS said no modality of
        model = prepared.model
        opened_here = False
        try:
            if self._cancel_requested:  # cancelled before it started: nothing to send
                return
            async with client.lock:
                if not client.is_associated:
                    await client.associate(contexts=find_contexts())
                    opened_here = True
                assoc = client.association
                model, identifiers = self._usable_model(assoc, model, self.keys)
                for identifier in identifiers:
                    if self._cancel_requested:
                        break
                    remaining = None if self.limit is None else self.limit - self.count
                    once = self._find_once(assoc, identifier, model, self.level, remaining, summaries)
                    async with contextlib.aclosing(once) as batches:  # closed (cancelled, drained) first
                        async for batch in batches:
                            fresh = self._screen(batch, seen, wanted, unchecked)
                            if fresh:
                                yield self._hand_over(fresh, loop)
                    last = summaries[-1] if summaries else None
                    if last is None or last.aborted or last.status != 0x0000 or self.count or unchecked \
                            or last.cancel_sent:
                        break
                if unchecked:
                    check = self._check_modalities(assoc, unchecked, wanted, checks)
                    async with contextlib.aclosing(check) as batches:
                        async for batch in batches:
                            yield self._hand_over(batch, loop)
        finally:
            await self._settle_cancel_tasks()
            self._control = None
            if not client.is_associated:
                client.abort()  # forget an association that was aborted under us
            elif opened_here:
                await client.release()  # every find on it has ended: it is idle
            first = None if self._first_result_at is None else self._first_result_at - started
            self.outcome = find_summary(
                self.level, summaries, checks, model=model, count=self.count, limit=self.limit,
                cancel_requested=self._cancel_requested, filtered=self._filtered,
                checked_modalities=self._checked_modalities, unchecked=self._unchecked,
                queries=tuple(self.queries), elapsed=loop.time() - started, first_result_after=first)
        raise_for_failure(summaries, self.service.client.timeouts.dimse)

    def _screen(self, batch: list[Any], seen: set[Any], wanted: set[str], unchecked: list[Any]) -> list[Any]:
        """The results of `batch` to hand over: new ones (a name retried in another case may find the
        same again), matching the modalities asked for when the PACS says them (else held back in
        `unchecked` to be checked series by series)."""
        fresh = []
        for result in batch:
            key = result.key
            if key and key in seen:
                continue
            seen.add(key)
            if wanted:
                if result.modalities is None:
                    unchecked.append(result)
                    continue
                if not wanted & set(result.modalities):
                    self._filtered += 1  # the PACS ignored the key: we match
                    continue
            fresh.append(result)
        return fresh

    def _hand_over(self, batch: list[R], loop: asyncio.AbstractEventLoop) -> list[R]:
        self.count += len(batch)
        if self._first_result_at is None:
            self._first_result_at = loop.time()
        return batch

    async def _find_once(self, assoc: Association, identifier: Dataset, model: QueryModel, level: QueryLevel,
                         limit: int | None, summaries: list[dicom_find.FindResponses]
                         ) -> AsyncGenerator[list[Any], None]:
        """One C-FIND on a worker thread, its results in batches; its summary goes to `summaries`
        (also when the reader leaves early: the find is then cancelled and drained first)."""
        control = dicom_find.FindControl(self.service.cancel_timeout)
        self._control = control
        holder: dict[str, dicom_find.FindResponses] = {}
        self.queries.append(identifier_text(identifier))
        log.info("C-FIND %s level (%s root)", level.name.lower(), model.value)
        log.debug("C-FIND identifier:\n%s", phi(self.queries[-1]))
        producer = _producer(assoc, identifier, FIND_MODELS[model], level, self.service.fallback_charset,
                             control, limit, holder)
        inner = stream_blocking(producer, name="find")
        try:
            async for batch in inner:
                yield batch
        finally:
            await self._stop(control, inner)
            if "summary" in holder:
                summaries.append(holder["summary"])

    async def _check_modalities(self, assoc: Association, studies: list[StudyResult], wanted: set[str],
                                checks: list[dicom_find.FindResponses]) -> AsyncGenerator[list[Any], None]:
        """For a PACS that leaves Modalities in Study empty (DCMTK's dcmqrscp): ask each study's
        series for their modality and keep the studies that have a wanted one."""
        log.info("the PACS does not return Modalities in Study: checking %d studies series by series",
                 len(studies))
        self._checked_modalities = len(studies)
        for study in studies:
            if self._cancel_requested or (self.limit is not None and self.count >= self.limit):
                self._unchecked += 1
                continue
            keys = QueryKeys.series(study.study_instance_uid, patient_id=study.patient_id)
            model, identifiers = self._usable_model(assoc, QueryModel.STUDY_ROOT, keys)
            found: list[SeriesResult] = []
            once = self._find_once(assoc, identifiers[0], model, QueryLevel.SERIES, None, checks)
            async with contextlib.aclosing(once) as batches:
                async for batch in batches:
                    found.extend(batch)
            last = checks[-1] if checks else None
            if last is None or last.aborted or last.status != 0x0000:
                self._unchecked += 1
                if last is None or last.aborted:
                    break
                continue
            modalities = {series.modality for series in found if series.modality}
            if wanted & modalities:
                counts = [series.number_of_instances for series in found]
                known = [count for count in counts if count is not None]
                checked = replace(
                    study, modalities=tuple(sorted(modalities)),
                    number_of_series=study.number_of_series if study.number_of_series is not None else len(found),
                    number_of_instances=study.number_of_instances if study.number_of_instances is not None
                    else (sum(known) if known and len(known) == len(counts) else None),
                )
                fill_study_summary(checked.dataset, checked.modalities or (), checked.number_of_series,
                                   checked.number_of_instances)
                yield [checked]
            else:
                self._filtered += 1

    def _usable_model(self, assoc: Association, model: QueryModel, keys: QueryKeys
                      ) -> tuple[QueryModel, tuple[Dataset, ...]]:
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        if str(FIND_MODELS[model]) in accepted:
            if keys is self.keys and model is self.prepared.model:
                return model, self.prepared.identifiers
            try:
                return model, self.service.prepare(keys, model).identifiers
            except ValueError:
                pass
        other = QueryModel.STUDY_ROOT if model is QueryModel.PATIENT_ROOT else QueryModel.PATIENT_ROOT
        if keys.level is not QueryLevel.PATIENT and str(FIND_MODELS[other]) in accepted:
            try:
                return other, self.service.prepare(keys, other).identifiers
            except ValueError:
                pass
        client = self.service.client
        raise ServiceNotSupported(
            client.host, client.port, f"C-FIND in the {model.value.title()} Root model",
            detail="accepted: " + (", ".join(sorted(accepted)) or "nothing"),
            hint="the PACS does not offer this query model to us")

    async def _stop(self, control: dicom_find.FindControl, inner: AsyncIterator[list[R]]) -> None:
        """After the inner stream: make sure the find has ended (cancel and wait when the reader left
        early) and that its stream is drained, so the worker thread is done."""
        if not control.finished:  # the reader left early: stop the PACS
            self._cancel_requested = True
            await run_blocking(control.cancel, name="find-cancel")
        with contextlib.suppress(Exception):
            async for _ in inner:  # drain what the worker still emitted; ends when it has ended
                pass


def result_json(result: PatientResult | StudyResult | SeriesResult | InstanceResult) -> dict[str, Any]:
    """A result as a JSON-ready dict keyed by DICOM keyword (text as str, person names in DICOM form,
    several values as lists, empty values as None). The text is Unicode by now: SpecificCharacterSet
    says what the PACS declared (left out when it declared none)."""
    row = identifier_to_json(result.dataset) if result.dataset is not None else {}
    received = list(result.charset_received)
    if received:
        row["SpecificCharacterSet"] = received[0] if len(received) == 1 else received
    else:
        row.pop("SpecificCharacterSet", None)
    return row


def _producer(assoc: Association, identifier: Dataset, model_uid: Any, level: QueryLevel, fallback: str,
              control: dicom_find.FindControl, limit: int | None,
              holder: dict[str, dicom_find.FindResponses]) -> Callable[[Callable[[Any], None]], None]:
    if not lean_find():  # pynetdicom's decode, a Dataset per response, then parse_result
        def produce_datasets(emit: Callable[[Any], None]) -> None:
            holder["summary"] = dicom_find.run_find(
                assoc, identifier, model_uid, lambda ds: emit(parse_result(level, ds, fallback)),
                control=control, limit=limit)

        return produce_datasets

    flags: dict[Any, tuple[bool, bool, bool]] = {}  # the context's transfer syntax, looked at once

    def read(raw: bytes, syntax: Any) -> Any:
        try:
            implicit, little, deflated = flags[syntax]
        except KeyError:
            implicit, little, deflated = flags[syntax] = (syntax.is_implicit_VR, syntax.is_little_endian,
                                                          syntax.is_deflated)
        return read_result(level, raw, implicit=implicit, little=little, deflated=deflated, fallback=fallback)

    def produce(emit: Callable[[Any], None]) -> None:
        holder["summary"] = dicom_find.run_find(assoc, identifier, model_uid, emit, control=control, limit=limit,
                                                read=read)

    return produce


__all__ = [
    "DatePreset",
    "FindJob",
    "PreparedQuery",
    "QueryService",
    "contains_pattern",
    "date_range",
    "find_contexts",
    "name_patterns",
    "result_json",
    "shape_keys",
    "time_range",
]
