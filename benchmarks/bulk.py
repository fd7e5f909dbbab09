"""Before/after of the bulk-transfer work (issue 16): `python -m benchmarks.bulk --before TREE`.

Runs `python -m benchmarks --only find,get,move,receive` with our side taken from TREE (another
checkout, e.g. main before the change: PACSBROWSER_BENCH_TREE) and from this tree, alternating
before, after, before, after (`--runs` pairs; the machine is shared, so each is run more than
once and every run is reported). DCMTK runs in every pass, so each ratio is ours against the DCMTK
of the same pass. Writes benchmarks/RESULTS-bulk.md and puts the same text into RESULTS.md (in
place of an earlier one; a later `make bench` keeps it, as it keeps every RESULTS-*.md).

    python -m benchmarks.bulk --before /work/main --runs 2 --reps 5
    python -m benchmarks.bulk --from-json DIR       # the report again from the runs' JSON in DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BULK_RESULTS = HERE / "RESULTS-bulk.md"
RESULTS = HERE / "RESULTS.md"
CASES = "find,get,move,receive"
# row key -> (what, instances per repetition)
ROWS = {
    "get": ("get 500 images (C-GET)", 500),
    "move": ("move 500 images to our listener (C-MOVE)", 500),
    "receive": ("receive 500 images (storescu sending)", 500),
    "find_orthanc_last": ("find 5,000 studies, to the last result", 5000),
}
TARGET = 1.5
BEGIN, END = "<!-- bulk: begin -->", "<!-- bulk: end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="", help="the checkout whose pacsbrowser is 'before'")
    parser.add_argument("--runs", type=int, default=2, help="before/after pairs (default 2)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--from-json", default="", help="only write the report from the JSON files in this folder")
    parser.add_argument("--note", default="", help="a sentence added to the report (how calm the machine was)")
    args = parser.parse_args(argv)
    if args.from_json:
        folder = Path(args.from_json)
    else:
        if not args.before:
            parser.error("--before TREE is needed (or --from-json DIR)")
        folder = Path(tempfile.mkdtemp(prefix="pacsbrowser-bulk-"))
        for run in range(1, args.runs + 1):
            for side in ("before", "after"):
                out = folder / f"{side}-{run}.json"
                command = [sys.executable, "-m", "benchmarks", "--only", CASES, "--reps", str(args.reps),
                           "--no-write", "--json", str(out)]
                if side == "before":
                    command += ["--env", f"PACSBROWSER_BENCH_TREE={Path(args.before).resolve()}"]
                print(f"== {side} {run}: {' '.join(command)}", flush=True)
                load = os.getloadavg()[0]
                subprocess.run(command, cwd=ROOT, check=True, timeout=1800)
                loads = folder / "load.json"
                seen = json.loads(loads.read_text()) if loads.exists() else {}
                seen[f"{side}-{run}"] = [round(load, 1), round(os.getloadavg()[0], 1)]
                loads.write_text(json.dumps(seen))
        print(f"runs kept in {folder}")
    text = report(folder, args.note)
    print(text)
    BULK_RESULTS.write_text(text)
    _into_results(text)
    print(f"written to {BULK_RESULTS} and {RESULTS}")
    return 0


def _load(folder: Path) -> dict[str, list[dict]]:
    """side -> the runs' rows by key, in run order."""
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for side in runs:
        for path in sorted(folder.glob(f"{side}-*.json")):
            runs[side].append({row["key"]: row for row in json.loads(path.read_text())})
    return runs


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _cell(row: dict | None, n: int) -> tuple[str, str, str, str]:
    """time, ratio to DCMTK, our CPU ms per instance, DCMTK's CPU ms per instance."""
    if row is None or row.get("missing") or not row.get("ours"):
        return "—", "—", "—", "—"
    ours, theirs = _median(row["ours"]), _median(row["dcmtk"])
    cpu, their_cpu = _median(row["ours_cpu"]), _median(row["dcmtk_cpu"])
    ratio = f"{ours / theirs:.2f}x" if ours and theirs else "—"
    return (f"{ours:.3f} s", ratio, f"{cpu / n * 1000:.2f}" if cpu is not None else "—",
            f"{their_cpu / n * 1000:.2f}" if their_cpu is not None else "—")


def report(folder: Path, note: str = "") -> str:
    runs = _load(folder)
    loads_file = folder / "load.json"
    loads = json.loads(loads_file.read_text()) if loads_file.exists() else {}
    if loads:
        note = (note + " " if note else "") + "Load average (1 min) at the start and end of each pass: " + ", ".join(
            f"{name} {start}-{end}" for name, (start, end) in sorted(loads.items())) + "."
    lines = [
        "# Bulk transfers against DCMTK, before and after (`python -m benchmarks.bulk`)",
        "",
        f"Written on {dt.datetime.now():%Y-%m-%d %H:%M}. Each pass is `python -m benchmarks --only {CASES}` "
        "(medians of its repetitions, DCMTK in the same pass); before = our side from the checkout before "
        "the change, after = this tree; passes alternate before, after, before, after, and every pass is "
        f"shown (the load average of each pass is given below). Target: within {TARGET}x of DCMTK. CPU per "
        "instance = user + system CPU of our worker process (DCMTK: its tool's processes, storescp's "
        "included when it receives) for one repetition, divided by the images (studies for find)."
        + (f" {note}" if note else ""),
        "",
        "| case | pass | before | before/DCMTK | after | after/DCMTK | CPU ms/instance before | after | DCMTK |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, (what, n) in ROWS.items():
        for i in range(max(len(runs["before"]), len(runs["after"]))):
            before = runs["before"][i].get(key) if i < len(runs["before"]) else None
            after = runs["after"][i].get(key) if i < len(runs["after"]) else None
            b, a = _cell(before, n), _cell(after, n)
            dcmtk_cpu = a[3] if a[3] != "—" else b[3]
            lines.append(f"| {what} | {i + 1} | {b[0]} | {b[1]} | {a[0]} | {a[1]} | {b[2]} | {a[2]} | {dcmtk_cpu} |")
    lines.append("")
    return "\n".join(lines)


def _into_results(text: str) -> None:
    """RESULTS.md with `text` (and RESULTS-startup.md, from benchmarks.startup) between the markers,
    replacing what was there, before its set-up section."""
    try:
        current = RESULTS.read_text()
    except OSError:
        return
    parts = [f"#{text.strip()}\n\n(from RESULTS-bulk.md)"]
    startup = HERE / "RESULTS-startup.md"
    if startup.exists():
        parts.append(f"#{startup.read_text().strip()}\n\n(from RESULTS-startup.md)")
    block = BEGIN + "\n" + "\n\n".join(parts) + "\n" + END + "\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        RESULTS.write_text(head + block + "\n" + tail)
        return
    anchor = "## Set-up and wall time"
    if anchor in current:
        head, tail = current.split(anchor, 1)
        RESULTS.write_text(head + block + "\n" + anchor + tail)
    else:
        RESULTS.write_text(current.rstrip("\n") + "\n\n" + block)


if __name__ == "__main__":
    sys.exit(main())
