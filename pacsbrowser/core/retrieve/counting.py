"""The counts of one retrieve job, in one place: what arrived (at a C-GET association or our
listener), what the PACS said of its sub-operations, the reasons and notes; and what is made of
them, the RetrieveProgress snapshots and the RetrieveSummary (or the error a failure is)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..dicom.retrieve import RetrieveResponses
from ..errors import DIMSEError, status_words
from ..records import Received, RetrieveMethod, RetrievePhase, RetrieveProgress, RetrieveSummary

if TYPE_CHECKING:
    from .planning import Plan, Request, Target

_PACS_SAID = "the PACS said: "


class RetrieveCounts:
    """Counters of one job (`to_us`: a C-MOVE whose destination is our own listener). The job's
    parts change them on the loop; `snapshot()` and `finish()` read them."""

    def __init__(self, method: RetrieveMethod, target: Target, destination_ae: str, *, to_us: bool) -> None:
        self.method = method
        self.target = target
        self.destination_ae = destination_ae
        self.to_us = to_us
        self.phase = RetrievePhase.PLANNING
        self.plan: Plan | None = None
        self.started = 0.0
        self.transfer_started: float | None = None
        self.transfer_ended: float | None = None
        self.last_activity = 0.0  # a response or an instance: what the idle watch looks at
        # what arrived
        self.received_uids: set[str] = set()
        self.received = 0
        self.bytes = 0
        self.refused: list[str] = []  # why the archive could not write an instance
        self.refused_uids: set[str] = set()  # the instances our own handler refused (disk full...)
        self.arrived = 0  # records of the target from our listener (C-MOVE), whatever the plan said
        self.move_filter: set[str] | None = None  # what a C-MOVE counts as received (None: all of the target)
        # what the PACS said
        self.finished = [0, 0, 0]  # completed, failed, warning of finished requests
        self.current: tuple[int | None, int, int, int] = (None, 0, 0, 0)  # remaining, completed, failed, warning
        self.queued: int | None = 0  # instances of requests not yet sent (None: unknown)
        self.total: int | None = None
        self.present = 0
        self.failed_uids: list[str] = []
        self.statuses: list[int] = []
        self.retried_ok = 0  # failed once, then arrived on a later association
        # the work
        self.request_no = 0
        self.requests = 0
        self.associations = 0
        self.aborted = False
        self.reasons: list[str] = []
        self.notes: list[str] = []
        self.summary: RetrieveSummary | None = None

    @property
    def service_name(self) -> str:
        return "C-MOVE" if self.method is RetrieveMethod.MOVE else "C-GET"

    # -- changes

    def planned(self, plan: Plan) -> None:
        self.plan = plan
        missing = plan.missing
        self.present = len(plan.present & {w.uid for w in plan.wanted}) if plan.wanted is not None else 0
        self.total = self.queued = len(missing) if missing is not None else None
        if missing is None and plan.expected is not None:  # the count the PACS said, without a listing
            self.total = plan.expected

    def request_sent(self, request: Request) -> None:
        self.request_no += 1
        if self.queued is not None and request.count is not None:
            self.queued = max(0, self.queued - request.count)
        elif request.count is None:
            self.queued = None
        self.current = (request.count, 0, 0, 0)
        if self.transfer_started is None:
            self.transfer_started = time.monotonic()
        self.last_activity = time.monotonic()

    def apply(self, event: tuple) -> None:
        """An event of the request under way: ("stored", uid, size), ("pending", remaining,
        completed, failed, warning) or ("refused", uid, why)."""
        self.last_activity = time.monotonic()
        kind = event[0]
        if kind == "stored":
            _, uid, size = event
            if uid not in self.received_uids:
                self.received_uids.add(uid)
                self.received += 1
            self.bytes += size
        elif kind == "pending":
            _, remaining, completed, failed, warning = event
            self.current = (remaining, completed, failed, warning)
        elif kind == "refused":
            self.refused.append(str(event[2]))
            self.refused_uids.add(str(event[1]))

    def request_ended(self, result: RetrieveResponses) -> None:
        self.transfer_ended = time.monotonic()
        self.finished[0] += result.completed
        self.finished[1] += result.failed
        self.finished[2] += result.warning
        self.current = (None, 0, 0, 0)
        if result.status is not None:
            self.statuses.append(result.status)
        self.failed_uids.extend(u for u in result.failed_uids if u not in self.failed_uids)
        if result.status is not None and result.status not in (0x0000, 0xFE00) and result.comment:
            self.notes.append(f"{_PACS_SAID}{result.comment}")

    def landed(self, record: Received) -> bool:
        """A record from our listener (C-MOVE): True when it is a new instance of this job."""
        t = self.target
        if record.study_instance_uid != t.study_uid:
            return False
        if t.series_uid and record.series_instance_uid != t.series_uid:
            return False
        if t.sop_uid and record.sop_instance_uid != t.sop_uid:
            return False
        self.last_activity = time.monotonic()
        self.arrived += 1
        if self.move_filter is not None and record.sop_instance_uid not in self.move_filter:
            return False
        if record.sop_instance_uid in self.received_uids:
            return False
        self.received_uids.add(record.sop_instance_uid)
        self.received += 1
        self.bytes += record.size
        return True

    # -- readings

    def missing_now(self) -> list[str]:
        plan = self.plan
        if plan is None or plan.missing is None:
            return []
        return [w.uid for w in plan.missing if w.uid not in self.received_uids]

    def _transfer_seconds(self, now: float) -> float:
        if self.transfer_started is None:
            return 0.0
        return (self.transfer_ended or now) - self.transfer_started

    def snapshot(self, *, cancelling: bool) -> RetrieveProgress:
        now = time.monotonic()
        remaining, completed, failed, warning = self.current
        if remaining is not None and self.queued is not None:
            remaining += self.queued
        elif remaining is None and self.queued:
            remaining = self.queued
        transfer = self._transfer_seconds(now)
        fin = self.finished
        return RetrieveProgress(
            method=self.method, phase=self.phase, total=self.total, received=self.received,
            bytes_received=self.bytes, remaining=remaining, completed=fin[0] + completed,
            failed=fin[1] + failed, warning=fin[2] + warning, already_present=self.present,
            elapsed=now - self.started if self.started else 0.0,
            rate=self.received / transfer if transfer > 0 else 0.0,
            byte_rate=self.bytes / transfer if transfer > 0 else 0.0,
            request=self.request_no, requests=self.requests, cancelling=cancelling,
        )

    def finish(self, *, cancel_requested: bool) -> RetrieveSummary:
        """The summary as things stand (kept in `summary`)."""
        plan = self.plan
        t = self.target
        missing = self.missing_now()
        reasons = list(self.reasons)
        failed = max(0, self.finished[1] - self.retried_ok)
        if plan is not None and plan.missing is not None:  # planned: did everything come anyway?
            finished = not missing and not failed
        else:
            finished = bool(self.statuses) and self.statuses[-1] == 0x0000 and not self.aborted
        cancelled = cancel_requested and not finished
        if cancelled:
            reasons.insert(0, "cancelled")
        if missing and not cancelled:
            reasons.append(f"{len(missing)} of the instances the PACS listed did not arrive")
        if (plan is not None and plan.wanted is None and plan.expected is not None and not cancelled
                and self.received < plan.expected):  # unlisted (nothing was held): only the count says it
            reasons.append(f"{plan.expected - self.received} of the {plan.expected} instances the PACS said it "
                           "holds did not arrive")
        if failed:
            last = next((s for s in reversed(self.statuses) if s not in (0x0000, 0xFE00)), None)
            words = f" ({status_words(last, self.service_name)[1]}, 0x{last:04X})" if last is not None else ""
            reasons.append(f"the PACS reported {failed} failed sub-operation{'s' if failed != 1 else ''}{words}")
            if self.to_us:
                reasons.append("the PACS could not send them to our listener (a transfer syntax it cannot convert "
                               "and our listener did not accept, or the listener refused them)")
        if self.refused:
            reasons.append(f"{len(self.refused)} instances could not be written to the archive: {self.refused[0]}")
        expected = len(plan.wanted) if plan is not None and plan.wanted is not None else None
        requested = len(plan.missing) if plan is not None and plan.missing is not None else None
        if plan is not None and plan.wanted is None and plan.expected is not None:  # nothing held: all of it
            expected = requested = plan.expected
        self.summary = RetrieveSummary(
            method=self.method, level=t.level, study_instance_uid=t.study_uid, series_instance_uid=t.series_uid,
            sop_instance_uid=t.sop_uid, destination_ae=self.destination_ae, expected=expected,
            already_present=self.present, requested=requested, received=self.received,
            bytes_received=self.bytes, completed=self.finished[0], failed=failed, warning=self.finished[2],
            missing=tuple(missing), failed_uids=tuple(u for u in self.failed_uids if u not in self.received_uids),
            status=self.statuses[-1] if self.statuses else None, cancelled=cancelled, aborted=self.aborted,
            associations=self.associations, requests=self.request_no,
            elapsed=time.monotonic() - self.started if self.started else 0.0,
            transfer_seconds=self._transfer_seconds(time.monotonic()),
            planned=plan is not None and (plan.wanted is not None or plan.expected is not None), reasons=tuple(dict.fromkeys(reasons)),
            notes=tuple(dict.fromkeys(self.notes)),
        )
        return self.summary

    def failure(self) -> DIMSEError | None:
        """Nothing arrived and the PACS said why: that is an error (carrying the summary), not a summary."""
        summary = self.summary
        assert summary is not None
        if summary.cancelled or summary.received or summary.completed or summary.warning or not self.statuses:
            return None
        last = self.statuses[-1]
        if status_words(last, self.service_name)[0] != "Failure":
            return None
        comment = next((n[len(_PACS_SAID):] for n in self.notes if n.startswith(_PACS_SAID)), "")
        hint = ""
        if self.refused:  # the PACS failed them because our own handler refused them
            hint = (f"our archive refused {len(self.refused)} instance{'s' if len(self.refused) != 1 else ''}: "
                    f"{self.refused[0]}")
        elif self.method is RetrieveMethod.GET and summary.failed:
            hint = (f"the PACS could not send {summary.failed} instance{'s' if summary.failed != 1 else ''} on the "
                    "presentation contexts it accepted (it cannot convert their transfer syntax)")
        elif self.method is RetrieveMethod.MOVE and summary.failed:
            hint = f"the PACS could not deliver {summary.failed} instances to {self.destination_ae}"
        error = DIMSEError(last, self.service_name, comment=comment, hint=hint)
        error.summary = summary  # type: ignore[attr-defined]  # DIMSEError has no summary field; callers read it
        return error


__all__ = ["RetrieveCounts"]
