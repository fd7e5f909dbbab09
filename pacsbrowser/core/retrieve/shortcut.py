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
from ..client import DICOMClient
from ..dicom import find as dicom_find
from ..dicom import retrieve as dicom_retrieve
from ..errors import DIMSEError, ServiceNotSupported
from ..executor import run_blocking
from ..query import find_contexts
from ..records import QueryLevel, RetrieveMethod, ServerProfile
from .association import open_association
from .counting import RetrieveCounts
from .planning import Plan, Target


def archive_holds_any(archive: Archive, target: Target) -> bool:
    """Whether the archive holds any instance of the target (blocking; one indexed lookup)."""
    archive.flush()
    if target.sop_uid:
        return archive.has_instance(target.sop_uid)
    if target.series_uid:
        return bool(archive.index_reader.query("SELECT 1 FROM instances WHERE series_uid = ? LIMIT 1",
                                               (target.series_uid,)))
    return bool(archive.index_reader.query("SELECT 1 FROM series WHERE study_uid = ? LIMIT 1", (target.study_uid,)))


async def quick_plan(profile: ServerProfile, archive: Archive, target: Target, counts: RetrieveCounts, *,
                     method: RetrieveMethod, resume: bool, cancel_timeout: float) -> Plan | None:
    """The plan without listing the instances, or None when the listing is needed (see above)."""
    if not resume:
        return None
    if method is RetrieveMethod.GET and target.level is not QueryLevel.STUDY:
        return None
    if await run_blocking(archive_holds_any, archive, target, name="retrieve-plan"):
        return None
    if target.level is QueryLevel.INSTANCE:  # a C-MOVE of one instance
        return Plan(None, expected=1)
    client = DICOMClient.from_profile(profile)
    try:
        async with open_association(client, counts, contexts=find_contexts()) as assoc:
            async with client.lock:
                facts = await run_blocking(dicom_find.holdings, assoc, target.study_uid, target.series_uid,
                                           timeout=cancel_timeout, name="retrieve-plan")
    except (DIMSEError, ServiceNotSupported):
        return None
    if facts is None or facts[1] is None:
        return None
    classes, count = facts
    if method is RetrieveMethod.MOVE:
        return Plan(None, expected=count)
    if not classes or len(dicom_retrieve.plan_get_contexts(classes)) != 1:
        return None
    return Plan(None, sop_classes=tuple(classes), expected=count)


__all__ = ["archive_holds_any", "quick_plan"]
