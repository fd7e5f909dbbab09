"""The cases: ours (a worker process) against the DCMTK tool doing the same job, alternating.

Each repetition runs both sides, ours first on even repetitions and DCMTK first on odd ones, after
one warm-up repetition of each that is not counted. Medians are reported; ratio = ours / DCMTK.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lab import DCMQRSCP_STUDIES, BenchLab
from .procs import BenchError, Measured, Worker, dcmtk_cmd, proc_cpu, proc_peak_rss_kb, run_sequential, run_tools

ECHO_COUNT = 50


@dataclass
class Row:
    key: str
    label: str
    dcmtk_label: str
    ours: list[float] = field(default_factory=list)
    dcmtk: list[float] = field(default_factory=list)
    ours_rss_kb: int = 0  # peak of the worker process that ran only this case
    ours_base_kb: int = 0  # its RSS after imports and setup, before the first repetition
    dcmtk_rss_kb: int = 0  # peak over the DCMTK processes
    ours_cpu: list[float] = field(default_factory=list)
    dcmtk_cpu: list[float] = field(default_factory=list)
    unit: str = "s"
    note: str = ""
    missing: str = ""  # why it was not measured
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ours_median(self) -> float | None:
        return statistics.median(self.ours) if self.ours else None

    @property
    def dcmtk_median(self) -> float | None:
        return statistics.median(self.dcmtk) if self.dcmtk else None

    @property
    def ratio(self) -> float | None:
        o, d = self.ours_median, self.dcmtk_median
        return o / d if o is not None and d else None


@dataclass
class Context:
    lab: BenchLab
    reps: int
    warmup: int
    logdir: Path
    say: Callable[[str], None]
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def spent(self) -> Path:
        """Where repetitions' files are set aside (benchmarks.spent), removed with the lab."""
        return self.lab.root / "spent"

    def tmp(self, name: str) -> Path:
        path = self.lab.root / "work" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def worker(self, case: str, module: str = "benchmarks.worker", **config: Any) -> Worker:
        from tests.lab.peers import shim_path

        env = {"LD_PRELOAD": str(shim_path()), **self.extra_env}
        import os
        env["LOOPBACK_BIND_PARENT"] = str(os.getpid())  # killed with the harness
        return Worker(module, {"case": case, "tmp": str(self.tmp(f"worker-{case}-{time.monotonic_ns()}")),
                               "spent": str(self.spent),
                               **config}, self.logdir / f"worker-{case}.log", env=env)


def orthanc_target(ctx: Context) -> dict[str, Any]:
    o = ctx.lab.orthanc
    assert o is not None
    return {"host": o.host, "port": o.port, "aet": o.aet}


def alternate(ctx: Context, rows: list[Row], ours: Callable[[], Measured], theirs: Callable[[], Measured],
              record: Callable[[list[Row], str, Measured], None] | None = None, *,
              before: Callable[[str], None] | None = None, after: Callable[[str], None] | None = None,
              reps: int | None = None) -> None:
    """Run both sides warm-up + reps times, alternating who goes first; record the counted ones."""
    reps = ctx.reps if reps is None else reps
    record = record or _record_seconds
    times: dict[str, float] = {}
    for i in range(ctx.warmup + reps):
        sides = [("ours", ours), ("dcmtk", theirs)]
        if i % 2:
            sides.reverse()
        for name, fn in sides:
            if before:
                before(name)
            measured = fn()
            if after:
                after(name)
            if i >= ctx.warmup:
                record(rows, name, measured)
            times[name] = measured.seconds
        label = f"rep {i + 1 - ctx.warmup}" if i >= ctx.warmup else "warm-up"
        ctx.say(f"    {label}: ours {times['ours']:.3f} s, DCMTK {times['dcmtk']:.3f} s")


def _record_seconds(rows: list[Row], side: str, m: Measured) -> None:
    row = rows[0]
    if side == "ours":
        row.ours.append(m.seconds)
        row.ours_cpu.append(m.cpu)
        row.ours_rss_kb = max(row.ours_rss_kb, m.rss_kb)
    else:
        row.dcmtk.append(m.seconds)
        row.dcmtk_cpu.append(m.cpu)
        row.dcmtk_rss_kb = max(row.dcmtk_rss_kb, m.rss_kb)


class WorkerSide:
    """`side()` runs the worker's `run` once and turns the answer into a Measured (CPU of that run)."""

    def __init__(self, worker: Worker, cmd: str = "run") -> None:
        self.worker = worker
        self.cmd = cmd
        self.cpu = worker.ready["cpu"]

    def __call__(self) -> Measured:
        answer = self.worker.call(self.cmd)
        cpu, self.cpu = answer["cpu"] - self.cpu, answer["cpu"]
        return Measured(answer["seconds"], answer["rss_kb"], cpu, answer)


def _finish(rows: list[Row], worker: Worker) -> None:
    last = worker.close()
    for row in rows:
        row.ours_base_kb = worker.ready.get("rss_now_kb", 0)
        if last:
            row.ours_rss_kb = max(row.ours_rss_kb, last["rss_kb"])


# --------------------------------------------------------------------------------------------
# echo


def case_echo(ctx: Context) -> list[Row]:
    target = orthanc_target(ctx)
    echo = ["-aec", target["aet"], target["host"], target["port"]]
    rows = []
    one = Row("echo_one", f"echo: {ECHO_COUNT} C-ECHO on one association", f"echoscu --repeat {ECHO_COUNT}")
    with ctx.worker("echo_one", **target, count=ECHO_COUNT) as worker:
        alternate(ctx, [one], WorkerSide(worker),
                  lambda: run_tools([dcmtk_cmd("echoscu", "--repeat", ECHO_COUNT, *echo)]))
        _finish([one], worker)
    rows.append(one)
    many = Row("echo_many", f"echo: {ECHO_COUNT} associations, one C-ECHO each",
               f"{ECHO_COUNT} echoscu processes in turn")
    with ctx.worker("echo_many", **target, count=ECHO_COUNT) as worker:
        alternate(ctx, [many], WorkerSide(worker),
                  lambda: run_sequential([dcmtk_cmd("echoscu", *echo)] * ECHO_COUNT))
        _finish([many], worker)
    rows.append(many)
    return rows


# --------------------------------------------------------------------------------------------
# find


def study_keys() -> list[str]:
    """findscu -k arguments for the identifier our QueryService sends for an all-studies query."""
    from pacsbrowser.core.client import DICOMClient
    from pacsbrowser.core.query import QueryService
    from pacsbrowser.core.records import QueryKeys

    prepared = QueryService(DICOMClient("127.0.0.1", 104)).prepare(QueryKeys.studies())
    (identifier,) = prepared.identifiers
    keys = []
    for element in identifier:
        value = element.value
        text = "" if value in (None, "") else str(value)
        tag = f"{element.tag.group:04X},{element.tag.element:04X}"
        keys += ["-k", f"{tag}={text}" if text else tag]
    return keys


def findscu(host: str, port: int, aet: str) -> list[str]:
    return dcmtk_cmd("findscu", "-S", "-aec", aet, *study_keys(), host, port)


def _record_find(rows: list[Row], side: str, m: Measured) -> None:
    first, last = rows
    _record_seconds([last], side, m)
    value = m.extra.get("first")
    if value is None:
        raise BenchError(f"{side}: no first result seen")
    (first.ours if side == "ours" else first.dcmtk).append(value)


def case_find(ctx: Context, peer: str) -> list[Row]:
    lab = ctx.lab
    if peer == "orthanc":
        p = lab.orthanc
        expected = lab.tiny_count + 1  # and the big study
        where = "Orthanc"
    else:
        p = lab.dcmqrscp
        expected = DCMQRSCP_STUDIES
        where = "dcmqrscp, its maximum"
    assert p is not None
    target = {"host": p.host, "port": p.port, "aet": p.aet}
    first = Row(f"find_{peer}_first", f"find {expected:,} studies ({where}): first result",
                "findscu (first response printed)")
    last = Row(f"find_{peer}_last", f"find {expected:,} studies ({where}): last result", "findscu (exit)")
    command = findscu(p.host, p.port, p.aet)
    with ctx.worker("find", **target, expected=expected) as worker:
        alternate(ctx, [first, last], WorkerSide(worker),
                  lambda: run_tools([command], first_line=b"Find Response", timeout=120),
                  _record_find)
        _finish([first, last], worker)
    return [first, last]


# --------------------------------------------------------------------------------------------
# store and receive


def _storescu(host: str, port: int, aet: str, paths: list[Path], processes: int = 1) -> list[list[str]]:
    return [dcmtk_cmd("storescu", "-aec", aet, host, port, *paths[i::processes]) for i in range(processes)]


def case_store(ctx: Context, parallel: int) -> list[Row]:
    lab = ctx.lab
    assert lab.big is not None and lab.orthanc is not None
    target = orthanc_target(ctx)
    n = len(lab.big.paths)
    row = Row(f"store_{parallel}", f"store {n} files, {parallel} association{'s' if parallel > 1 else ''}",
              "storescu" if parallel == 1 else f"{parallel} storescu processes at once")
    commands = _storescu(target["host"], target["port"], target["aet"], lab.big.paths, parallel)

    def before(side: str) -> None:
        lab.delete_big_study()

    def after(side: str) -> None:
        count = lab.big_study_count()
        if count != n:
            raise BenchError(f"store ({side}): Orthanc holds {count} of {n} instances afterwards")

    with ctx.worker("store", **target, parallel=parallel, folder=str(lab.big.root), expected=n) as worker:
        alternate(ctx, [row], WorkerSide(worker), lambda: run_tools(commands, timeout=300),
                  before=before, after=after)
        _finish([row], worker)
    return [row]


def case_receive(ctx: Context) -> list[Row]:
    rows = _receive(ctx, durable=True)
    # The same without the archive's fsync of each file and its folder (the application always
    # fsyncs: a C-STORE success tells the sender it may delete its copy): what durability costs.
    rows += _receive(ctx, durable=False)
    return rows


def _receive(ctx: Context, durable: bool) -> list[Row]:
    lab = ctx.lab
    assert lab.big is not None and lab.storescp is not None
    n = len(lab.big.paths)
    if durable:
        row = Row("receive", f"receive {n} files (storescu sending)", "storescp (+B)")
    else:
        row = Row("receive_nofsync", f"receive {n} files, archive without fsync (not what the app does)",
                  "storescp (+B)")
    storescp = lab.storescp

    with ctx.worker("receive", expected=n, durable=durable) as worker:
        cpu = [worker.ready["cpu"]]

        def ours() -> Measured:
            port = worker.call("arm")["port"]
            sent = run_tools(_storescu("127.0.0.1", port, "PACSBROWSER", lab.big.paths), timeout=300)
            answer = worker.call("collect")
            used, cpu[0] = answer["cpu"] - cpu[0], answer["cpu"]
            row.extra.setdefault("indexed_after", []).append(answer["indexed_after"])
            return Measured(sent.seconds, answer["rss_kb"], used, answer)

        def theirs() -> Measured:
            storescp.clear()
            cpu_before = proc_cpu(storescp.pid)
            sent = run_tools(_storescu(storescp.host, storescp.port, storescp.aet, lab.big.paths), timeout=300)
            got = storescp.received()
            if got != n:
                raise BenchError(f"storescp received {got} of {n}")
            sent.cpu = proc_cpu(storescp.pid) - cpu_before
            sent.rss_kb = proc_peak_rss_kb(storescp.pid)
            return sent

        alternate(ctx, [row], ours, theirs)
        _finish([row], worker)
    if durable:
        row.note = ("time: the sending storescu's, exec to exit; CPU and RSS: the receiving process's. Our "
                    "archive writes each file to a temporary name, fsyncs it, renames it and fsyncs the folder "
                    "before answering (storescp does neither); the next row shows the same without the fsyncs")
    return [row]
