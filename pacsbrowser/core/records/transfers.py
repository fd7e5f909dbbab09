"""Send (C-STORE) results and progress, and what our server received."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


@dataclass(frozen=True)
class Received:
    """One instance our Storage SCP received, wrote to the local archive and indexed.

    `path` is the file in the archive; `replaced` is True when an earlier copy of the same SOP
    Instance UID was there and this one took its place. `received_at` is seconds since the epoch
    (time.time()). Patient name and ID are kept out of repr() so that logging a record leaks nothing.
    """

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    path: Path
    size: int
    calling_ae: str
    peer: str  # "host:port" of the sender
    received_at: float
    replaced: bool = False
    modality: str = ""
    patient_id: str = field(default="", repr=False)
    patient_name: str = field(default="", repr=False)


# --- Send (C-STORE): per-file results and progress -------------------------------------------


class StoreOutcome(str, Enum):
    SUCCESS = "success"  # the PACS stored it (status 0x0000)
    WARNING = "warning"  # stored, with a warning status (e.g. 0xB000 coercion of data elements)
    FAILED = "failed"  # not stored: the PACS refused it, nothing fit, or the network failed
    SKIPPED = "skipped"  # not sent: not a DICOM file, damaged, unreadable, a DICOMDIR...


@dataclass(frozen=True)
class StoreResult:
    """What happened to one file (or dataset) of a send.

    `name` is what to show (the path as given, or "dataset <n>"); `reason` is in words, with the
    DIMSE status in `status` when the PACS answered. `transfer_syntax` is the syntax it was sent in
    and `converted` says whether we had to decompress or re-encode it for the PACS.
    """

    name: str
    outcome: StoreOutcome
    reason: str = ""
    status: int | None = None
    path: Path | None = None
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax: str = ""
    converted: bool = False
    size: int = 0  # bytes of the source file (0 for datasets)
    attempts: int = 1  # times it was sent (more than one after a broken association)

    @property
    def stored(self) -> bool:
        return self.outcome in (StoreOutcome.SUCCESS, StoreOutcome.WARNING)


@dataclass(frozen=True)
class StoreProgress:
    """Where a send stands. `results` holds the results finished since the previous report, so a
    window can append them in one batch. `total` is None while folders are still being read."""

    total: int | None
    done: int
    stored: int
    warnings: int  # stored with a warning (counted in `stored` too)
    failed: int
    skipped: int
    bytes_done: int
    bytes_total: int
    elapsed: float
    results: tuple[StoreResult, ...] = ()
    finished: bool = False
