"""Streaming, cancel, limit and what the PACS says at the end, against in-process SCPs on 127.0.0.1.

FaultSCP ("slow") sleeps before each response and honours C-CANCEL, recording when each response
was handed to pynetdicom and when C-CANCEL was seen; ScriptedSCP (conftest) misbehaves: deaf to
C-CANCEL, stubborn after it, silent, warning and failure statuses.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pydicom.dataset import Dataset

from pacsbrowser.core.client import DICOMClient
from pacsbrowser.core.errors import DIMSEError, Timeout
from pacsbrowser.core.query import find_contexts
from pacsbrowser.core.records import Completeness, QueryKeys, Timeouts
from tests.lab.client import profile_for, run
from tests.lab.fault_scp import study_dataset

from .conftest import collect, service_for

pytestmark = pytest.mark.timeout(60)


def studies(n: int, name: str = "SMITH^JOHN") -> list[Dataset]:
    return [study_dataset(PatientName=f"{name}{i:03d}", PatientID=f"P{i:03d}", StudyInstanceUID=f"1.2.826.0.9.{i}",
                          StudyDate="20240101", StudyTime="101010") for i in range(n)]


def pending(n: int) -> list[tuple[int, Dataset]]:
    return [(0xFF00, ds) for ds in studies(n)]


def test_the_first_result_reaches_the_caller_before_the_last_response_is_sent(fault_scp):
    scp = fault_scp("slow", datasets=studies(8), delay=0.2)  # the last response >= 1.4 s after the first
    service = service_for(scp)
    seen: list[float] = []
    batches = 0

    async def read():
        nonlocal batches
        async with service.find_studies(patient_name="smith") as found:
            async for batch in found.batches():
                batches += 1
                seen.extend(time.monotonic() for _ in batch)
        return found.outcome

    outcome = run(read())
    sent = scp.response_times  # 8 pending + the final status
    assert len(seen) == 8 and len(sent) == 9
    print(f"\nfirst result {outcome.first_result_after * 1000:.0f} ms, last response after "
          f"{outcome.elapsed * 1000:.0f} ms; first result {(sent[-1] - seen[0]) * 1000:.0f} ms before the final "
          f"status was sent")
    assert seen[0] < sent[-1] - 0.5, "the first result came only at the end"  # ~1.4 s before it, unloaded
    assert batches >= 4  # streamed, not handed over at the end
    assert outcome.complete and outcome.count == 8
    assert outcome.first_result_after < outcome.elapsed - 0.5


def test_cancel_after_a_few_results_sends_c_cancel_and_returns_promptly(fault_scp):
    scp = fault_scp("slow", datasets=studies(50), delay=0.2)
    service = service_for(scp)
    timing = {}

    async def read():
        found = service.find_studies(patient_name="SMITH*")
        got = []
        async for study in found:
            got.append(study)
            if len(got) == 3:
                timing["cancel"] = time.monotonic()
                found.cancel()
        timing["end"] = time.monotonic()
        return got, found.outcome

    got, outcome = run(read())
    latency = timing["end"] - timing["cancel"]
    print(f"\ncancel latency {latency * 1000:.0f} ms")
    assert scp.wait_for(lambda s: s.cancels == 1, 5)
    assert 3 <= len(got) <= 4  # the PACS's next response (0.2 s away) at most
    assert outcome.cancelled and outcome.incomplete and outcome.status == 0xFE00
    assert "cancelled" in outcome.summary
    assert latency < 3.0, f"cancel took {latency:.2f} s"  # the other 46 responses would take 9 s
    assert scp.wait_for(lambda s: s.count("released") == 1, 5)  # released, not aborted
    assert scp.aborts_received == 0


def test_leaving_the_loop_early_cancels_the_find(fault_scp):
    scp = fault_scp("slow", datasets=studies(50), delay=0.2)
    service = service_for(scp)

    async def read():
        async with service.find_studies() as found:
            async for _ in found:
                break
        return found.outcome

    started = time.monotonic()
    outcome = run(read())
    elapsed = time.monotonic() - started
    print(f"\nleft after the first result: {elapsed * 1000:.0f} ms")
    assert elapsed < 5.0  # all 50 responses take 10 s
    assert scp.wait_for(lambda s: s.cancels == 1, 5)
    assert outcome.cancelled and outcome.count == 1


def test_cancelling_the_task_stops_the_pacs_too(fault_scp):
    scp = fault_scp("slow", datasets=studies(50), delay=0.2)
    service = service_for(scp)

    async def main():
        found = service.find_studies()
        got = []

        async def read():
            async with found:
                async for study in found:
                    got.append(study)

        task = asyncio.create_task(read())
        while len(got) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return found.outcome

    outcome = run(main())
    assert scp.wait_for(lambda s: s.cancels == 1, 5)
    assert outcome is not None and outcome.cancelled


def test_a_limit_cancels_after_n_results_and_says_incomplete(fault_scp):
    scp = fault_scp("slow", datasets=studies(40), delay=0.1)
    service = service_for(scp)
    started = time.monotonic()
    results, outcome = run(collect(service, QueryKeys.studies(), limit=5))
    elapsed = time.monotonic() - started
    print(f"\nlimit of 5 reached and the query ended in {elapsed * 1000:.0f} ms")
    assert elapsed < 3.0  # all 40 responses take 4 s
    assert len(scp.response_times) < 40  # the PACS was stopped, not run to the end
    assert len(results) == 5
    assert scp.wait_for(lambda s: s.cancels == 1, 5)
    assert outcome.limit_reached and outcome.incomplete and not outcome.cancelled
    assert outcome.limit == 5 and "limit of 5" in outcome.summary


def test_a_limit_the_pacs_does_not_reach_is_complete(fault_scp):
    scp = fault_scp("ok", datasets=studies(4))
    results, outcome = run(collect(service_for(scp), QueryKeys.studies(), limit=10))
    assert len(results) == 4 and outcome.complete and not outcome.limit_reached and scp.cancels == 0


def test_a_pacs_deaf_to_c_cancel_is_aborted_within_the_bound(scripted_scp):
    scp = scripted_scp(pending(10), hang_after=2)
    service = service_for(scp, cancel_timeout=0.5)
    timing = {}

    async def read():
        found = service.find_studies()
        async for _ in found:
            if found.count == 2:
                timing["cancel"] = time.monotonic()
                found.cancel()
        timing["end"] = time.monotonic()
        return found

    found = run(read())
    latency = timing["end"] - timing["cancel"]
    print(f"\ncancel -> abort {latency * 1000:.0f} ms")
    assert found.outcome.aborted and found.outcome.cancelled and found.outcome.incomplete
    assert found.count == 2
    assert 0.4 < latency < 8.0, latency  # waited for the cancel_timeout (0.5 s); the SCP hangs for 20 s
    assert not service.client.is_associated  # aborted (the deaf SCP's handler notices only later)


def test_a_pacs_that_keeps_sending_after_c_cancel_is_cut_off(scripted_scp):
    scp = scripted_scp(pending(400) + [(0x0000, None)], stubborn=True, interval=0.05)  # 20 s in all
    service = service_for(scp, cancel_timeout=0.3)
    started = time.monotonic()
    results, outcome = run(collect(service, QueryKeys.studies(), limit=3))
    elapsed = time.monotonic() - started
    print(f"\ncut off after {elapsed * 1000:.0f} ms, {len(scp.sent_at)} of 400 responses sent")
    assert len(results) == 3
    assert scp.cancel_seen.is_set()
    assert outcome.limit_reached and outcome.aborted and outcome.incomplete
    assert elapsed < 8.0, elapsed


def test_a_pacs_going_silent_mid_query_is_a_timeout_after_the_results_so_far(scripted_scp):
    scp = scripted_scp(pending(5), hang_after=2)
    service = service_for(scp, timeouts=Timeouts.uniform(1.0))
    got = []

    async def read():
        found = service.find_studies()
        try:
            async for study in found:
                got.append(study)
        finally:
            got.append(found.outcome)

    with pytest.raises(Timeout):
        run(read())
    assert len(got) == 3 and got[-1].aborted and got[-1].incomplete


def test_a_pacs_warning_is_reported_as_possibly_incomplete(scripted_scp):
    scp = scripted_scp(pending(3) + [(0xB000, None)])
    results, outcome = run(collect(service_for(scp), QueryKeys.studies()))
    assert len(results) == 3
    assert outcome.completeness is Completeness.POSSIBLY_INCOMPLETE and outcome.possibly_incomplete
    assert any("warning" in reason for reason in outcome.reasons)


def test_a_failure_after_some_results_raises_after_them(scripted_scp):
    scp = scripted_scp(pending(2) + [(0xA700, None)])
    got = []

    async def read():
        found = service_for(scp).find_studies()
        try:
            async for study in found:
                got.append(study)
        finally:
            got.append(found.outcome)

    with pytest.raises(DIMSEError) as error:
        run(read())
    assert error.value.status == 0xA700 and "out of resources" in str(error.value).lower()
    assert len(got) == 3 and got[-1].incomplete


def test_a_round_number_count_may_be_a_server_cap(fault_scp):
    scp = fault_scp("ok", datasets=studies(100), match=False)
    results, outcome = run(collect(service_for(scp), QueryKeys.studies()))
    assert len(results) == 100
    assert outcome.completeness is Completeness.POSSIBLY_INCOMPLETE
    assert "exactly 100" in outcome.summary


def test_unsupported_optional_keys_are_noted(scripted_scp):
    scp = scripted_scp([(0xFF01, ds) for ds in studies(2)])
    results, outcome = run(collect(service_for(scp), QueryKeys.studies()))
    assert len(results) == 2 and outcome.unsupported_keys and outcome.notes


def test_a_large_answer_comes_in_few_batches(fault_scp):
    scp = fault_scp("ok", datasets=studies(600), match=False)
    service = service_for(scp)

    async def read():
        sizes = []
        async with service.find_studies() as found:
            async for batch in found.batches():
                sizes.append(len(batch))
        return sizes, found.outcome

    sizes, outcome = run(read())
    assert sum(sizes) == 600 and outcome.count == 600
    assert len(sizes) < 100, f"{len(sizes)} batches for 600 results"


def test_an_open_association_is_used_and_left_open(fault_scp):
    scp = fault_scp("ok", datasets=studies(3))
    profile = profile_for(scp)
    client = DICOMClient.from_profile(profile)

    async def main():
        await client.associate(contexts=find_contexts())
        try:
            from pacsbrowser.core.query import QueryService

            service = QueryService(client, profile)
            first = await service.find_studies().collect()
            second = await service.find_studies(patient_id="P001").collect()
            assert client.is_associated
        finally:
            await client.release()
        return first, second

    first, second = run(main())
    assert len(first) == 3 and [s.patient_id for s in second] == ["P001"]
    assert scp.count("requested") == 1  # one association for both finds


def test_a_find_cancelled_before_it_starts_sends_nothing(fault_scp):
    scp = fault_scp("ok", datasets=studies(3))

    async def main():
        found = service_for(scp).find_studies()
        found.cancel()
        return await found.collect(), found.outcome

    results, outcome = run(main())
    assert results == [] and outcome.cancelled and scp.connections == 0
