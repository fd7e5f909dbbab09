"""The async face of the DICOM client: associations with retry, and the services over them.

    async with DICOMClient.from_profile(profile) as client:
        rtt = await VerificationService(client).verify()

pynetdicom blocks; every call into it runs on a core worker thread (core.executor) and the result
comes back to the loop. One association per client, used by one task at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .dicom import ae as dicom_ae
from .dicom.links import end_association
from .errors import (
    AssociationAborted,
    AssociationRejected,
    Cancelled,
    ConnectionFailed,
    DICOMNetworkError,
    DIMSEError,
    Timeout,
)
from .executor import run_blocking
from .records import DEFAULT_CALLING_AE, DEFAULT_MAX_PDU, RetryPolicy, ServerProfile, Timeouts, TLSConfiguration

if TYPE_CHECKING:
    from pynetdicom.association import Association

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]


def is_retryable(error: DICOMNetworkError) -> bool:
    """Worth another attempt: the peer may come up, calm down or answer next time."""
    if isinstance(error, AssociationRejected):
        return error.transient
    return isinstance(error, (ConnectionFailed, Timeout, AssociationAborted))


class DICOMClient:
    """One peer, one association at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        calling_ae: str = DEFAULT_CALLING_AE,
        called_ae: str = "ANY-SCP",
        tls: TLSConfiguration | None = None,
        retry_policy: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        max_pdu: int = DEFAULT_MAX_PDU,
        *,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.calling_ae, self.called_ae = calling_ae, called_ae
        self.tls = tls
        self.retry_policy = retry_policy or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.max_pdu = max_pdu
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng
        self._assoc: Any = None
        self._lock = asyncio.Lock()
        self.attempts = 0  # association attempts made by the last associate()

    @classmethod
    def from_profile(cls, profile: ServerProfile, **kwargs: Any) -> "DICOMClient":
        return cls(
            profile.host,
            profile.port,
            calling_ae=profile.calling_ae,
            called_ae=profile.called_ae,
            tls=profile.tls,
            retry_policy=profile.retry,
            timeouts=profile.timeouts,
            max_pdu=profile.max_pdu,
            **kwargs,
        )

    def __repr__(self) -> str:
        scheme = "dicom+tls" if self.tls else "dicom"
        return f"<DICOMClient {scheme}://{self.calling_ae}@{self.host}:{self.port}/{self.called_ae}>"

    @property
    def is_associated(self) -> bool:
        return self._assoc is not None and bool(self._assoc.is_established)

    @property
    def association(self) -> Any:
        """The pynetdicom Association (for core.dicom code on worker threads only)."""
        if not self.is_associated:
            raise AssociationAborted("The association with the PACS is not open")
        return self._assoc

    @property
    def lock(self) -> asyncio.Lock:
        """Held by the task using the association."""
        return self._lock

    async def associate(self, contexts: Sequence[Any] | None = None, **kwargs: Any) -> None:
        """Open the association (Verification only when `contexts` is None), retrying per policy."""
        if self.is_associated:
            raise RuntimeError("already associated; release() first")
        contexts = list(contexts) if contexts else dicom_ae.verification_context()
        policy = self.retry_policy
        self.attempts = 0
        for attempt in range(policy.max_retries + 1):
            self.attempts = attempt + 1
            opening = _Opening()
            try:
                self._assoc = await run_blocking(self._open, contexts, kwargs, opening, name="associate")
                return
            except asyncio.CancelledError:
                # The request goes on on its worker thread: abort it there, or it would hold one
                # of the PACS's association slots until some timeout, and leak once accepted.
                opening.cancel()
                raise
            except DICOMNetworkError as error:
                if attempt >= policy.max_retries or not is_retryable(error):
                    raise
                delay = policy.delay(attempt + 1, self._rng)
                log.info("association with %s:%s failed (%s); retry %d in %.2f s",
                         self.host, self.port, error, attempt + 1, delay)
                await self._sleep(delay)

    def _open(self, contexts: Sequence[Any], kwargs: dict[str, Any], opening: _Opening | None = None) -> Any:
        ae = dicom_ae.make_ae(self.calling_ae, self.timeouts, self.max_pdu)
        if opening is not None:
            ae.on_association = opening.started
        assoc = dicom_ae.open_association(
            ae,
            self.host,
            self.port,
            self.called_ae,
            contexts,
            tls=self.tls,
            timeouts=self.timeouts,
            max_pdu=self.max_pdu,
            **kwargs,
        )
        if opening is not None and opening.cancelled:  # accepted after the wait was cancelled
            end_association(assoc)
            raise Cancelled("the association request")
        return assoc

    async def release(self) -> None:
        """Release the association politely (abort if the peer does not answer in time)."""
        assoc, self._assoc = self._assoc, None
        if assoc is None or not assoc.is_established:
            return
        await run_blocking(_release_or_abort, assoc, name="release")

    def abort(self) -> None:
        """Abort the association now, without waiting for the peer; a worker thread waiting for a
        response on it returns at once."""
        assoc, self._assoc = self._assoc, None
        if assoc is not None:
            dicom_ae.interrupt(assoc)

    async def __aenter__(self) -> "DICOMClient":
        await self.associate()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            await self.release()
        else:
            self.abort()


class _Opening:
    """An association being requested on a worker thread; `cancel()`, from the loop, aborts it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._assoc: Any = None
        self.cancelled = False

    def started(self, assoc: Any) -> None:
        """On the worker thread: pynetdicom has created the association (before it connects)."""
        with self._lock:
            self._assoc = assoc
            cancelled = self.cancelled
        if cancelled:
            dicom_ae.abandon_request(assoc)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            assoc = self._assoc
        if assoc is not None:
            dicom_ae.abandon_request(assoc)  # returns at once; the threads end on a worker


def _release_or_abort(assoc: Association) -> None:
    assoc.release()
    if not assoc.is_released:
        assoc.abort()


@dataclass(frozen=True)
class EchoResult:
    round_trip: float  # seconds, C-ECHO request to response on an open association
    status: int


class VerificationService:
    """C-ECHO."""

    def __init__(self, client: DICOMClient) -> None:
        self.client = client

    async def verify(self) -> float:
        """One C-ECHO; the round-trip time in seconds. Associates first when needed."""
        return (await self.echo()).round_trip

    async def echo(self) -> EchoResult:
        client = self.client
        opened_here = not client.is_associated
        if opened_here:
            await client.associate()
        try:
            async with client.lock:
                result = await run_blocking(_send_echo, client.association, name="echo")
        except BaseException:
            if opened_here:
                client.abort()
            raise
        if opened_here:
            await client.release()
        return result


def _send_echo(assoc: Association) -> EchoResult:
    started = time.perf_counter()
    try:
        status = assoc.send_c_echo()
    finally:
        dicom_ae.settle_reactor(assoc)
    elapsed = time.perf_counter() - started
    if not status or "Status" not in status:
        if not assoc.is_established:
            raise AssociationAborted("The PACS closed the association during C-ECHO")
        raise Timeout("waiting for the C-ECHO response", assoc.dimse_timeout or 0)
    code = int(status.Status)
    if code != 0x0000:
        raise DIMSEError(code, "C-ECHO", comment=str(status.get("ErrorComment", "")))
    return EchoResult(elapsed, code)
