"""Fixtures of the query tests: a scripted C-FIND SCP, and helpers to query a peer (profile_for and
run are in tests.lab.client).

The session peers (orthanc, orthanc_latin1, dcmqrscp, lab_data, fault_scp) come from tests/conftest.py.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from pacsbrowser.core.client import DICOMClient
from pacsbrowser.core.query import QueryService
from tests.lab.client import profile_for
from tests.lab.scp import LoopbackSCP


def service_for(peer: Any, **changes: Any) -> QueryService:
    cancel_timeout = changes.pop("cancel_timeout", 5.0)
    profile = profile_for(peer, **changes)
    return QueryService(DICOMClient.from_profile(profile), profile, cancel_timeout=cancel_timeout)


async def collect(service: QueryService, keys: Any, **kw: Any) -> tuple[list[Any], Any]:
    found = service.find(keys, **kw)
    results = await found.collect()
    return results, found.outcome


class ScriptedSCP(LoopbackSCP):
    """A C-FIND SCP on 127.0.0.1 answering every query with a script, for what FaultSCP cannot do.

    ``responses``: (status, identifier or None) pairs sent in order (the last one usually final).
    ``hang_after``: after that many responses, stop answering (ignoring C-CANCEL) until shut down
    or ``hang_for`` seconds pass; ``stubborn``: keep sending pending responses after C-CANCEL.
    Records C-CANCELs seen, aborts received, and when each response was handed to pynetdicom.
    """

    def __init__(self, responses: Iterable[tuple[int, Dataset | None]] = (), *, hang_after: int | None = None,
                 hang_for: float = 20.0, stubborn: bool = False, interval: float = 0.0) -> None:
        super().__init__("SCRIPTED")
        self.responses = list(responses)
        self.hang_after = hang_after
        self.hang_for = hang_for
        self.stubborn = stubborn
        self.interval = interval
        self.requests: list[Dataset] = []
        self.cancel_seen = threading.Event()
        self.aborted = threading.Event()
        self.sent_at: list[float] = []

    def _application_entity(self) -> tuple[AE, list[tuple[Any, Any]]]:
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(Verification)
        ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 30
        return ae, [(evt.EVT_C_FIND, self._on_find), (evt.EVT_ABORTED, lambda event: self.aborted.set())]

    def _on_find(self, event: Any):
        self.requests.append(event.identifier)
        for number, (status, identifier) in enumerate(self.responses):
            if self.hang_after is not None and number >= self.hang_after:
                self._stop.wait(self.hang_for)  # deaf to C-CANCEL: the client must give up
                return
            if event.is_cancelled:
                self.cancel_seen.set()
                if not self.stubborn:
                    yield 0xFE00, None
                    return
            if self.interval:
                self._stop.wait(self.interval)
            if self._stop.is_set():
                return
            self.sent_at.append(time.monotonic())
            yield status, identifier


@pytest.fixture
def scripted_scp(start_scp: Callable[..., Any]) -> Callable[..., ScriptedSCP]:
    """``scripted_scp(responses, **options)``: a started ScriptedSCP, shut down after the test."""
    return functools.partial(start_scp, ScriptedSCP)
