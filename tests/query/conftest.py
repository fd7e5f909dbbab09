"""Fixtures of the query tests: a Latin-1 Orthanc, a scripted C-FIND SCP, and leak checks.

The session peers (orthanc, dcmqrscp, lab_data, fault_scp) come from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
from pacsbrowser.core.records import RetryPolicy, ServerProfile, Timeouts
from tests.lab.data import Catalog
from tests.lab.peers import LabError, OrthancPeer

LOOPBACK = "127.0.0.1"


def profile_for(peer: Any, **changes: Any) -> ServerProfile:
    """A profile for a lab peer or a test SCP: short timeouts, no retries."""
    options: dict[str, Any] = dict(name="test", host=peer.host, port=peer.port,
                                   called_ae=getattr(peer, "aet", None) or peer.ae_title,
                                   retry=RetryPolicy(max_retries=0), timeouts=Timeouts.uniform(10))
    options.update(changes)
    return ServerProfile(**options)


def service_for(peer: Any, **changes: Any) -> QueryService:
    cancel_timeout = changes.pop("cancel_timeout", 5.0)
    profile = profile_for(peer, **changes)
    return QueryService(DICOMClient.from_profile(profile), profile, cancel_timeout=cancel_timeout)


def run(coro: Any, timeout: float = 60.0) -> Any:
    """Run a coroutine on a fresh loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def collect(service: QueryService, keys: Any, **kw: Any) -> tuple[list[Any], Any]:
    found = service.find(keys, **kw)
    results = await found.collect()
    return results, found.outcome


@pytest.fixture(scope="module")
def orthanc_latin1(lab_data: Catalog, move_port: int) -> Iterator[OrthancPeer]:
    """Orthanc with its stock DefaultEncoding, Latin1 (the fallback path), lab data loaded."""
    peer = OrthancPeer(encoding="Latin1", move_port=move_port)
    try:
        peer.start()
        peer.load(lab_data.paths())
    except LabError as exc:
        peer.stop()
        pytest.fail(f"Orthanc (Latin1) could not be started: {exc}", pytrace=False)
    yield peer
    peer.stop()


class ScriptedSCP:
    """A C-FIND SCP on 127.0.0.1 answering every query with a script, for what FaultSCP cannot do.

    ``responses``: (status, identifier or None) pairs sent in order (the last one usually final).
    ``hang_after``: after that many responses, stop answering (ignoring C-CANCEL) until shut down
    or ``hang_for`` seconds pass; ``stubborn``: keep sending pending responses after C-CANCEL.
    Records C-CANCELs seen, aborts received, and when each response was handed to pynetdicom.
    """

    def __init__(self, responses: Iterable[tuple[int, Dataset | None]] = (), *, hang_after: int | None = None,
                 hang_for: float = 20.0, stubborn: bool = False, interval: float = 0.0) -> None:
        self.responses = list(responses)
        self.hang_after = hang_after
        self.hang_for = hang_for
        self.stubborn = stubborn
        self.interval = interval
        self.ae_title = "SCRIPTED"
        self.host = LOOPBACK
        self.port = 0
        self.requests: list[Dataset] = []
        self.cancel_seen = threading.Event()
        self.aborted = threading.Event()
        self.sent_at: list[float] = []
        self._stop = threading.Event()
        self._ae: AE | None = None

    def start(self) -> "ScriptedSCP":
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(Verification)
        ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 30
        handlers = [(evt.EVT_C_FIND, self._on_find), (evt.EVT_ABORTED, lambda event: self.aborted.set())]
        server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=handlers)
        self.port = server.server_address[1]
        self._ae = ae
        return self

    def shutdown(self) -> None:
        self._stop.set()
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None

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
def scripted_scp() -> Iterator[Callable[..., ScriptedSCP]]:
    made: list[ScriptedSCP] = []

    def factory(responses: Iterable[tuple[int, Dataset | None]] = (), **options: Any) -> ScriptedSCP:
        scp = ScriptedSCP(responses, **options)
        made.append(scp)
        return scp.start()

    yield factory
    for scp in made:
        scp.shutdown()

