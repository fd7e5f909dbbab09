"""Before/after of core.dicom.responsive in one run: `python -m benchmarks.ab [--reps N] [cases]`.

Runs our side of each case twice, alternating, in two worker processes: one with pynetdicom's
polling reactors and logging handlers (PACSBROWSER_BENCH_POLLING=1, as before the change), one
as the application runs now. DCMTK is not involved; this isolates our change from the run-to-run
variation of the peers. Cases: echo_one, echo_many, find, get, move, store, receive.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ALL = ["echo_one", "echo_many", "find", "get", "move", "store", "receive"]
AB_RESULTS = Path(__file__).with_name("RESULTS-ab.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("cases", nargs="*", default=ALL)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.lab.peers import shim_path

    from . import procs
    from .lab import BenchLab

    lab = BenchLab(want_dcmqrscp=False)
    rows = []
    try:
        lab.start()
        procs.set_workdir(lab.root / "tools")
        logdir = lab.root / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        o = lab.orthanc
        assert o is not None and lab.big is not None
        target = {"host": o.host, "port": o.port, "aet": o.aet}
        for case in args.cases:
            config = {"case": case, **target, "count": 50, "expected": len(lab.big.paths),
                      "study": lab.big.study_uids[0], "listener_port": lab.move_port,
                      "folder": str(lab.big.root), "parallel": 1}
            kind = {"store": "store"}.get(case, case)
            if case == "find":
                config["expected"] = lab.tiny_count + 1
            times: dict[str, list[float]] = {"polling": [], "responsive": []}
            cpu: dict[str, list[float]] = {"polling": [], "responsive": []}
            workers = {}
            for mode in ("polling", "responsive"):
                env = {"LD_PRELOAD": str(shim_path()), "LOOPBACK_BIND_PARENT": str(os.getpid())}
                if mode == "polling":
                    env["PACSBROWSER_BENCH_POLLING"] = "1"
                tmp = lab.root / "work" / f"ab-{case}-{mode}-{time.monotonic_ns()}"
                workers[mode] = procs.Worker("benchmarks.worker", {**config, "case": kind, "tmp": str(tmp)},
                                             logdir / f"ab-{case}-{mode}.log", env=env)
            try:
                for i in range(args.reps + 1):
                    order = ["polling", "responsive"] if i % 2 == 0 else ["responsive", "polling"]
                    for mode in order:
                        worker = workers[mode]
                        seconds, used = _one(case, worker, lab)
                        if i:  # the first round is a warm-up
                            times[mode].append(seconds)
                            cpu[mode].append(used)
            finally:
                for worker in workers.values():
                    worker.close()
            p, r = statistics.median(times["polling"]), statistics.median(times["responsive"])
            rows.append((case, p, r, statistics.median(cpu["polling"]), statistics.median(cpu["responsive"])))
            print(f"{case}: polling {p:.3f} s, responsive {r:.3f} s ({(r - p) / p * 100:+.0f}%)", flush=True)
    finally:
        procs.kill_all()
        lab.close()
    lines = [
        "# Before/after of core.dicom.responsive (`python -m benchmarks.ab`)",
        "",
        f"Our side only, both variants in one run, interleaved; medians of {args.reps} repetitions after a "
        "warm-up. Before = pynetdicom's polling reactors and its logging handlers bound; after = the "
        "application as it is. CPU = user + system seconds of the worker process for one repetition.",
        "",
        "| case | before (polling) | after (responsive) | change | CPU before | CPU after |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {case} | {p:.3f} s | {r:.3f} s | {(r - p) / p * 100:+.0f}% | {cp:.2f} s | {cr:.2f} s |"
          for case, p, r, cp, cr in rows),
        "",
    ]
    print("\n" + "\n".join(lines))
    if set(args.cases) == set(ALL):
        AB_RESULTS.write_text("\n".join(lines))
        print(f"written to {AB_RESULTS}")
    return 0


_last_cpu: dict[int, float] = {}


def _one(case: str, worker, lab) -> tuple[float, float]:
    from . import procs

    key = id(worker)
    start_cpu = _last_cpu.get(key, worker.ready["cpu"])
    if case == "store":
        lab.delete_big_study()
    if case == "receive":
        port = worker.call("arm")["port"]
        sent = procs.run_tools([procs.dcmtk_cmd("storescu", "-aec", "PACSBROWSER", "127.0.0.1", port,
                                                *lab.big.paths)], timeout=300)
        answer = worker.call("collect")
        seconds = sent.seconds
    else:
        answer = worker.call("run")
        seconds = answer["seconds"]
    _last_cpu[key] = answer["cpu"]
    return seconds, answer["cpu"] - start_cpu


if __name__ == "__main__":
    sys.exit(main())
