"""The smallest useful C-FIND: a study-level query for a UID nobody holds (the profile test uses it)."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pynetdicom import build_context
from pynetdicom.association import Association
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from ..errors import AssociationAborted, DIMSEError, Timeout
from ..executor import run_blocking
from .operation import MEDIUM


def _find(assoc: Association, uid: str) -> int:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = uid
    query.StudyDate = ""
    status_code = None
    for status, _identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind,
                                                 priority=MEDIUM):
        if not status or "Status" not in status:
            if not assoc.is_established:
                raise AssociationAborted("The PACS closed the association during C-FIND")
            raise Timeout("waiting for the C-FIND response", assoc.dimse_timeout or 0)
        status_code = int(status.Status)
    if status_code is None:
        raise AssociationAborted("The PACS sent no C-FIND response")
    if status_code not in (0x0000, 0xFF00, 0xFF01) and (status_code >> 12) not in (0xB,):
        raise DIMSEError(status_code, "C-FIND", comment=str(status.get("ErrorComment", "")))
    return status_code


async def minimal_find(client, uid: str) -> int:
    """Associate `client` for Study Root C-FIND, query for `uid`, release; the final status."""
    await client.associate([build_context(StudyRootQueryRetrieveInformationModelFind)])
    try:
        async with client.lock:
            status = await run_blocking(_find, client.association, uid, name="probe-find")
    except BaseException:
        client.abort()
        raise
    await client.release()
    return status
