"""How a finished find went, in words: a FindJob's FindSummary (count, completeness and why) from
what each of its C-FINDs brought back, and the error a failed find raises.

Completeness: INCOMPLETE when matches were certainly kept from us (the limit, a cancel, an abort,
a Failure status); POSSIBLY_INCOMPLETE when they may have been (a Warning status, unreadable
responses, studies whose modalities could not be checked, or a count that looks like a server's
cap: a multiple of ROUND_COUNT_STEP).
"""

from __future__ import annotations

from .dicom.find import CANCEL, FindResponses
from .errors import AssociationAborted, DIMSEError, Timeout, status_words
from .records import Completeness, FindSummary, QueryLevel, QueryModel

ROUND_COUNT_STEP = 50  # a count that is a multiple of this (50, 100, 500...) may be a server's cap


def find_summary(level: QueryLevel, summaries: list[FindResponses], checks: list[FindResponses], *,
                 model: QueryModel, count: int, limit: int | None, cancel_requested: bool, filtered: int,
                 checked_modalities: int, unchecked: int, queries: tuple[str, ...], elapsed: float,
                 first_result_after: float | None) -> FindSummary:
    """The FindSummary of a find: `summaries` are its C-FINDs (the last one's status ends it),
    `checks` the series queries that checked modalities; `count` results were handed over,
    `filtered` answers left out as not matching, `checked_modalities` studies checked series by
    series and `unchecked` of them not checked."""
    last = summaries[-1] if summaries else None
    reasons: list[str] = []
    notes: list[str] = []
    completeness = Completeness.COMPLETE
    aborted = any(s.aborted for s in summaries + checks)
    dropped = sum(s.dropped for s in summaries)
    # Did a cancel (ours or the limit's) keep matches from us? Not when the PACS had finished
    # (Success) and nothing came after the cancel.
    stopped_early = last is None or aborted or dropped > 0 or last.status != 0x0000 or unchecked > 0
    limit_reached = any(s.limit_reached for s in summaries)
    cancelled = cancel_requested and not limit_reached and stopped_early
    unsupported = any(s.unsupported_keys for s in summaries)
    unreadable = sum(s.unreadable for s in summaries)
    if limit_reached and stopped_early:
        completeness = Completeness.INCOMPLETE
        reasons.append(f"stopped at the limit of {limit} results")
    elif cancelled:
        completeness = Completeness.INCOMPLETE
        reasons.append("cancelled")
    if aborted:
        completeness = Completeness.INCOMPLETE
        reasons.append(next((s.abort_reason for s in summaries if s.abort_reason), "the association was aborted"))
    if last is not None and last.status == CANCEL and not (limit_reached or cancelled):
        completeness = Completeness.INCOMPLETE
        reasons.append("the PACS ended the query as cancelled")
    if last is None and not cancelled:
        completeness = Completeness.INCOMPLETE
        reasons.append("the query did not run to its end")
    if last is not None and last.status is not None and last.status not in (0x0000, CANCEL):
        category, words = status_words(last.status, "C-FIND")
        if category == "Warning":
            reasons.append(f"the PACS ended with a warning: {words} (0x{last.status:04X})")
        else:
            reasons.append(f"the PACS reported: {words} (0x{last.status:04X})")
        completeness = Completeness.INCOMPLETE if category == "Failure" else max_completeness(
            completeness, Completeness.POSSIBLY_INCOMPLETE)
    if completeness is Completeness.COMPLETE or completeness is Completeness.POSSIBLY_INCOMPLETE:
        if count >= ROUND_COUNT_STEP and count % ROUND_COUNT_STEP == 0:
            completeness = Completeness.POSSIBLY_INCOMPLETE
            reasons.append(f"exactly {count} results: the PACS may cap its answers at that number")
    if unreadable:
        completeness = max_completeness(completeness, Completeness.POSSIBLY_INCOMPLETE)
        reasons.append(f"{unreadable} responses could not be read")
    if unchecked and not (limit_reached or cancelled or aborted):
        completeness = max_completeness(completeness, Completeness.POSSIBLY_INCOMPLETE)
        reasons.append(f"the modalities of {unchecked} studies could not be checked")
    if unsupported:
        notes.append("the PACS did not support some of the keys for matching")
    if checked_modalities:
        notes.append(f"the PACS does not return Modalities in Study: {checked_modalities} studies were "
                     "checked series by series")
    if filtered:
        notes.append(f"{filtered} answers did not match all the keys and were left out")
    return FindSummary(
        level=level, count=count, completeness=completeness,
        status=last.status if last else None, limit=limit, limit_reached=limit_reached,
        cancelled=cancelled, aborted=aborted, unsupported_keys=unsupported,
        reasons=tuple(reasons), notes=tuple(notes), queries=queries, query_model=model, elapsed=elapsed,
        first_result_after=first_result_after,
    )


def raise_for_failure(summaries: list[FindResponses], dimse_timeout: float) -> None:
    """Raise what ended a find that failed: Timeout (the PACS went silent for about `dimse_timeout`),
    AssociationAborted, or DIMSEError for a Failure status. Nothing for a find that ended otherwise."""
    if not summaries:
        return
    last = summaries[-1]
    if last.aborted and not last.cancel_sent:
        if last.elapsed >= dimse_timeout * 0.9:
            raise Timeout("waiting for the PACS's C-FIND answer", dimse_timeout)
        raise AssociationAborted("The PACS closed the association during the C-FIND",
                                 detail=last.abort_reason)
    if last.status is not None and last.status not in (0x0000, CANCEL) \
            and status_words(last.status, "C-FIND")[0] == "Failure":
        raise DIMSEError(last.status, "C-FIND", comment=last.comment)


def max_completeness(a: Completeness, b: Completeness) -> Completeness:
    """The less complete of the two."""
    order = [Completeness.COMPLETE, Completeness.POSSIBLY_INCOMPLETE, Completeness.INCOMPLETE]
    return a if order.index(a) >= order.index(b) else b


__all__ = ["ROUND_COUNT_STEP", "find_summary", "max_completeness", "raise_for_failure"]
