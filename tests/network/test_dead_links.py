"""A link that freezes mid-transfer (no FIN, no RST, no byte: a dead Wi-Fi or VPN), made by the test
relay in front of our own SCP: C-FIND, C-GET, C-MOVE and C-STORE each end with a clear timeout within
the configured times, cancel ends them at any moment, none of our client's threads is left, and the
SCP frees the association's slot.

Before the fix each of these hung: the sockets had no timeout after connect, so the DUL thread
waited for the rest of a PDU for good, and pynetdicom's abort waited for that thread.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.client import DICOMClient
from pacsbrowser.core.errors import RetrieveInterrupted, Timeout
from pacsbrowser.core.query import QueryService
from pacsbrowser.core.records import RetrieveMethod, StoreOutcome, Timeouts
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.store import StoreService
from tests.lab.client import run
from tests.lab.relay import Relay

from .conftest import CLIENT_TIMEOUTS, LISTENER_AE, SERVER_TIMEOUTS, Pacs, profile_via
from .links import big_file, client_threads, no_client_threads, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

MOVE_MODEL = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root C-MOVE, as proposed in the association request

# the client gives up after DIMSE (its stall), then its abort may wait ACSE for the frozen peer
CLIENT_BOUND = CLIENT_TIMEOUTS.dimse + CLIENT_TIMEOUTS.acse + 3.0
# the SCP: an idle association after its network timeout, then ACSE for the A-ABORT to go
SLOT_BOUND = SERVER_TIMEOUTS.network + SERVER_TIMEOUTS.acse + 5.0


def _slot_freed(pacs: Pacs) -> float | None:
    return wait_until(lambda: not pacs.server.active_associations(), SLOT_BOUND)


def _report(what: str, elapsed: float, slot: float | None) -> None:
    print(f"\n[links] {what}: ended {elapsed:.1f} s after the start (bound {CLIENT_BOUND:g} s); "
          f"the SCP freed its slot {slot if slot is None else round(slot, 1)} s later")


def _check_ends(pacs: Pacs) -> None:
    left = no_client_threads()
    assert not left, f"threads of our client left running: {left}"
    slot = _slot_freed(pacs)
    assert slot is not None, f"the SCP still holds {len(pacs.server.active_associations())} association(s)"


def test_find_on_a_frozen_link_times_out(pacs: Pacs, relay: Relay) -> None:
    relay.freeze_mid_pdu("down")  # in the middle of the first C-FIND answer
    profile = profile_via(relay)
    service = QueryService(DICOMClient.from_profile(profile), profile)
    started = time.monotonic()
    with pytest.raises(Timeout) as raised:
        run(service.find_studies().collect(), timeout=60)
    elapsed = time.monotonic() - started
    assert relay.frozen
    assert "C-FIND" in str(raised.value)
    assert elapsed < CLIENT_BOUND, elapsed
    slot = _slot_freed(pacs)
    _report("C-FIND", elapsed, slot)
    _check_ends(pacs)


def test_get_on_a_frozen_link_times_out(pacs: Pacs, relay: Relay, tmp_path: Path) -> None:
    relay.freeze_mid_pdu("down", after=600_000)  # a few instances in: mid-object
    with Archive(tmp_path / "archive", durable=False) as archive:
        service = RetrieveService(profile_via(relay), archive, listener_host="127.0.0.1")
        started = time.monotonic()
        with pytest.raises(RetrieveInterrupted) as raised:
            run(service.get_study(pacs.study.study_uid).wait(), timeout=60)
        elapsed = time.monotonic() - started
        kept = len(archive.instances(study_uid=pacs.study.study_uid))
    assert relay.frozen
    assert raised.value.timed_out, raised.value
    assert 0 < kept < len(pacs.study.instances)
    assert elapsed < CLIENT_BOUND + 2, elapsed
    _report(f"C-GET ({kept} of {len(pacs.study.instances)} kept)", elapsed, _slot_freed(pacs))
    _check_ends(pacs)


def test_move_on_a_frozen_link_times_out(pacs: Pacs, relay: Relay, tmp_path: Path) -> None:
    # the C-MOVE's first answer (the PACS's C-STOREs come straight to our listener)
    relay.freeze_mid_pdu("down", when_seen=MOVE_MODEL.encode())
    profile = profile_via(relay, retrieve_method=RetrieveMethod.MOVE, calling_ae=LISTENER_AE,
                          listener_port=pacs.listener_port)
    with Archive(tmp_path / "archive", durable=False) as archive:
        service = RetrieveService(profile, archive, listener_host="127.0.0.1")
        started = time.monotonic()
        with pytest.raises(RetrieveInterrupted) as raised:
            run(service.move_study(pacs.study.study_uid).wait(), timeout=60)
        elapsed = time.monotonic() - started
    assert relay.frozen
    assert raised.value.timed_out, raised.value
    assert elapsed < CLIENT_BOUND + 4, elapsed
    _report("C-MOVE", elapsed, _slot_freed(pacs))
    _check_ends(pacs)


def test_store_on_a_frozen_link_times_out(pacs: Pacs, relay: Relay, tmp_path: Path) -> None:
    big = big_file(tmp_path / "big.dcm", 40)
    relay.freeze_mid_pdu("up")  # in the middle of the C-STORE request
    service = StoreService(profile_via(relay), parallel=1)
    started = time.monotonic()
    summary = run(service.store(big), timeout=60)
    elapsed = time.monotonic() - started
    assert relay.frozen
    assert isinstance(summary.error, Timeout), (summary.error, summary.results)
    assert summary.results[0].outcome is StoreOutcome.FAILED, summary.results[0]
    assert elapsed < CLIENT_BOUND, elapsed
    _report("C-STORE of 40 MB", elapsed, _slot_freed(pacs))
    _check_ends(pacs)


def test_cancel_ends_a_frozen_get_and_find_at_once(pacs: Pacs, relay: Relay, tmp_path: Path) -> None:
    """Cancel while the link is frozen: the job ends within the cancel bound, long before the timeouts."""
    slow = Timeouts(connect=5, acse=30, dimse=30, network=60)
    relay.freeze_mid_pdu("down", after=600_000)
    with Archive(tmp_path / "archive", durable=False) as archive:
        service = RetrieveService(profile_via(relay, timeouts=slow), archive, listener_host="127.0.0.1",
                                  cancel_timeout=1.0)
        job = service.get_study(pacs.study.study_uid)

        async def cancel_when_frozen() -> float:
            async def watch() -> None:
                while not relay.frozen:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)
                job.cancel()

            canceller = asyncio.create_task(watch())
            try:
                await job.wait()
            except RetrieveInterrupted:
                pass
            await canceller
            return time.monotonic() - (relay.frozen_at or 0)

        after_freeze = run(cancel_when_frozen(), timeout=60)
    print(f"\n[links] a C-GET cancelled on a frozen link ended {after_freeze:.1f} s after the freeze")
    assert after_freeze < 8.0, after_freeze
    assert not no_client_threads(), client_threads()

    relay.thaw()
    with Relay(*pacs.address) as other:
        other.freeze_mid_pdu("down")
        profile = profile_via(other, timeouts=slow)
        service_q = QueryService(DICOMClient.from_profile(profile), profile, cancel_timeout=1.0)

        async def cancelled_find() -> float:
            job = service_q.find_studies()
            reader = asyncio.create_task(job.collect())
            while not other.frozen:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            started = time.monotonic()
            job.cancel()
            try:
                await reader
            except Exception:  # noqa: BLE001 - how it ends is not the point: that it ends
                pass
            return time.monotonic() - started

        took = run(cancelled_find(), timeout=60)
    print(f"[links] a C-FIND cancelled on a frozen link ended {took:.1f} s after cancel()")
    assert took < 8.0, took
    assert not no_client_threads(), client_threads()
    assert _slot_freed(pacs) is not None


def test_cancel_while_associating_aborts_the_request(pacs: Pacs, relay: Relay) -> None:
    """The PACS accepted, its answer is stuck on the way: cancelling the wait aborts the association
    at once (the PACS frees the slot), not after the ACSE timeout."""
    slow = Timeouts(connect=5, acse=30, dimse=30, network=60)
    relay.freeze_ways = ("down",)  # our A-ABORT still reaches the PACS
    relay.freeze_mid_pdu("down", pdu_type=0x02)  # in the middle of the A-ASSOCIATE-AC
    client = DICOMClient.from_profile(profile_via(relay, timeouts=slow))

    async def cancel_midway() -> None:
        task = asyncio.create_task(client.associate())
        while not (relay.frozen and pacs.server.active_associations()):
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_midway(), timeout=30)
    started = time.monotonic()
    slot = wait_until(lambda: not pacs.server.active_associations(), 5.0)
    print(f"\n[links] cancelled while associating: the PACS freed its slot after "
          f"{slot if slot is None else round(slot, 2)} s")
    assert slot is not None, "the PACS still holds the association a cancelled request opened"
    left = no_client_threads(5.0)
    assert not left, left
    assert time.monotonic() - started < 8
    assert not client.is_associated
