"""Run as a child process by test_big_send.py: send one file with StoreService and print, as JSON,
the process's resident memory when idle (imports done, nothing sent yet) and its peak during the
send (Linux: the high-water mark is reset first, writing 5 to /proc/self/clear_refs, so what the
imports took does not hide what the send takes).

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


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    path, host, port, called = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    profile = ServerProfile(name="memory", host=host, port=port, called_ae=called, retry=RetryPolicy(max_retries=0),
                            timeouts=Timeouts(connect=10, acse=30, dimse=60, network=120))
    service = StoreService(profile, parallel=1)
    idle = _status_mb("VmRSS") or peak_mb()
    reset = reset_peak()
    started = time.monotonic()
    summary = asyncio.run(service.store(path))
    elapsed = time.monotonic() - started
    result = summary.results[0]
    print(json.dumps({"idle_mb": idle, "peak_mb": peak_mb(), "peak_reset": reset, "seconds": elapsed,
                      "outcome": str(result.outcome.value if hasattr(result.outcome, "value") else result.outcome),
                      "reason": result.reason, "bytes": path.stat().st_size}))


if __name__ == "__main__":
    main()
