"""Retrieve (C-GET / C-MOVE): progress and outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .profiles import RetrieveMethod
from .query import QueryLevel

# --------------------------------------------------------------------------------------------
# Retrieve (C-GET / C-MOVE): progress and outcome. core.retrieve makes these; a window shows a
# progress bar from RetrieveProgress and the final line from RetrieveSummary.summary.


class RetrievePhase(str, Enum):
    PLANNING = "planning"  # asking the PACS what the study holds, comparing with the archive
    RETRIEVING = "retrieving"
    FINISHING = "finishing"  # the PACS has answered; waiting for the files to be indexed
    DONE = "done"


@dataclass(frozen=True)
class RetrieveProgress:
    """Where a retrieve stands.

    `total` is how many instances this run fetches (what the archive lacks; None while unknown, or
    when the PACS did not answer the instance query). `remaining`, `completed`, `failed` and
    `warning` are the PACS's own sub-operation counts (from its pending responses, added up over the
    requests of this run); `received` and `bytes_received` count what actually arrived and was
    written to the archive. `rate` is instances per second since the first request went out.
    `already_present`: instances skipped because the archive held them already.
    """

    method: RetrieveMethod
    phase: RetrievePhase
    total: int | None = None
    received: int = 0
    bytes_received: int = 0
    remaining: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0
    already_present: int = 0
    elapsed: float = 0.0
    rate: float = 0.0  # instances per second
    byte_rate: float = 0.0  # bytes per second
    request: int = 0  # the C-GET/C-MOVE request under way (1-based; 0 before the first)
    requests: int = 0  # requests planned so far
    cancelling: bool = False

    @property
    def fraction(self) -> float | None:
        """0..1 for a progress bar, None when the total is not known."""
        if self.total is None:
            done, left = self.completed + self.failed + self.warning, self.remaining
            if left is None or done + left == 0:
                return None
            return done / (done + left)
        if self.total == 0:
            return 1.0
        return min(1.0, self.received / self.total)


@dataclass(frozen=True)
class RetrieveSummary:
    """How a retrieve ended.

    `expected`: instances the PACS said the study (series, instance) holds, None when it did not say;
    `already_present`: of those, how many the archive held before; `requested`: how many this run
    asked for (None when unknown); `received`/`bytes_received`: what arrived and was written;
    `completed`/`failed`/`warning`: the PACS's final sub-operation counts, added up. `missing`: SOP
    Instance UIDs the PACS listed that the archive still lacks. `failed_uids`: what the PACS said it
    could not send. `reasons` say in words why it is not complete; `notes` what else is worth knowing.
    """

    method: RetrieveMethod
    level: QueryLevel
    study_instance_uid: str
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    destination_ae: str = ""
    expected: int | None = None
    already_present: int = 0
    requested: int | None = None
    received: int = 0
    bytes_received: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    missing: tuple[str, ...] = ()
    failed_uids: tuple[str, ...] = ()
    status: int | None = None  # the last final status the PACS sent
    cancelled: bool = False
    aborted: bool = False
    associations: int = 0
    requests: int = 0
    elapsed: float = 0.0
    transfer_seconds: float = 0.0  # first request sent to last final response
    planned: bool = False  # the PACS said what it holds (instance list, or a count when the archive held none)
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Everything the PACS listed is in the archive (or, unplanned: nothing failed)."""
        return not (self.cancelled or self.aborted or self.missing or self.failed)

    @property
    def rate(self) -> float:
        """Instances received per second of transfer."""
        return self.received / self.transfer_seconds if self.transfer_seconds > 0 else 0.0

    @property
    def summary(self) -> str:
        mb = self.bytes_received / 1_000_000
        text = f"{self.received} instances ({mb:.1f} MB) in {self.elapsed:.2f} s"
        if self.received and self.transfer_seconds > 0:
            text += f" ({self.rate:.0f}/s)"
        if self.already_present:
            text += f", {self.already_present} already in the archive"
        if self.failed:
            text += f", {self.failed} failed"
        if self.warning:
            text += f", {self.warning} with warnings"
        if self.cancelled:
            text += "; cancelled"
        elif self.complete:
            text += "; complete"
        elif self.missing:
            text += f"; {len(self.missing)} still missing"
        else:
            text += "; incomplete"
        return text
