"""Receiving one C-STORE into the archive: the EVT_C_STORE handler of our Storage SCP and of the
C-STORE sub-operations of a C-GET, and the statuses it answers with.

The handler runs on the thread reading the association (pynetdicom's), writes the data set as it
came (no decode and re-encode) through `Archive.store`, which queues the indexing for the
archive's own thread, and answers at once: a slow index never stalls the sending PACS.

The data set is taken with `event.encoded_dataset()`, in memory: pynetdicom's other way
(`_config.STORE_RECV_CHUNKED_DATASET`) is a process-wide switch that would change every other AE
in the process (our other AEs too) and spools to the system temp folder, often another
file system than the archive, where a rename is a copy.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from ..archive import Archive, MalformedDataset, StoredInstance
from ..errors import ArchiveError

log = logging.getLogger(__name__)

# C-STORE statuses (PS3.4 B.2.3)
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110

DISK_FULL = "Out of resources: the archive disk is full"
_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


@dataclass
class StoreStats:
    """Counters of one receiver (updated from association threads); the server adds its
    associations and rejections."""

    stored: int = 0
    failed: int = 0
    bytes: int = 0
    associations: int = 0
    rejected: int = 0
    last_failure: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                if key == "last_failure":
                    self.last_failure = value
                else:
                    setattr(self, key, getattr(self, key) + value)


# (stored, replaced, sender's AE title, "host:port") after the instance is indexed (indexer thread)
IndexedHandler = Callable[[StoredInstance, bool, str, str], None]
# ("stored", SOP Instance UID, bytes received) or ("refused", SOP Instance UID, reason)
Sink = Callable[[tuple], None]


def refusal(code: int, comment: str) -> Dataset:
    """A C-STORE response status with its comment (at most 64 characters, LO)."""
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


def failure_status(exc: BaseException) -> tuple[int, str]:
    """The C-STORE status and comment for what `Archive.store` raised."""
    if isinstance(exc, MalformedDataset):
        return CANNOT_UNDERSTAND, f"Cannot understand: {exc}"
    if isinstance(exc, OSError):
        if exc.errno in _DISK_FULL_ERRNOS:
            return OUT_OF_RESOURCES, DISK_FULL
        return OUT_OF_RESOURCES, f"Out of resources: cannot write ({exc.strerror or exc})"
    if isinstance(exc, ArchiveError):
        return OUT_OF_RESOURCES, f"Out of resources: {exc}"
    return PROCESSING_FAILURE, f"Processing failure: {exc.__class__.__name__}"


def sender_of(assoc: Any) -> tuple[str, str]:
    """(AE title, "host:port") of the side sending C-STOREs on `assoc`: the peer, whichever
    side requested the association."""
    sender = assoc.acceptor if assoc.is_requestor else assoc.requestor
    return str(sender.ae_title or "").strip(), f"{sender.address}:{sender.port}"


class ReceiveHandler:
    """EVT_C_STORE: write the data set into the archive as received, queue its indexing, answer.

    The same on our Storage SCP (the sender is the association's requestor) and on a C-GET
    association (the sender is the PACS we called). `on_indexed` runs on the archive's indexer
    thread after the commit; `batched`: reply once the bytes are written, before fsync and rename
(core.archive.committer; for a C-GET, never for a modality that may delete what we accepted); `sink`, when set, gets ("stored", UID, bytes) or ("refused", UID,
    reason) for each instance, on the association's thread.
    """

    def __init__(self, archive: Archive, *, on_indexed: IndexedHandler | None = None,
                 stats: StoreStats | None = None, batched: bool = False) -> None:
        self.archive = archive
        self.batched = batched  # Archive.store's batched durability (a C-GET: the PACS keeps the data)
        self.on_indexed = on_indexed
        self.stats = stats if stats is not None else StoreStats()
        self.sink: Sink | None = None
        self.last_activity = time.monotonic()
        self._own_moves: set[tuple[str, str, int]] = set()  # (PACS AE, our AE, C-MOVE message ID)

    def expect_move(self, pacs_ae: str, our_ae: str, message_id: int) -> Callable[[], None]:
        """C-STOREs that are sub-operations of our own C-MOVE (sent by `pacs_ae`, their Move
        Originator AE Title `our_ae` and Message ID `message_id`) are stored `batched`: the PACS
        still holds what a crash would lose, as for a C-GET. Returns the function that ends it."""
        key = (pacs_ae.strip(), our_ae.strip(), int(message_id))
        self._own_moves.add(key)
        return lambda: self._own_moves.discard(key)

    def batched_for(self, sender_ae: str, originator_ae: str | None, originator_id: int | None) -> bool:
        """Whether a C-STORE from `sender_ae` (with these Move Originator fields, None when absent)
        is stored batched (see `expect_move`); otherwise durable before the reply."""
        if self.batched:
            return True
        if originator_ae is None or originator_id is None or not self._own_moves:
            return False
        return (sender_ae, originator_ae.strip(), originator_id) in self._own_moves

    def __call__(self, event: Any) -> Dataset | int:
        request = event.request
        sop_instance = str(getattr(request, "AffectedSOPInstanceUID", "") or "")
        try:
            data = event.encoded_dataset(include_meta=False)
        except Exception as exc:  # noqa: BLE001 - never let a handler exception reach pynetdicom
            return self.refused(exc, sender_of(event.assoc)[0], sop_instance)
        originator = getattr(request, "MoveOriginatorApplicationEntityTitle", None)
        originator_id = getattr(request, "MoveOriginatorMessageID", None)
        batched = self.batched_for(sender_of(event.assoc)[0], None if originator is None else str(originator),
                                   originator_id)
        return self.store_bytes(event.assoc, data, str(event.context.transfer_syntax),
                                str(getattr(request, "AffectedSOPClassUID", "") or ""), sop_instance, batched=batched)

    def store_bytes(self, assoc: Any, data: bytes, transfer_syntax: str, sop_class: str,
                    sop_instance: str, *, batched: bool | None = None) -> Dataset | int:
        """Store one received data set (without File Meta) through `Archive.store`; the status.
        Also the lean path's (core.dicom.bulkreceive) for what it keeps whole in memory.
        `batched`: None for the handler's own setting."""
        self.last_activity = time.monotonic()
        sender_ae, peer = sender_of(assoc)
        try:
            stored = self.archive.store(
                data,
                transfer_syntax,
                sop_class_uid=sop_class,
                sop_instance_uid=sop_instance,
                source_ae=sender_ae,
                received_at=time.time(),
                on_indexed=self.indexed_callback(sender_ae, peer),
                batched=self.batched if batched is None else batched,
            )
        except Exception as exc:  # noqa: BLE001 - never let a handler exception reach pynetdicom
            return self.refused(exc, sender_ae, sop_instance)
        return self.accepted(stored, len(data), sender_ae)

    def accepted(self, stored: StoredInstance, nbytes: int, sender_ae: str) -> int:
        """Count, log and report an instance stored (`nbytes`: its data set as received); the status."""
        uid = stored.info.sop_instance_uid
        self.stats.add(stored=1, bytes=stored.size)
        log.info("stored %s from %s (%d bytes)", uid, sender_ae, stored.size)
        sink = self.sink
        if sink is not None:
            sink(("stored", uid, nbytes))
        self.last_activity = time.monotonic()
        return SUCCESS

    def refused(self, exc: BaseException, sender_ae: str, sop_instance: str) -> Dataset:
        """The refusal for what storing raised (see `failure_status`), counted, logged and reported."""
        if not isinstance(exc, (MalformedDataset, OSError, ArchiveError)):
            log.error("unexpected error storing an instance from %s", sender_ae, exc_info=exc)
        code, comment = failure_status(exc)
        return self._refuse(code, comment, sender_ae, sop_instance, exc)

    def indexed_callback(self, sender_ae: str, peer: str) -> Callable[[StoredInstance, bool], None] | None:
        on_indexed = self.on_indexed
        if on_indexed is None:
            return None

        def callback(stored: StoredInstance, replaced: bool) -> None:
            on_indexed(stored, replaced, sender_ae, peer)

        return callback

    def _refuse(self, code: int, comment: str, sender_ae: str, sop_instance: str, exc: BaseException) -> Dataset:
        self.stats.add(failed=1, last_failure=comment)
        log.warning("refused an instance from %s (0x%04X %s) SOP Instance %s: %r", sender_ae, code, comment,
                    sop_instance[:80], exc)
        sink = self.sink
        if sink is not None:
            sink(("refused", sop_instance, comment))
        return refusal(code, comment)


__all__ = [
    "CANNOT_UNDERSTAND",
    "DISK_FULL",
    "OUT_OF_RESOURCES",
    "PROCESSING_FAILURE",
    "SUCCESS",
    "IndexedHandler",
    "ReceiveHandler",
    "StoreStats",
    "failure_status",
    "refusal",
    "sender_of",
]
