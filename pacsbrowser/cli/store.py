"""pacsbrowser store PATH... [--parallel N]: send files and folders to a PACS (C-STORE).

A progress line while it runs (on a terminal), one line per file that was not stored (or stored
with a warning) on stderr, and a summary on stdout. Exit 0 only when every file was stored;
EXIT_PARTIAL (9) when some were skipped or failed; a network error's own status when nothing
could be sent because of it.
"""

from __future__ import annotations

import argparse
import sys

from ..core.config import ConfigError
from ..core.records import StoreOutcome, StoreProgress, StoreResult
from ..core.services import store_service
from ..core.store import StoreSummary
from .common import (
    EXIT_DIMSE,
    EXIT_OK,
    EXIT_PARTIAL,
    add_connection_options,
    exit_status,
    profile_from_args,
    run_command,
)
from .inputs import READABLE_PATH, count

DEFAULT_PARALLEL = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "store", help="send files and folders to a PACS (C-STORE)",
        description="Send DICOM files (folders are walked recursively) to a PACS. Files that are not "
                    "DICOM or are damaged are reported and skipped; compressed files are decompressed "
                    "when the PACS accepts only uncompressed ones.")
    parser.add_argument("paths", nargs="+", metavar="PATH", type=READABLE_PATH, help="a DICOM file or a folder")
    parser.add_argument("--parallel", type=count(1, 64), default=DEFAULT_PARALLEL, metavar="N",
                        help=f"associations used at once (default {DEFAULT_PARALLEL})")
    add_connection_options(parser)
    parser.set_defaults(handler=handle)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class _Display:
    """The progress line (a terminal only) and the per-file problem lines."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.live = sys.stderr.isatty()
        self.line_shown = False
        self.unsent: list[StoreResult] = []  # network failures: shown at the end, unless the
        # whole send failed and one error line says it all

    def progress(self, progress: StoreProgress) -> None:
        for result in progress.results:
            if result.outcome is StoreOutcome.FAILED and result.status is None and result.reason.startswith("not sent"):
                self.unsent.append(result)
            elif result.outcome is not StoreOutcome.SUCCESS or self.verbose:
                self._clear()
                print(_result_line(result), file=sys.stderr)
        if self.live:
            total = "?" if progress.total is None else str(progress.total)
            rate = progress.bytes_done / progress.elapsed if progress.elapsed > 0 else 0.0
            text = (f"sending: {progress.done}/{total} files, {progress.stored} stored, {progress.failed} failed, "
                    f"{progress.skipped} skipped, {_size(progress.bytes_done)} ({_size(rate)}/s)")
            sys.stderr.write("\r" + text[:200] + "\x1b[K")
            sys.stderr.flush()
            self.line_shown = True
        if progress.finished:
            self._clear()

    def flush(self) -> None:
        for result in self.unsent:
            print(_result_line(result), file=sys.stderr)
        self.unsent.clear()

    def _clear(self) -> None:
        if self.line_shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.line_shown = False


def _result_line(result: StoreResult) -> str:
    words = result.reason or result.outcome.value
    if result.status is not None and f"0x{result.status:04X}" not in words:
        words += f" (0x{result.status:04X})"
    if result.converted and result.stored:
        words += f" [sent as {result.transfer_syntax}]"
    return f"{result.outcome.value:8} {result.name}: {words}"


def _summary_line(summary: StoreSummary, where: str, parallel: int, unit: str = "association") -> str:
    n = len(summary.results)
    line = (f"Stored {len(summary.stored)} of {n} file{'s' if n != 1 else ''} "
            f"({_size(summary.bytes_stored)}) on {where} in {summary.elapsed:.2f} s "
            f"over {summary.associations} {unit}{'s' if summary.associations != 1 else ''} "
            f"(--parallel {parallel})")
    extra = []
    for label, results in (("skipped", summary.skipped), ("failed", summary.failed),
                           ("with warnings", summary.warnings)):
        if results:
            extra.append(f"{len(results)} {label}")
    if extra:
        line += ": " + ", ".join(extra)
    return line


def exit_code(summary: StoreSummary) -> int:
    if summary.complete:
        return EXIT_OK
    if not summary.stored:
        failed = summary.failed
        if summary.error is not None:
            return exit_status(summary.error)
        if failed and all(r.status is not None for r in failed):
            return EXIT_DIMSE
    return EXIT_PARTIAL


def handle(args: argparse.Namespace) -> int:
    async def body() -> int:
        if args.parallel < 1:
            raise ConfigError("--parallel must be at least 1")
        profile = profile_from_args(args)
        display = _Display(args.verbose)
        storage = store_service(profile, parallel=args.parallel, progress_interval=0.2)  # C-STORE or STOW-RS
        summary = await storage.store(args.paths, on_progress=display.progress)
        display.flush()
        if not summary.results:
            raise ConfigError("no files found in " + ", ".join(str(p) for p in args.paths))
        if profile.web is not None:
            print(_summary_line(summary, profile.web.base_url, args.parallel, "STOW-RS request"))
        else:
            print(_summary_line(summary, f"{profile.called_ae}@{profile.host}:{profile.port}", args.parallel))
        if summary.error is not None and not summary.stored:
            print(f"error: {summary.error}", file=sys.stderr)
        return exit_code(summary)

    return run_command(args, body)
