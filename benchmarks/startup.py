"""CLI start-up before and after: `python -m benchmarks.startup --before TREE [--reps 7]`.

Wall time (min and median of the repetitions, interleaved) of `pacsbrowser echo --help`, of a real
`pacsbrowser echo` and of a real `pacsbrowser get` of a small lab study from an Orthanc on loopback,
each a fresh process as a user runs it, with our code from TREE (before) and from this tree
(after); and the modules each imports (`python -X importtime`). Writes benchmarks/RESULTS-startup.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STARTUP_RESULTS = HERE / "RESULTS-startup.md"


def _env(tree: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=tree)
    env.pop("PACSBROWSER_ARCHIVE_DIR", None)
    return env


def _once(tree: str, args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pacsbrowser", *args], env=_env(tree), capture_output=True,
                          text=True, cwd=tree, timeout=120, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pacsbrowser {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return seconds


def _modules(tree: str, args: list[str]) -> int:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "pacsbrowser", *args], env=_env(tree),
                          capture_output=True, text=True, cwd=tree, timeout=120, stdin=subprocess.DEVNULL)
    return sum(1 for line in done.stderr.splitlines() if re.match(r"import time:\s+\d+", line))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--before", required=True)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.lab.data import generate
    from tests.lab.peers import OrthancPeer

    trees = {"before": str(Path(args.before).resolve()), "after": str(ROOT)}
    work = Path(tempfile.mkdtemp(prefix="pacsbrowser-startup-"))
    rows = []
    try:
        catalog = generate(work / "lab")
        study = catalog.studies[0]
        files = [i.path for i in catalog.instances_of_study(study.uid)]
        with OrthancPeer(aet="STARTUP") as peer:
            peer.load(files)
            conn = ["--host", peer.host, "--port", str(peer.port), "--called-ae", peer.aet]
            cases = [("`echo --help`", ["echo", "--help"]), ("`echo` (one C-ECHO to Orthanc)", ["echo", *conn]),
                     (f"`get` of a {len(files)}-image study into a new archive",
                      ["get", *conn, "--study-uid", study.uid, "--out", "OUT"])]
            for label, command in cases:
                times: dict[str, list[float]] = {"before": [], "after": []}
                for _ in range(args.reps):
                    for side, tree in trees.items():
                        out = work / f"archive-{time.monotonic_ns()}"
                        times[side].append(_once(tree, [str(out) if a == "OUT" else a for a in command]))
                        shutil.rmtree(out, ignore_errors=True)
                modules = {side: _modules(tree, [a for a in command if a != "OUT"] if "get" not in command
                                          else ["get", "--help"]) for side, tree in trees.items()}
                rows.append((label, times, modules))
                print(label, {s: f"{min(t):.3f} s" for s, t in times.items()}, modules, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "# CLI start-up before and after (`python -m benchmarks.startup`)",
        "",
        f"Written on {dt.datetime.now():%Y-%m-%d %H:%M}; {args.reps} repetitions of each side, interleaved; "
        "wall time of the whole process (min / median), and the modules it imports (`-X importtime`; for "
        "`get`, those of `get --help`). The machine was shared with other work: compare the columns of a "
        "row, not rows between runs.",
        "",
        "| command | before min / median | after min / median | modules before | after |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, times, modules in rows:
        b, a = times["before"], times["after"]
        lines.append(f"| {label} | {min(b):.3f} / {statistics.median(b):.3f} s | {min(a):.3f} / "
                     f"{statistics.median(a):.3f} s | {modules['before']} | {modules['after']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    STARTUP_RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
