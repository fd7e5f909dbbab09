"""A scripted pynetdicom SCP on 127.0.0.1 that records what our client asks (the Priority of each
request) and misbehaves on request: a C-MOVE that stays silent before its first sub-operation, a
C-FIND answer whose identifier cannot be decoded."""

from __future__ import annotations

import threading
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.lab.scp import LOOPBACK, LoopbackSCP

UNDECODABLE = "UNDECODABLE"  # a C-FIND answer whose PatientID is this is sent as bytes nobody can decode


class RecordingSCP(LoopbackSCP):
    """C-ECHO, C-FIND (answers `answers`), C-GET (no sub-operations), C-MOVE of `move_file` to
    `destination` after `quiet` seconds without a word, C-STORE (kept in `stored`).
    `priorities`: (service, Priority) of every request. With `deflated_find`, C-FIND is accepted in
    Deflated Explicit VR Little Endian only."""

    def __init__(self, *, answers: tuple[Dataset, ...] = (), move_file: Any = None,
                 destination: tuple[str, int] | None = None, quiet: float = 0.0, deflated_find: bool = False) -> None:
        super().__init__("RECORDING")
        self.answers, self.move_file, self.destination, self.quiet = answers, move_file, destination, quiet
        self.deflated_find = deflated_find
        self.priorities: list[tuple[str, int]] = []
        self.stored: list[Dataset] = []
        self._lock = threading.Lock()

    def _record(self, service: str, event: Any) -> None:
        with self._lock:
            self.priorities.append((service, int(event.request.Priority)))

    def _application_entity(self) -> tuple[AE, list[tuple[Any, Any]]]:
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(Verification)
        if self.deflated_find:
            ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind, DeflatedExplicitVRLittleEndian)
        else:
            ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        for cx in AllStoragePresentationContexts[:100]:  # with the roles a C-GET caller proposes
            ae.add_supported_context(cx.abstract_syntax, scu_role=True, scp_role=True)
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")  # CT, for the C-MOVE's sub-operation
        ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 30
        return ae, [(evt.EVT_C_FIND, self._on_find), (evt.EVT_C_GET, self._on_get),
                    (evt.EVT_C_MOVE, self._on_move), (evt.EVT_C_STORE, self._on_store)]

    def _on_find(self, event: Any):
        self._record("C-FIND", event)
        for answer in self.answers:
            yield 0xFF00, answer
        yield 0x0000, None

    def _on_get(self, event: Any):
        self._record("C-GET", event)
        yield 0

    def _on_move(self, event: Any):
        self._record("C-MOVE", event)
        if self.destination is None:
            yield None, None
            return
        yield self.destination
        yield 1
        if self._stop.wait(self.quiet):  # silent: no pending response, no sub-operation yet
            return
        yield 0xFF00, dcmread(self.move_file)

    def _on_store(self, event: Any) -> int:
        self._record("C-STORE", event)
        self.stored.append(event.dataset)
        return 0x0000


__all__ = ["LOOPBACK", "RecordingSCP", "UNDECODABLE"]
