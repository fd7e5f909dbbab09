"""Checks that a test leaves nothing of ours running: threads, worker threads, child processes."""

from __future__ import annotations

import os
import threading
import time


def child_processes() -> set[int]:
    """Our direct child processes that are still alive (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    me = str(os.getpid())
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry))
    return found


class Snapshot:
    """What runs before a test; `leftovers()` is what it started and left running afterwards."""

    def __init__(self) -> None:
        self.threads = set(threading.enumerate())
        self.children = child_processes()

    def leftovers(self, timeout: float = 10.0) -> list[str]:
        from pacsbrowser.core import executor

        deadline = time.monotonic() + timeout
        problems = []
        if not executor.join_all(timeout):
            problems.append(f"worker threads: {[t.name for t in executor.active_threads()]}")
        while True:
            extra = [t for t in threading.enumerate() if t not in self.threads and t.is_alive()]
            if not extra or time.monotonic() > deadline:
                break
            for thread in extra:
                thread.join(max(0.0, min(0.2, deadline - time.monotonic())))
        if extra:
            problems.append(f"threads: {[t.name for t in extra]}")
        from tests.lab.peers import running_peer_pids

        def started_here() -> set[int]:  # a lab peer kept for the session or module is no leftover
            return child_processes() - self.children - running_peer_pids()

        while started_here() and time.monotonic() < deadline:
            time.sleep(0.02)
        children = started_here()
        if children:
            problems.append(f"child processes: {sorted(children)}")
        return problems
