"""RetrieveService: the jobs of one PACS profile into one archive, and our Storage SCP for a
C-MOVE to ourselves (the service's own `scp`, or one it starts while a job needs it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from ..archive import Archive
from ..dicom.operation import DEFAULT_CANCEL_TIMEOUT
from ..errors import ListenerError
from ..executor import run_blocking
from ..hostaddress import address_towards
from ..records import QueryLevel, RetrieveMethod, ServerProfile, validate_ae_title
from ..server import ArchiveServer
from .job import RetrieveJob
from .planning import Target

log = logging.getLogger(__name__)


class RetrieveService:
    """C-GET and C-MOVE into `archive` from the PACS of `profile`.

    `scp`: a running (or startable) ArchiveServer over the same archive, for C-MOVE to our own AE
    title; without one, a job that needs it starts one on `profile.listener_port` and stops it when
    done. That on-demand listener speaks the profile's TLS (our certificate and key; the PACS's
    certificate checked against the profile's CA), accepts associations only from the PACS's AE
    title and `listener_allowed`, and binds `listener_host`: None (default) = the address this
    computer reaches the PACS from (every interface when that cannot be told), "" = every
    interface. `cancel_timeout`: seconds the PACS has to end an operation after C-CANCEL before the
    association is aborted.
    """

    def __init__(self, profile: ServerProfile, archive: Archive, *, scp: ArchiveServer | None = None,
                 listener_host: str | None = None, listener_allowed: Iterable[str] = (),
                 cancel_timeout: float = DEFAULT_CANCEL_TIMEOUT) -> None:
        if scp is not None and scp.archive is not archive:
            raise ValueError("the Storage SCP must write into the same archive as the retrieve")
        self.profile = profile
        self.archive = archive
        self.scp = scp
        self.listener_host = listener_host
        self.listener_allowed = tuple(validate_ae_title(a, "allowed calling AE title") for a in listener_allowed)
        self.cancel_timeout = cancel_timeout
        self._listener_users = 0
        self._own_scp: ArchiveServer | None = None
        self._started_given = False
        self._listener_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        p = self.profile
        return f"<RetrieveService {p.called_ae}@{p.host}:{p.port} {p.retrieve_method.value}>"

    @property
    def own_ae(self) -> str:
        """The AE title our Storage SCP answers to (a C-MOVE to it lands in the archive)."""
        return self.scp.ae_title if self.scp is not None else self.profile.calling_ae

    # -- C-GET -----------------------------------------------------------------------------

    def get_study(self, study_uid: str, *, resume: bool = True) -> RetrieveJob:
        return self._job(RetrieveMethod.GET, Target(QueryLevel.STUDY, study_uid), None, resume)

    def get_series(self, study_uid: str, series_uid: str, *, resume: bool = True) -> RetrieveJob:
        return self._job(RetrieveMethod.GET, Target(QueryLevel.SERIES, study_uid, series_uid), None, resume)

    def get_instance(self, study_uid: str, series_uid: str, sop_instance_uid: str, *,
                     resume: bool = True) -> RetrieveJob:
        target = Target(QueryLevel.INSTANCE, study_uid, series_uid, sop_instance_uid)
        return self._job(RetrieveMethod.GET, target, None, resume)

    # -- C-MOVE ----------------------------------------------------------------------------

    def move_study(self, study_uid: str, destination_ae: str | None = None, *, resume: bool = True) -> RetrieveJob:
        return self._job(RetrieveMethod.MOVE, Target(QueryLevel.STUDY, study_uid), destination_ae, resume)

    def move_series(self, study_uid: str, series_uid: str, destination_ae: str | None = None, *,
                    resume: bool = True) -> RetrieveJob:
        target = Target(QueryLevel.SERIES, study_uid, series_uid)
        return self._job(RetrieveMethod.MOVE, target, destination_ae, resume)

    def move_instance(self, study_uid: str, series_uid: str, sop_instance_uid: str,
                      destination_ae: str | None = None, *, resume: bool = True) -> RetrieveJob:
        target = Target(QueryLevel.INSTANCE, study_uid, series_uid, sop_instance_uid)
        return self._job(RetrieveMethod.MOVE, target, destination_ae, resume)

    # -- by the profile --------------------------------------------------------------------

    def retrieve(self, study_uid: str, series_uid: str = "", sop_instance_uid: str = "", *,
                 method: RetrieveMethod | None = None, destination_ae: str | None = None,
                 resume: bool = True) -> RetrieveJob:
        """The profile's method (C-GET, or C-MOVE to its `move_destination`, else to us)."""
        if sop_instance_uid and not series_uid:
            raise ValueError("an instance retrieve needs the Series Instance UID")
        level = QueryLevel.INSTANCE if sop_instance_uid else QueryLevel.SERIES if series_uid else QueryLevel.STUDY
        method = method or self.profile.retrieve_method
        target = Target(level, study_uid, series_uid, sop_instance_uid)
        return self._job(method, target, destination_ae, resume)

    def _job(self, method: RetrieveMethod, target: Target, destination_ae: str | None, resume: bool) -> RetrieveJob:
        if not target.study_uid:
            raise ValueError("a retrieve needs the Study Instance UID")
        destination = ""
        if method is RetrieveMethod.MOVE:
            destination = (destination_ae or self.profile.move_destination or self.own_ae).strip()
            if not destination:
                raise ValueError("a C-MOVE needs a destination AE title")
        return RetrieveJob(self, method, target, destination, resume)

    # -- our listener (C-MOVE to ourselves) ------------------------------------------------

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[ArchiveServer]:
        """Our Storage SCP, running for the `async with` block: the service's `scp` (started if it
        was not running, and then stopped after the last job that needed it), or one of its own on
        the profile's listener port. Jobs share it; subscribe to it for what arrives."""
        scp = await self._acquire_listener()
        try:
            yield scp
        finally:
            await self._release_listener()

    async def _acquire_listener(self) -> ArchiveServer:
        if self._listener_lock is None:
            self._listener_lock = asyncio.Lock()
        async with self._listener_lock:
            scp = self.scp
            if scp is None:
                if self._own_scp is None:
                    self._own_scp = await self._on_demand_listener()
                scp = self._own_scp
            if not scp.is_running:
                await scp.start()
                if scp is self.scp:
                    self._started_given = True
                    log.info("started the Storage SCP %r for a C-MOVE", scp)
            self._listener_users += 1
            return scp

    async def _on_demand_listener(self) -> ArchiveServer:
        """Our listener for the C-MOVEs of this profile: its TLS, the PACS's AE title (and the
        allow-list) only, on the address the PACS reaches us on when it can be told."""
        p = self.profile
        host = self.listener_host
        if host is None:
            host = await run_blocking(address_towards, p.host, p.port, name="listener-address") or ""
        tls = p.tls
        if tls is not None and (tls.certificate is None or tls.key is None):
            raise ListenerError(host, p.listener_port, "a C-MOVE over TLS needs the profile's certificate and key "
                                "(our listener shows them to the PACS)",
                                hint="add our certificate and key to the profile's TLS settings, or use C-GET")
        if tls is not None and tls.verify_peer and tls.ca_certificate is None:
            raise ListenerError(host, p.listener_port, "a C-MOVE over TLS needs the profile's CA certificate "
                                "(our listener checks the PACS's certificate against it)",
                                hint="add the CA certificate to the profile's TLS settings, or turn verification off")
        allowed = tuple(dict.fromkeys((p.called_ae, *self.listener_allowed)))
        # grace: a PACS has answered its last sub-operation by the time the job ends;
        # an association it still holds open then is not worth waiting for long.
        # batched: what reaches the listener a job starts for itself is what the PACS holds
        # (a crash loses at most files it can send again), as for a C-GET
        return ArchiveServer(p.listener_port, p.calling_ae, self.archive, tls=tls, allowed_calling_aes=allowed,
                             host=host, timeouts=p.timeouts, max_pdu=p.max_pdu, grace=2.0, batched=True)

    async def _release_listener(self) -> None:
        assert self._listener_lock is not None
        async with self._listener_lock:
            self._listener_users -= 1
            if self._listener_users == 0:
                if self._own_scp is not None:
                    scp, self._own_scp = self._own_scp, None
                    await scp.stop()
                elif self._started_given and self.scp is not None:
                    self._started_given = False  # we started it, we stop it
                    await self.scp.stop()


__all__ = ["RetrieveService"]
