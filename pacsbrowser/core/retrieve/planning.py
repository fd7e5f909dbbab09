"""Planning a retrieve (resume): what the PACS holds of the target, what the archive holds of it
already, and the C-GET/C-MOVE requests that fetch only the rest.

The PACS is asked with C-FIND on one association: the series of the study, then the instances (SOP
Instance and SOP Class UIDs) of each series; for a C-GET whose instances came without their SOP
classes, the study's SOP Classes in Study too. What is missing goes as the whole target when nothing
is here; otherwise whole series (SERIES level, a UID list) and the missing instances of partly
present series (IMAGE level, UID lists). A PACS that does not answer gets one request for the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from ..archive import Archive
from ..client import DICOMClient
from ..dicom import find as dicom_find
from ..dicom import retrieve as dicom_retrieve
from ..errors import DIMSEError, ServiceNotSupported
from ..executor import run_blocking
from ..query import QueryService, find_contexts
from ..records import QueryKeys, QueryLevel, RetrieveMethod, ServerProfile
from .association import open_association
from .counting import RetrieveCounts


@dataclass(frozen=True)
class Target:
    """What was asked for."""

    level: QueryLevel
    study_uid: str
    series_uid: str = ""
    sop_uid: str = ""


@dataclass(frozen=True)
class Wanted:
    """An instance the PACS listed."""

    uid: str
    series_uid: str
    sop_class: str = ""  # '' when the PACS did not say


@dataclass
class Plan:
    """What the PACS holds of the target (`wanted`, None when it did not say) and what the archive
    holds of it already (`present`)."""

    wanted: list[Wanted] | None
    present: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    # SOP Classes in Study: asked when the instances did not say theirs, or instead of a listing
    # (core.retrieve.shortcut, with the instance count the PACS said in `expected`)
    study_classes: tuple[str, ...] = ()
    expected: int | None = None

    @property
    def missing(self) -> list[Wanted] | None:
        if self.wanted is None:
            return None
        return [w for w in self.wanted if w.uid not in self.present]

    @property
    def classes_known(self) -> bool:
        return self.wanted is not None and all(w.sop_class for w in self.wanted)


@dataclass(frozen=True)
class Request:
    """One C-GET/C-MOVE identifier to send. `count`: instances it should bring (None: unknown)."""

    level: QueryLevel
    series_uids: tuple[str, ...] = ()
    sop_uids: tuple[str, ...] = ()
    count: int | None = None

    def identifier(self, study_uid: str) -> Dataset:
        return dicom_retrieve.retrieve_identifier(self.level, study_uid, self.series_uids, self.sop_uids)


def plan_requests(target: Target, plan: Plan, todo: list[Wanted] | None) -> list[Request]:
    """The requests that fetch `todo` (a subset of plan.wanted; None: unknown, fetch the target)."""
    if todo is None or plan.wanted is None:
        series = (target.series_uid,) if target.series_uid else ()
        sops = (target.sop_uid,) if target.sop_uid else ()
        return [Request(target.level, series, sops, None)]
    if not todo:
        return []
    if {w.uid for w in todo} == {w.uid for w in plan.wanted}:  # all of it: one request for the target
        series = (target.series_uid,) if target.series_uid else ()
        sops = (target.sop_uid,) if target.sop_uid else ()
        return [Request(target.level, series, sops, len(todo))]
    by_series: dict[str, list[Wanted]] = {}
    for w in todo:
        by_series.setdefault(w.series_uid, []).append(w)
    all_by_series: dict[str, set[str]] = {}
    for w in plan.wanted:
        all_by_series.setdefault(w.series_uid, set()).add(w.uid)
    whole: list[str] = []
    requests: list[Request] = []
    for series_uid, items in by_series.items():
        if {w.uid for w in items} == all_by_series.get(series_uid, set()) and target.level is QueryLevel.STUDY:
            whole.append(series_uid)
            continue
        for chunk in dicom_retrieve.chunks([w.uid for w in items]):
            requests.append(Request(QueryLevel.INSTANCE, (series_uid,), tuple(chunk), len(chunk)))
    for chunk in dicom_retrieve.chunks(whole):
        count = sum(len(by_series[s]) for s in chunk)
        requests.insert(0, Request(QueryLevel.SERIES, tuple(chunk), (), count))
    return requests


async def make_plan(profile: ServerProfile, archive: Archive, target: Target, counts: RetrieveCounts, *,
                    method: RetrieveMethod, to_us: bool, resume: bool, cancel_timeout: float,
                    cancelled: Callable[[], bool], said_classes: tuple[str, ...] | None = None) -> Plan:
    """The plan of one job (`to_us`: a C-MOVE whose destination is our own listener). The notes of
    the PACS's listing and the association it took are counted in `counts`. `said_classes`: the
    SOP Classes in Study the PACS already said (core.retrieve.shortcut asked), not asked again."""
    if method is RetrieveMethod.MOVE and not to_us:
        return Plan(None)  # another AE's storage: our archive says nothing about it
    if method is RetrieveMethod.MOVE and not resume:
        return Plan(None, notes=["not checked against the archive (no resume)"])
    # SOP Classes in Study: what the PACS said already (core.retrieve.shortcut), or asked on the
    # listing's own association when the instances do not say theirs
    found_classes: list[str] | None = [] if method is RetrieveMethod.GET and said_classes is None else None
    wanted, notes = await list_instances(profile, target, counts, cancel_timeout=cancel_timeout, cancelled=cancelled,
                                         study_classes=found_classes)
    study_classes = said_classes if said_classes is not None else tuple(found_classes or ())
    if method is RetrieveMethod.GET and wanted and not all(w.sop_class for w in wanted):
        if study_classes:
            notes.append(f"the PACS did not say the instances' SOP classes; it listed {len(study_classes)} for the "
                         "study (SOP Classes in Study): their storage contexts were proposed")
        else:
            notes.append("the PACS did not say the SOP classes: a default set of storage contexts was proposed")
    plan = Plan(wanted, notes=notes, study_classes=study_classes)
    counts.notes.extend(notes)
    if wanted is not None and resume:
        plan.present = await run_blocking(archive_holds, archive, target.study_uid, name="retrieve-plan")
    return plan


def archive_holds(archive: Archive, study_uid: str) -> set[str]:
    """SOP Instance UIDs of the study in the archive (blocking)."""
    archive.flush()
    return {row.sop_instance_uid for row in archive.instances(study_uid=study_uid)}


async def study_holdings(profile: ServerProfile, study_uid: str, series_uid: str, counts: RetrieveCounts, *,
                         cancel_timeout: float) -> tuple[tuple[str, ...], int | None] | None:
    """What the PACS says it holds of a study (of a series with `series_uid`), from one C-FIND on its
    own association: the SOP Classes in Study (0008,0062; study level only) and the number of related
    instances, or None when it did not answer with exactly one match."""
    client = DICOMClient.from_profile(profile)
    try:
        async with open_association(client, counts, contexts=find_contexts()) as assoc:
            async with client.lock:
                facts = await run_blocking(dicom_find.holdings, assoc, study_uid, series_uid,
                                           timeout=cancel_timeout, name="retrieve-plan")
    except (DIMSEError, ServiceNotSupported):
        return None
    if facts is None:
        return None
    return tuple(dict.fromkeys(facts[0])), facts[1]


async def classes_in_study(service: QueryService, study_uid: str) -> list[str]:
    """SOP Classes in Study (0008,0062) from a study-level C-FIND on the service's association;
    [] when the PACS does not say."""
    keys = QueryKeys.studies(study_instance_uid=study_uid, extra={"SOPClassesInStudy": ""})
    try:
        found = await service.find_studies(keys).collect()
    except (DIMSEError, ServiceNotSupported, ValueError):
        return []
    classes: dict[str, None] = {}
    for study in found:
        value = study.dataset.get("SOPClassesInStudy") if study.dataset is not None else None
        if value:
            for uid in ([value] if isinstance(value, str) else list(value)):
                if str(uid).strip():
                    classes[str(uid).strip()] = None
    return list(classes)


async def list_instances(profile: ServerProfile, target: Target, counts: RetrieveCounts, *, cancel_timeout: float,
                         cancelled: Callable[[], bool], study_classes: list[str] | None = None,
                         ) -> tuple[list[Wanted] | None, list[str]]:
    """The instances of the target, from C-FIND at series and image level (None if unanswered),
    and notes on what the PACS did not say. `study_classes`, when given, gets the study's SOP
    Classes in Study if some instances came without their SOP class (same association)."""
    t = target
    client = DICOMClient.from_profile(profile)
    wanted: list[Wanted] = []
    try:
        async with open_association(client, counts, contexts=find_contexts()):
            service = QueryService(client, profile, cancel_timeout=cancel_timeout)
            try:
                if t.level is QueryLevel.STUDY:
                    series = [s.series_instance_uid for s in await service.find_series(t.study_uid).collect()
                              if s.series_instance_uid]
                else:
                    series = [t.series_uid]
                for series_uid in series:
                    if cancelled():
                        return None, []
                    keys = QueryKeys.instances(t.study_uid, series_uid, sop_instance_uid=t.sop_uid)
                    found = service.find_instances(keys)
                    for result in await found.collect():
                        if result.sop_instance_uid:
                            wanted.append(Wanted(result.sop_instance_uid, result.series_instance_uid or series_uid,
                                                 result.sop_class_uid))
                    outcome = found.outcome
                    if outcome is not None and outcome.incomplete:
                        return None, ["the PACS's instance list was incomplete: retrieved without checking the archive"]
            except (DIMSEError, ServiceNotSupported, ValueError) as exc:
                return None, [f"the PACS did not list the instances ({exc}): retrieved without checking the archive"]
            if study_classes is not None and wanted and not all(w.sop_class for w in wanted):
                study_classes.extend(await classes_in_study(service, t.study_uid))
    except ServiceNotSupported as exc:  # the association itself: nothing accepted
        return None, [f"the PACS does not answer queries ({exc.services}): retrieved without checking the archive"]
    return list({w.uid: w for w in wanted}.values()), []


__all__ = ["Plan", "Request", "Target", "Wanted", "archive_holds", "classes_in_study", "list_instances", "make_plan", "plan_requests"]
