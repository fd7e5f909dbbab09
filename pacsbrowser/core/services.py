"""The one place that picks DIMSE or DICOMweb for a profile: controllers and commands ask here for
a service and get today's DIMSE classes, or core/web's for a DICOMweb profile, with the same
methods (see each function).

    service = query_service(profile)             # QueryService or WebQueryService
    job = service.find(keys, limit=500)          # FindJob or WebFindJob: batches(), cancel(), outcome
"""

from __future__ import annotations

from typing import Any

from .archive import Archive
from .records import ServerProfile


def query_service(profile: ServerProfile) -> Any:
    """QueryService (C-FIND over a DICOMClient of the profile) or WebQueryService (QIDO-RS)."""
    if profile.is_web:
        from .web.qido import WebQueryService

        return WebQueryService(profile)
    from .client import DICOMClient
    from .query import QueryService

    return QueryService(DICOMClient.from_profile(profile), profile)


def retrieve_service(profile: ServerProfile, archive: Archive, **options: Any) -> Any:
    """RetrieveService (C-GET/C-MOVE; `options` as it takes them) or WebRetrieveService (WADO-RS;
    DIMSE-only options such as `scp` and `listener_host` are ignored)."""
    if profile.is_web:
        from .web.wado import WebRetrieveService

        return WebRetrieveService(profile, archive, **options)
    from .retrieve import RetrieveService

    return RetrieveService(profile, archive, **options)


def store_service(profile: ServerProfile, **options: Any) -> Any:
    """StoreService (C-STORE) or WebStoreService (STOW-RS); `parallel`, `progress_interval` for both."""
    if profile.is_web:
        from .web.stow import WebStoreService

        return WebStoreService(profile, **options)
    from .store import StoreService

    return StoreService(profile, **options)


async def verify(profile: ServerProfile) -> float:
    """The echo: a C-ECHO, or the smallest QIDO-RS request; the round trip in seconds."""
    if profile.is_web:
        from .web.diagnostics import web_echo

        return await web_echo(profile)
    from .client import DICOMClient, VerificationService

    async with DICOMClient.from_profile(profile) as client:
        return await VerificationService(client).verify()


__all__ = ["query_service", "retrieve_service", "store_service", "verify"]
