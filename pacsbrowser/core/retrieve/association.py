"""One association of a retrieve job: open it, count it, release it after a clean exit, abort it
after an error (or when the PACS dropped it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from ..client import DICOMClient
from ..dicom import retrieve as dicom_retrieve
from ..errors import ServiceNotSupported
from .counting import RetrieveCounts


@asynccontextmanager
async def open_association(client: DICOMClient, counts: RetrieveCounts, *, contexts: Sequence[PresentationContext],
                           service: str = "", model: str = "", hint: str = "",
                           **associate: Any) -> AsyncIterator[Association]:
    """`async with open_association(client, counts, contexts=...) as assoc:` the pynetdicom
    association. With `service` (words such as "C-GET (Study Root)"), a PACS that accepts nothing
    or not `model` raises ServiceNotSupported naming it, with `hint`; without, its own refusal."""
    try:
        await client.associate(contexts=contexts, **associate)
    except ServiceNotSupported as exc:  # nothing at all accepted
        if not service:
            raise
        raise ServiceNotSupported(client.host, client.port, service, detail=exc.detail, hint=hint) from exc
    counts.associations += 1
    healthy = False
    try:
        assoc: Association = client.association
        if model and not dicom_retrieve.accepts_model(assoc, model):
            raise ServiceNotSupported(
                client.host, client.port, service,
                detail=f"accepted: {sorted({str(cx.abstract_syntax) for cx in assoc.accepted_contexts})}", hint=hint)
        yield assoc
        healthy = True
    finally:
        if healthy and client.is_associated:
            await client.release()
        else:
            client.abort()


__all__ = ["open_association"]
