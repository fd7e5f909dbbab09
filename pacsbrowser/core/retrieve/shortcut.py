"""No wasted round trips: the plan of a retrieve whose target the archive holds nothing of.

Listing the PACS's instances (core.retrieve.planning) costs a C-FIND per series and a response per
instance, and it only pays off when some of them are here already. When the archive holds no
instance of the target, nothing is to be skipped:

- C-MOVE: one C-FIND at the level of the target for its number of instances (none for one
  instance); the whole target is asked for.
- C-GET of a study: one study-level C-FIND for SOP Classes in Study (0008,0062) and the instance
  count, enough to propose the storage contexts (with us as SCP) on one association.
- Otherwise the full listing, as before: a PACS that does not say the count or the classes
  (dcmqrscp leaves them empty), a study whose classes need more than one association, a C-GET of
  a series or an instance (its listing is one C-FIND).
"""

from __future__ import annotations

from ..archive import Archive
from ..dicom import retrieve as dicom_retrieve
from ..executor import run_blocking
from ..records import QueryLevel, RetrieveMethod, ServerProfile
from .counting import RetrieveCounts
from .planning import Plan, Target, study_holdings


def archive_holds_any(archive: Archive, target: Target) -> bool:
    """Whether the archive holds any instance of the target (blocking; one indexed lookup)."""
    archive.flush()
    if target.sop_uid:
        return archive.has_instance(target.sop_uid)
    return archive.holds_any(target.study_uid, target.series_uid)


async def quick_plan(profile: ServerProfile, archive: Archive, target: Target, counts: RetrieveCounts, *,
                     method: RetrieveMethod, resume: bool, cancel_timeout: float
                     ) -> tuple[Plan | None, tuple[str, ...] | None]:
    """The plan without listing the instances, or None when the listing is needed (see above); and
    the SOP Classes in Study the PACS said when it was asked (None: not asked), for the listing's
    plan, so that it does not ask again."""
    if not resume:
        return None, None
    if method is RetrieveMethod.GET and target.level is not QueryLevel.STUDY:
        return None, None
    if await run_blocking(archive_holds_any, archive, target, name="retrieve-plan"):
        return None, None
    if target.level is QueryLevel.INSTANCE:  # a C-MOVE of one instance
        return Plan(None, expected=1), None
    facts = await study_holdings(profile, target.study_uid, target.series_uid, counts, cancel_timeout=cancel_timeout)
    if facts is None:
        return None, None
    classes, count = facts
    said = classes if not target.series_uid else None  # a series-level answer has no classes
    if count is None:
        return None, said
    if method is RetrieveMethod.MOVE:
        return Plan(None, expected=count), said
    if not classes or len(dicom_retrieve.plan_get_contexts(classes)) != 1:
        return None, said
    return Plan(None, study_classes=classes, expected=count), said


__all__ = ["archive_holds_any", "quick_plan"]
