"""Our client's side in the tests: a ServerProfile for a lab peer or a test SCP, and a bounded run."""

from __future__ import annotations

import asyncio
from typing import Any

from pacsbrowser.core.records import RetryPolicy, ServerProfile, Timeouts


def profile_for(peer: Any, **changes: Any) -> ServerProfile:
    """A profile for a lab peer or a test SCP: short timeouts, no retries; `changes` override."""
    options: dict[str, Any] = dict(name="test", host=peer.host, port=peer.port,
                                   called_ae=getattr(peer, "aet", None) or peer.ae_title,
                                   retry=RetryPolicy(max_retries=0), timeouts=Timeouts.uniform(10))
    options.update(changes)
    return ServerProfile(**options)


def run(coro: Any, timeout: float = 60.0) -> Any:
    """Run a coroutine on a fresh loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
