"""Runs the chosen cases in one lab and returns their rows."""

from __future__ import annotations

import argparse
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from . import cases, procs
from .cases import Context, Row
from .lab import BenchLab
from .procs import BenchError

# What each case needs, and its rows when it cannot run (so that the table always says why).
PLACEHOLDERS = {
    "echo": [("echo_one", "echo: 50 C-ECHO on one association", "echoscu --repeat 50"),
             ("echo_many", "echo: 50 associations, one C-ECHO each", "50 echoscu processes in turn")],
    "find": [("find_orthanc_first", "find 5,000 studies (Orthanc): first result", "findscu"),
             ("find_orthanc_last", "find 5,000 studies (Orthanc): last result", "findscu")],
    "find_dcmqrscp": [("find_dcmqrscp_first", "find 500 studies (dcmqrscp, its maximum): first result", "findscu"),
                      ("find_dcmqrscp_last", "find 500 studies (dcmqrscp, its maximum): last result", "findscu")],
    "gui": [("gui_rows", "GUI: 5,000 studies streamed into the results tree", "findscu (exit)"),
            ("gui_stall", "GUI: longest event-loop stall meanwhile", "—")],
    "get": [("get", "get: one study of 500 images (C-GET)", "getscu")],
    "move": [("move", "move: the same study to our SCP / storescp (C-MOVE)", "movescu -> storescp")],
    "thumbnails": [("thumbnails_1", "thumbnails: 500 images at 128 px, 1 at a time", "dcmj2pnm, in turn"),
                   ("thumbnails_2", "thumbnails: 500 images at 128 px, 2 at a time", "dcmj2pnm, 2 at a time")],
    "store": [("store_1", "store 500 files, 1 association", "storescu"),
              ("store_4", "store 500 files, 4 associations", "4 storescu processes at once")],
    "archive_query": [("archive_query_study", "archive C-FIND over 10,000 studies", "—")],
    "receive": [("receive", "receive 500 files (storescu sending)", "storescp (+B)"),
                ("receive_nofsync", "receive 500 files, archive without fsync (not what the app does)",
                 "storescp (+B)")],
}


def _runner(name: str) -> Callable[[Context], list[Row]]:
    if name == "echo":
        return cases.case_echo
    if name == "find":
        return lambda ctx: cases.case_find(ctx, "orthanc")
    if name == "find_dcmqrscp":
        return lambda ctx: cases.case_find(ctx, "dcmqrscp")
    if name == "store":
        return lambda ctx: cases.case_store(ctx, 1) + cases.case_store(ctx, 4)
    if name == "receive":
        return cases.case_receive
    if name == "archive_query":
        from .archive_query import case_archive_query
        return case_archive_query
    if name == "gui":
        from .gui import case_gui
        return case_gui
    if name in ("get", "move", "thumbnails"):
        from . import optional
        return getattr(optional, f"case_{name}")
    raise KeyError(name)


def run_all(only: list[str], args: argparse.Namespace, say: Callable[[str], None]
            ) -> tuple[list[Row], dict[str, float], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    say("setting up the lab (loopback peers, generated data):")
    lab = BenchLab(want_dcmqrscp="find_dcmqrscp" in only, log=lambda text: say(text))
    logdir = lab.root / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    procs.set_workdir(lab.root / "tools")
    try:
        lab.start()
        env = dict(item.split("=", 1) for item in args.env)
        if args.polling:
            env["PACSBROWSER_BENCH_POLLING"] = "1"
            notes.append("--polling: our side ran without core.dicom.responsive (the 'before' numbers)")
        ctx = Context(lab, args.reps, args.warmup, logdir, say, env)
        # The order matters: store deletes and re-creates the big study in Orthanc, so it comes after
        # get and move; thumbnails read the generated files.
        for name in only:
            started = time.perf_counter()
            say(f"\n{name}:")
            try:
                got = _runner(name)(ctx)
            except (BenchError, NotImplementedError, ImportError) as exc:
                traceback.print_exc()
                got = [Row(key, label, tool, missing=str(exc).splitlines()[0])
                       for key, label, tool in PLACEHOLDERS[name]]
            rows.extend(got)
            lab.timings[f"case {name}"] = time.perf_counter() - started
            for row in got:
                if row.missing:
                    say(f"  {row.label}: NOT MEASURED: {row.missing}")
                else:
                    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "—"
                    say(f"  {row.label}: ours {row.ours_median:.4f} s, DCMTK "
                        f"{row.dcmtk_median if row.dcmtk_median is not None else float('nan'):.4f} s -> {ratio}")
            say(f"  ({lab.timings[f'case {name}']:.0f} s)")
        return rows, dict(lab.timings), notes
    finally:
        if args.keep_logs:
            target = Path(args.keep_logs)
            target.mkdir(parents=True, exist_ok=True)
            for log in logdir.glob("*.log"):
                shutil.copy(log, target / log.name)
        lab.close()
