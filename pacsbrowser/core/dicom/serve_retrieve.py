"""Our C-GET and C-MOVE SCP (Patient Root and Study Root): the archive's instances as C-STORE
sub-operations.

pynetdicom EVT_C_GET / EVT_C_MOVE handlers over core.archive.query: the instances the identifier
selects, counted first; pynetdicom then sends each (on the caller's association for C-GET, on an
association with the destination for C-MOVE) and answers a pending response with the remaining,
completed, failed and warning counts after each. C-CANCEL is honoured between two sub-operations.

- C-MOVE destinations are the configured ones (AE title -> host, port); any other is answered
  0xA801 (move destination unknown). The association with the destination proposes, per SOP
  class, the uncompressed syntaxes and each syntax the instances are stored in (core.dicom.contexts).
- Each instance goes in the transfer syntax it was stored in when the receiver accepted it;
  decompressed when the receiver accepts only uncompressed; otherwise it fails (counted, and
  listed in Failed SOP Instance UID List).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.ae import ApplicationEntity

from ..archive import Archive
from ..archive.query import ArchiveQuery, MatchedInstance, QueryError
from .contexts import plan_store_contexts
from .serve_find import CANCEL, IDENTIFIER_MISMATCH, PENDING, UNABLE_TO_PROCESS, calling_ae, request_model
from .syntaxes import UNCOMPRESSED, syntax_name

log = logging.getLogger(__name__)

Destinations = Mapping[str, tuple[str, int]]


class ServingAE(ApplicationEntity):
    """The server's AE: remembers, per thread, the association it last requested, so that the C-MOVE
    handler (which runs on the thread pynetdicom opens the destination association from) sees
    which contexts the destination accepted; counts only real associations against its limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requested = threading.local()

    @property
    def active_associations(self) -> list[Any]:
        """The associations that take one of `maximum_associations`: pynetdicom checks the limit
        against this list, and would count every accepted connection, so connections that never
        send an A-ASSOCIATE-RQ could fill every slot and lock real peers out. An acceptor counts
        once its request came."""
        return [a for a in super().active_associations if not (a.is_acceptor and a.requestor.primitive is None)]

    def associate(self, *args: Any, **kwargs: Any) -> Any:
        assoc = super().associate(*args, **kwargs)
        self._requested.assoc = assoc
        return assoc

    def last_requested(self) -> Any:
        return getattr(self._requested, "assoc", None)


def _accepted(assoc: Any, sop_class: str) -> list[Any]:
    """Contexts on which we may send `sop_class` (as the storage SCU)."""
    if assoc is None:
        return []
    return [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == sop_class and cx.as_scu]


def dataset_for(instance: MatchedInstance, accepted: list[Any]) -> Dataset:
    """The instance read from the archive, ready for the contexts `accepted`: as stored when its
    syntax was accepted (or another uncompressed one pynetdicom converts to), decompressed when only
    uncompressed syntaxes were; as stored otherwise (pynetdicom then fails it, counted)."""
    ds = dcmread(instance.path)
    syntax = UID(instance.transfer_syntax_uid)
    syntaxes = {cx.transfer_syntax[0] for cx in accepted}
    if syntax in syntaxes or not syntax.is_compressed or not syntaxes & set(UNCOMPRESSED):
        if accepted and syntax not in syntaxes and syntax.is_compressed:
            log.warning("%s is stored as %s, which the receiver does not accept", instance.sop_instance_uid,
                        syntax_name(syntax))
        return ds
    try:
        ds.decompress(generate_instance_uid=False)
    except Exception as exc:  # noqa: BLE001 - a missing codec plugin, a damaged codestream: that one fails
        log.warning("%s (%s) could not be decompressed for the receiver: %s", instance.sop_instance_uid,
                    syntax_name(syntax), exc)
    return ds


class _RetrieveHandler:
    def __init__(self, archive: Archive) -> None:
        self.query = ArchiveQuery(archive)

    def _matches(self, event: Any) -> list[MatchedInstance] | int:
        """The instances to send, or the failure status."""
        try:
            identifier = event.identifier
        except Exception as exc:  # noqa: BLE001 - whatever pydicom raises, the identifier cannot be read
            log.warning("retrieve from %s: the identifier cannot be read (%s)", calling_ae(event), exc)
            return UNABLE_TO_PROCESS
        try:
            return self.query.instances(identifier, request_model(event))
        except QueryError as exc:
            log.warning("retrieve from %s refused: %s", calling_ae(event), exc)
            return IDENTIFIER_MISMATCH

    def _sub_operations(self, event: Any, matches: list[MatchedInstance], assoc: Any,
                        what: str) -> Iterator[tuple[int, Any]]:
        for number, instance in enumerate(matches):
            if event.is_cancelled:
                log.info("%s from %s cancelled after %d of %d instances", what, calling_ae(event), number,
                         len(matches))
                yield CANCEL, None
                return
            try:
                ds = dataset_for(instance, _accepted(assoc, instance.sop_class_uid))
            except Exception as exc:  # noqa: BLE001 - a file gone or damaged: that sub-operation fails
                log.warning("%s: %s cannot be read from the archive (%s)", what, instance.sop_instance_uid, exc)
                ds = Dataset()
                ds.SOPInstanceUID = instance.sop_instance_uid
            yield PENDING, ds
        log.info("%s from %s: %d instances offered", what, calling_ae(event), len(matches))


class GetHandler(_RetrieveHandler):
    """EVT_C_GET: the instances go back on the caller's own association."""

    def __call__(self, event: Any) -> Iterator[Any]:
        matches = self._matches(event)
        if isinstance(matches, int):
            yield 1
            yield matches, None
            return
        yield len(matches)
        yield from self._sub_operations(event, matches, event.assoc, "C-GET")


class MoveHandler(_RetrieveHandler):
    """EVT_C_MOVE to one of `destinations` (AE title -> (host, port))."""

    def __init__(self, archive: Archive, destinations: Destinations) -> None:
        super().__init__(archive)
        self.destinations = {ae.strip(): where for ae, where in destinations.items()}

    def __call__(self, event: Any) -> Iterator[Any]:
        destination = event.move_destination
        name = (destination.decode("ascii", "replace") if isinstance(destination, bytes)
                else str(destination or "")).strip()
        where = self.destinations.get(name)
        if where is None:
            log.warning("C-MOVE from %s to %r refused: not a configured destination", calling_ae(event), name)
            yield None, None
            return
        matches = self._matches(event)
        if isinstance(matches, int):
            yield (*where, {})
            yield 1
            yield matches, None
            return
        groups = plan_store_contexts((m.sop_class_uid, m.transfer_syntax_uid) for m in matches)
        contexts = list(groups[0].contexts) if groups else []
        if len(groups) > 1:
            log.warning("C-MOVE to %s: %d SOP classes do not fit one association and will fail", name,
                        sum(len(g.sop_classes) for g in groups[1:]))
        yield (*where, {"contexts": contexts})
        yield len(matches)
        ae = event.assoc.ae
        assoc = ae.last_requested() if isinstance(ae, ServingAE) else None
        yield from self._sub_operations(event, matches, assoc, f"C-MOVE to {name}")


__all__ = ["Destinations", "GetHandler", "MoveHandler", "ServingAE", "dataset_for"]
