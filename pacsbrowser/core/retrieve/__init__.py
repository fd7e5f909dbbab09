"""Retrieving studies, series and instances into the local archive: C-GET or C-MOVE, with progress,
cancel and resume.

    service = RetrieveService(profile, archive)            # scp=ArchiveServer for C-MOVE, optional
    job = service.get_study(study_uid)                       # or move_study(uid, "PACSBROWSER")
    async for progress in job:                               # RetrieveProgress, as it changes
        bar.set(progress.fraction); label.set(f"{progress.received} ({progress.rate:.0f}/s)")
    summary = await job                                      # RetrieveSummary
    job.cancel()                                             # from a Cancel button, any time

What a job does, and where:

1. Plan (resume), planning.py. It asks the PACS what the study (series, instance) holds: a series
   query, then an instance query per series (SOP Instance and SOP Class UIDs), on one association;
   and the archive what it has. Only what the archive lacks is fetched: the whole study in one
   request when nothing is there; otherwise whole series and the missing instances of partly
   present series. A complete study fetches nothing. A PACS that does not answer the queries gets
   one request for what was asked, and C-GET then proposes a default set of storage classes.
2. C-GET, running.py: the storage contexts are those of the SOP classes the PACS listed (uncompressed
   in one context, each compressed syntax in its own, the SCP role for each class), split over
   several associations when more than 128 contexts are needed. Sub-operations arrive on the same
   association and go straight into the archive (Archive.store, the Storage SCP's write path),
   undecoded. What the PACS could not send on the contexts it accepted is asked for again on a new
   association with an accepted compressed syntax first, once per syntax the PACS accepted.
3. C-MOVE, running.py: when the destination is our own AE title, our Storage SCP must be listening:
   the service's (`scp`) or one it starts for the job on the profile's `listener_port` (service.py);
   the job subscribes to it for what arrives. The job ends when the PACS's final response has come
   and what arrived is indexed (a PACS that answers before its last sub-operations is waited for
   while instances keep coming). Instead of a DIMSE timeout per response (a PACS need not send
   pending responses), the job gives up after the profile's DIMSE timeout of silence: no response
   and nothing at the listener. 0xA801 (and a general failure before any sub-operation, as Orthanc
   answers an unknown destination) raise MoveDestinationUnknown naming the AE title, host and port
   to register.
4. Cancel (job.py, running.py): C-CANCEL, keep reading (sub-operations still arriving are kept, each
   written whole), abort when the PACS has not ended the operation within `cancel_timeout`. Nothing
   half-written stays: the archive writes a temporary file and renames it.
5. A broken association raises RetrieveInterrupted saying how many instances arrived; they stay,
   and the next retrieve fetches only the rest. Every count, the progress records and the summary
   come from one RetrieveCounts (counting.py).
"""

from __future__ import annotations

from ..dicom.operation import DEFAULT_CANCEL_TIMEOUT
from .counting import RetrieveCounts
from .job import RetrieveJob
from .planning import Plan, Request, Target, Wanted, plan_requests
from .service import RetrieveService

__all__ = [
    "DEFAULT_CANCEL_TIMEOUT",
    "Plan",
    "Request",
    "RetrieveCounts",
    "RetrieveJob",
    "RetrieveService",
    "Target",
    "Wanted",
    "plan_requests",
]
