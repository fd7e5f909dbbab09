"""The retry policy: delays, cap and jitter with a fake clock; a server that comes up is reached."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from pacsbrowser.core.client import DICOMClient, VerificationService
from pacsbrowser.core.errors import AssociationRejected, ConnectionFailed
from pacsbrowser.core.records import RetryPolicy, Timeouts


def test_delays_grow_exponentially_and_stop_at_the_cap():
    policy = RetryPolicy(max_retries=7, initial_delay=0.5, max_delay=5.0, multiplier=2.0, jitter=0.0)
    assert policy.delays() == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_jitter_stays_within_its_share_and_under_the_cap():
    policy = RetryPolicy(max_retries=6, initial_delay=1.0, max_delay=10.0, multiplier=3.0, jitter=0.2)
    rng = random.Random(7)
    for retry, delay in enumerate(policy.delays(rng), start=1):
        base = min(10.0, 3.0 ** (retry - 1))
        assert base * 0.8 - 1e-9 <= delay <= min(10.0, base * 1.2) + 1e-9


def test_invalid_policies_are_refused():
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(multiplier=0.5)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeClock:
    """Records the delays asked for instead of sleeping; can run something at a given retry."""

    def __init__(self, on_retry=None) -> None:
        self.delays: list[float] = []
        self.on_retry = on_retry or {}

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        action = self.on_retry.get(len(self.delays))
        if action:
            action()


def test_client_retries_with_the_policy_delays_then_gives_up():
    policy = RetryPolicy(max_retries=4, initial_delay=0.25, max_delay=1.0, multiplier=2.0, jitter=0.0)
    clock = FakeClock()
    client = DICOMClient("127.0.0.1", _free_port(), called_ae="ANY", retry_policy=policy, sleep=clock.sleep,
                         timeouts=Timeouts.uniform(2))
    with pytest.raises(ConnectionFailed):
        asyncio.run(client.associate())
    assert clock.delays == [0.25, 0.5, 1.0, 1.0]
    assert client.attempts == 5


def test_a_server_that_comes_up_during_the_retries_is_reached():
    port = _free_port()
    scp = AE(ae_title="LATE")
    scp.add_supported_context(Verification)
    servers = []
    clock = FakeClock(on_retry={2: lambda: servers.append(scp.start_server(("127.0.0.1", port), block=False))})
    policy = RetryPolicy(max_retries=5, initial_delay=0.1, max_delay=1.0, jitter=0.0)
    client = DICOMClient("127.0.0.1", port, called_ae="LATE", retry_policy=policy, sleep=clock.sleep)

    async def run() -> float:
        async with client:
            return await VerificationService(client).verify()

    try:
        rtt = asyncio.run(run())
    finally:
        for server in servers:
            server.shutdown()
    assert rtt > 0
    assert clock.delays == [0.1, 0.2]
    assert client.attempts == 3


def test_a_permanent_rejection_is_not_retried():
    scp = AE(ae_title="STRICT")
    scp.add_supported_context(Verification)
    scp.require_called_aet = True
    server = scp.start_server(("127.0.0.1", 0), block=False)
    clock = FakeClock()
    client = DICOMClient("127.0.0.1", server.server_address[1], called_ae="WRONG",
                         retry_policy=RetryPolicy(max_retries=3), sleep=clock.sleep)
    try:
        with pytest.raises(AssociationRejected) as info:
            asyncio.run(client.associate())
    finally:
        server.shutdown()
    assert clock.delays == []
    assert info.value.reason == 7 and "called AE title not recognised" in str(info.value)
