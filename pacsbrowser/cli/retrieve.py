"""pacsbrowser get / move: retrieve a study, series or instance into the local archive (C-GET or C-MOVE),
with a progress line and a final summary. Ctrl+C cancels (C-CANCEL, then abort if the PACS does not
stop); what arrived stays, and running the command again fetches only what is missing."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import TextIO

from ..core.archive import Archive, default_archive_dir
from ..core.errors import ArchiveError
from ..core.logs import quiet_pydicom
from ..core.records import RetrievePhase, RetrieveProgress, RetrieveSummary, validate_port
from ..core.retrieve import DEFAULT_CANCEL_TIMEOUT
from ..core.services import retrieve_service
from .common import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    add_connection_options,
    on_signals,
    profile_from_args,
    run_command,
)
from .inputs import AE_TITLE, ANY_HOST, DIRECTORY, PORT, TIMEOUT, UID


def register(subparsers: argparse._SubParsersAction) -> None:
    get = subparsers.add_parser(
        "get", help="retrieve a study, series or instance by C-GET into the local archive",
        description="Retrieve with C-GET: the PACS sends the images back on our own connection into the "
                    "local archive. Only what the archive lacks is fetched.")
    _common(get)
    get.set_defaults(handler=handle, method="get")

    move = subparsers.add_parser(
        "move", help="retrieve a study, series or instance by C-MOVE (the PACS sends to a listener)",
        description="Retrieve with C-MOVE: the PACS sends the images to the destination AE. When that is "
                    "our own AE title, our listener runs for the duration and the images land in the "
                    "local archive (the PACS must know our AE title, host and port).")
    _common(move)
    move.add_argument("--dest", metavar="AE", type=AE_TITLE,
                      help="the move destination AE title (default: the profile's, else our own AE title)")
    move.add_argument("--listen-port", type=PORT, metavar="P",
                      help="the port our listener takes for a move to ourselves (default: the profile's, 11112)")
    move.add_argument("--listen-host", default="", metavar="ADDRESS", type=ANY_HOST,
                      help="the address our listener binds (default: every interface)")
    move.set_defaults(handler=handle, method="move")


def _common(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to retrieve")
    what.add_argument("--study-uid", required=True, metavar="UID", type=UID, help="the Study Instance UID")
    what.add_argument("--series-uid", metavar="UID", type=UID, help="only this series of the study")
    what.add_argument("--instance-uid", metavar="UID", type=UID, help="only this instance (needs --series-uid)")
    parser.add_argument("--out", type=DIRECTORY, metavar="DIR",
                        help=f"the archive folder to retrieve into (default {default_archive_dir()})")
    parser.add_argument("--no-resume", action="store_true",
                        help="fetch everything asked for, even what the archive holds already")
    parser.add_argument("--cancel-timeout", type=TIMEOUT, default=DEFAULT_CANCEL_TIMEOUT, metavar="SECONDS",
                        help="after Ctrl+C, how long the PACS has to stop before the connection is aborted "
                             f"(default {DEFAULT_CANCEL_TIMEOUT:g})")
    add_connection_options(parser)


class ProgressLine:
    """One line on stderr: rewritten in place on a terminal, a new line every few seconds otherwise."""

    def __init__(self, stream: TextIO, interval: float | None = None) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.1 if self.tty else 2.0)
        self._last = 0.0
        self._width = 0

    @staticmethod
    def text(p: RetrieveProgress) -> str:
        if p.phase is RetrievePhase.PLANNING:
            return "asking the PACS what it holds..."
        total = f"/{p.total}" if p.total is not None else ""
        line = f"{p.received}{total} instances, {p.bytes_received / 1_000_000:.1f} MB"
        fraction = p.fraction
        if fraction is not None:
            line += f" ({fraction * 100:.0f}%)"
        if p.rate:
            line += f", {p.rate:.0f}/s"
        if p.remaining is not None:
            line += f", {p.remaining} remaining"
        if p.failed:
            line += f", {p.failed} failed"
        if p.already_present:
            line += f", {p.already_present} already here"
        if p.cancelling:
            line += " - cancelling..."
        return line

    def show(self, progress: RetrieveProgress, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = self.text(progress)
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def summary_lines(summary: RetrieveSummary, *, verbose: bool = False) -> list[str]:
    method = summary.method.value
    rate = f" ({summary.rate:.1f} instances/s)" if summary.received and summary.transfer_seconds > 0 else ""
    state = "cancelled" if summary.cancelled else "complete" if summary.complete else "incomplete"
    lines = [f"{method}: {summary.received} instances, {summary.bytes_received} bytes, {summary.elapsed:.2f} s"
             f"{rate}, {summary.failed} failed, {summary.already_present} already in the archive; {state}"]
    if summary.expected is not None:
        lines.append(f"  the PACS listed {summary.expected} instances; {len(summary.missing)} still missing")
    for reason in summary.reasons:
        if reason != "cancelled":
            lines.append(f"  {reason}")
    for note in summary.notes:
        lines.append(f"  note: {note}")
    if verbose:
        for uid in summary.missing:
            lines.append(f"  missing: {uid}")
    return lines


def handle(args: argparse.Namespace) -> int:
    if args.instance_uid and not args.series_uid:
        print("error: --instance-uid needs --series-uid", file=sys.stderr)
        return EXIT_ERROR
    move = args.method == "move"

    async def body() -> int:
        quiet_pydicom(not args.debug)
        profile = profile_from_args(args)
        if move and profile.is_web:
            print("error: DICOMweb has no C-MOVE: use `pacsbrowser get` (WADO-RS brings the images back on the "
                  "same connection)", file=sys.stderr)
            return EXIT_ERROR
        listen_host = ""
        if move:
            if args.listen_port is not None:
                try:
                    profile = replace(profile, listener_port=validate_port(args.listen_port, "--listen-port"))
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return EXIT_ERROR
            listen_host = args.listen_host
        try:
            archive = Archive(args.out)
        except ArchiveError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        line = ProgressLine(sys.stderr)
        try:
            service = retrieve_service(profile, archive, listener_host=listen_host, cancel_timeout=args.cancel_timeout)
            study, series, instance = args.study_uid, args.series_uid or "", args.instance_uid or ""
            resume = not args.no_resume
            if move:
                dest = args.dest
                if instance:
                    job = service.move_instance(study, series, instance, dest, resume=resume)
                elif series:
                    job = service.move_series(study, series, dest, resume=resume)
                else:
                    job = service.move_study(study, dest, resume=resume)
            elif instance:
                job = service.get_instance(study, series, instance, resume=resume)
            elif series:
                job = service.get_series(study, series, resume=resume)
            else:
                job = service.get_study(study, resume=resume)
            with on_signals(job.cancel):
                where = profile.web.base_url if profile.web else f"{profile.called_ae}@{profile.host}:{profile.port}"
                target = f"to {job.destination_ae}" if move else f"into {archive.root}"
                print(f"{job.method.value} from {where} {target}", file=sys.stderr, flush=True)
                async for progress in job:
                    line.show(progress, force=progress.phase is RetrievePhase.DONE)
                summary = await job
        finally:
            line.end()
            archive.close()
        for text in summary_lines(summary, verbose=args.verbose):
            print(text, flush=True)
        if summary.cancelled:
            return EXIT_CANCELLED
        return EXIT_OK if summary.complete else EXIT_PARTIAL

    return run_command(args, body)
