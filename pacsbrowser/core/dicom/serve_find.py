"""Our C-FIND SCP (Patient Root and Study Root): the archive's answers as pending responses.

A pynetdicom EVT_C_FIND handler over core.archive.query: one pending response per match, in the
index's order, C-CANCEL honoured between two responses; an identifier the model cannot answer is
refused with 0xA900 (identifier does not match SOP class), one that cannot be read with 0xC310.

pynetdicom queues every response for sending without limit: a handler that yields as fast as the
index answers queues thousands of responses ahead of a slow reader, and a C-CANCEL then ends the
operation only after all of them have crossed the wire. So the handler waits while more than
`MAX_QUEUED` PDUs wait to be sent: a cancel is answered after at most that many more responses.
It stops when the connection has ended meanwhile (that queue would never drain).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from ..archive import Archive
from ..archive.query import ArchiveQuery, QueryError

log = logging.getLogger(__name__)

PENDING, SUCCESS, CANCEL = 0xFF00, 0x0000, 0xFE00
MAX_QUEUED = 32  # PDUs waiting in pynetdicom's send queue before the handler waits for the reader
IDENTIFIER_MISMATCH = 0xA900  # identifier does not match SOP class
UNABLE_TO_PROCESS = 0xC310

# SOP class of the request -> the information model core.archive.query answers in
MODELS = {
    str(PatientRootQueryRetrieveInformationModelFind): "PATIENT",
    str(PatientRootQueryRetrieveInformationModelGet): "PATIENT",
    str(PatientRootQueryRetrieveInformationModelMove): "PATIENT",
    str(StudyRootQueryRetrieveInformationModelFind): "STUDY",
    str(StudyRootQueryRetrieveInformationModelGet): "STUDY",
    str(StudyRootQueryRetrieveInformationModelMove): "STUDY",
}
FIND_MODELS = (PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind)
RETRIEVE_MODELS = (PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet,
                   PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove)


def request_model(event: Any) -> str:
    return MODELS.get(str(event.request.AffectedSOPClassUID), "STUDY")


def calling_ae(event: Any) -> str:
    return str(event.assoc.requestor.ae_title or "").strip()


def connection_gone(assoc: Any) -> bool:
    """The connection under `assoc` has ended (its DUL thread stopped, or back to idle or waiting
    for the transport to close), while this handler's thread still sees the association established:
    pynetdicom tells the association thread only once the handler returns."""
    dul = assoc.dul
    return not dul.is_alive() or dul.state_machine.current_state in ("Sta1", "Sta13")


def wait_for_sending(event: Any, limit: int = MAX_QUEUED) -> str:
    """Wait until at most `limit` PDUs are queued for sending: "ready"; "cancelled" when a C-CANCEL
    came meanwhile (or had come: pynetdicom forgets it once asked); "gone" when the connection ended
    (the queue would never drain: a peer that stopped reading and timed out, a reset)."""
    assoc = event.assoc
    queue = assoc.dul.to_provider_queue
    while True:
        if event.is_cancelled:
            return "cancelled"
        if not assoc.is_established or connection_gone(assoc):
            return "gone"
        if queue.qsize() <= limit:
            return "ready"
        time.sleep(0.002)


class FindHandler:
    """EVT_C_FIND: answers from `archive`; `ae_title` goes into RetrieveAETitle when asked for."""

    def __init__(self, archive: Archive, ae_title: str) -> None:
        self.query = ArchiveQuery(archive)
        self.ae_title = ae_title

    def __call__(self, event: Any) -> Iterator[tuple[int, Any]]:
        model = request_model(event)
        try:
            identifier = event.identifier
        except Exception as exc:  # noqa: BLE001 - whatever pydicom raises, the identifier cannot be read
            log.warning("C-FIND from %s: the identifier cannot be read (%s)", calling_ae(event), exc)
            yield UNABLE_TO_PROCESS, None
            return
        count = 0
        try:
            for answer in self.query.find(identifier, model, retrieve_ae=self.ae_title):
                state = wait_for_sending(event)
                if state == "cancelled":
                    log.info("C-FIND from %s cancelled after %d answers", calling_ae(event), count)
                    yield CANCEL, None
                    return
                if state == "gone":
                    log.warning("C-FIND from %s: the connection ended after %d answers", calling_ae(event), count)
                    return
                count += 1
                yield PENDING, answer
        except QueryError as exc:
            log.warning("C-FIND from %s refused: %s", calling_ae(event), exc)
            yield IDENTIFIER_MISMATCH, None
            return
        log.info("C-FIND from %s (%s root): %d answers", calling_ae(event), model.lower(), count)


__all__ = ["FIND_MODELS", "MODELS", "RETRIEVE_MODELS", "FindHandler", "calling_ae", "connection_gone", "request_model",
           "wait_for_sending"]
