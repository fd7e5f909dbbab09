"""`python -m benchmarks` (`make bench`): our client and server against DCMTK on the same data.

    make bench                                  # every case, results to benchmarks/RESULTS.md
    make bench BENCH_ARGS="--only echo,find"    # some cases (RESULTS.md not written)
    make bench BENCH_ARGS="--reps 3"

Starts Orthanc, dcmqrscp and storescp on loopback with generated data, runs every case (ours and the
DCMTK tool, alternating), prints the table and writes it with the machine to benchmarks/RESULTS.md.
Everything it started is stopped and its temporary directory removed at the end, on Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

CASE_NAMES = ["echo", "find", "find_dcmqrscp", "gui", "get", "move", "thumbnails", "store", "receive", "archive_query"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated cases among: {', '.join(CASE_NAMES)}")
    parser.add_argument("--reps", type=int, default=5, help="counted repetitions per case (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted repetitions first (default 1)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write benchmarks/RESULTS.md (default: only when every case ran)")
    parser.add_argument("--keep-logs", default="", help="copy the worker and tool logs to this folder")
    parser.add_argument("--polling", action="store_true",
                        help="our side without core.dicom.responsive (pynetdicom's polling reactors and "
                             "logging handlers, as before): the 'before' of RESULTS.md")
    parser.add_argument("--json", default="", metavar="FILE",
                        help="also write the rows as JSON to FILE (benchmarks.bulk reads them)")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=VALUE for our worker processes (experiments), may repeat")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    only = [c.strip() for c in args.only.split(",") if c.strip()] or CASE_NAMES
    unknown = set(only) - set(CASE_NAMES)
    if unknown:
        print(f"unknown case(s): {', '.join(sorted(unknown))}; choose among {', '.join(CASE_NAMES)}",
              file=sys.stderr)
        return 2
    # Ctrl-C, SIGTERM and SIGHUP unwind (even when started with SIGINT ignored, as a background job),
    # so that every `finally` stops what it started.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.lab` and `pacsbrowser`
    from . import procs, report
    from .run import run_all

    started = time.perf_counter()

    def say(text: str) -> None:
        print(text, flush=True)

    rows, setup, notes = [], {}, []
    try:
        rows, setup, notes = run_all(only, args, say)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping the peers and workers")
        return 130
    except Exception:  # noqa: BLE001 - any failure ends the run with its traceback
        traceback.print_exc()
        return 1
    finally:
        procs.kill_all()
    wall = time.perf_counter() - started
    info = report.machine()
    say("")
    say(report.text_table(rows))
    say("")
    for key, value in info.items():
        say(f"{key}: {value}")
    say(f"make bench wall time: {wall:.0f} s")
    if args.json:
        import dataclasses
        import json

        Path(args.json).write_text(json.dumps([dataclasses.asdict(row) for row in rows], indent=1, default=str))
    write = args.write if args.write is not None else (only == CASE_NAMES and not args.polling)
    if write:
        report.RESULTS.write_text(report.markdown(rows, info, reps=args.reps, warmup=args.warmup, wall=wall,
                                                  setup=setup, notes=notes))
        say(f"written to {report.RESULTS.relative_to(Path.cwd()) if report.RESULTS.is_relative_to(Path.cwd()) else report.RESULTS}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.exit(main())
