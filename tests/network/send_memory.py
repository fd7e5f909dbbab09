"""Run as a child process by test_big_send.py: send one file with StoreService and print, as JSON,
the process's peak resident memory (ru_maxrss) when idle (imports done, nothing sent) and after
the send.

    python -m tests.network.send_memory FILE HOST PORT CALLED_AE
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from pacsbrowser.core.records import RetryPolicy, ServerProfile, Timeouts
from pacsbrowser.core.store import StoreService


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    path, host, port, called = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    profile = ServerProfile(name="memory", host=host, port=port, called_ae=called, retry=RetryPolicy(max_retries=0),
                            timeouts=Timeouts(connect=10, acse=30, dimse=60, network=120))
    service = StoreService(profile, parallel=1)
    idle = peak_mb()
    started = time.monotonic()
    summary = asyncio.run(service.store(path))
    elapsed = time.monotonic() - started
    result = summary.results[0]
    print(json.dumps({"idle_mb": idle, "peak_mb": peak_mb(), "seconds": elapsed,
                      "outcome": str(result.outcome.value if hasattr(result.outcome, "value") else result.outcome),
                      "reason": result.reason, "bytes": path.stat().st_size}))


if __name__ == "__main__":
    main()
