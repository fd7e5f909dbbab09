"""pacsbrowser archive list|rebuild|verify: the local archive from the command line."""

from __future__ import annotations

import argparse
import os
import sys

from ..core.archive import Archive, default_archive_dir
from ..core.errors import ArchiveError
from ..core.logs import configure_logging, phi, show_phi
from .common import EXIT_ERROR, EXIT_OK, add_output_options
from .inputs import DIRECTORY, UID


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--archive", type=DIRECTORY, metavar="DIR",
                        help=f"the archive folder (default {default_archive_dir()})")
    add_output_options(common)
    parser = subparsers.add_parser("archive", help="list, check or rebuild the local archive",
                                   description="The local archive: what it holds, and its index.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="studies (or one study's series)",
                                 description="List the studies in the archive, or the series of one study. "
                                             "Patient names and IDs only with --verbose.")
    listing.add_argument("--study", metavar="UID", type=UID, help="list this study's series")
    listing.set_defaults(handler=handle_list)
    rebuild = actions.add_parser("rebuild", parents=[common], help="make the index again from the files",
                                 description="Read every file in the archive and make the index again.")
    rebuild.set_defaults(handler=handle_rebuild)
    verify = actions.add_parser("verify", parents=[common], help="check that the index and the files agree",
                                description="Check that every indexed file exists with its size, that every "
                                            "file is indexed and that no interrupted write is left. "
                                            "Exit status 1 when something is wrong.")
    verify.add_argument("--deep", action="store_true", help="also read every file and compare its UIDs")
    verify.set_defaults(handler=handle_verify)


def _setup(args: argparse.Namespace) -> None:
    configure_logging(verbose=args.verbose, debug=args.debug)


def handle_list(args: argparse.Namespace) -> int:
    try:
        return _list(args)
    except BrokenPipeError:  # `pacsbrowser archive list | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    _setup(args)
    try:
        archive = Archive(args.archive, readonly=True)
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    with archive:
        if args.study:
            rows = archive.series(args.study)
            if not rows:
                print(f"error: no study {args.study} in the archive", file=sys.stderr)
                return EXIT_ERROR
            for s in rows:
                number = "" if s.series_number is None else str(s.series_number)
                print(f"{number:>4} {s.modality or '--':<3} {s.instance_count:>5} inst {s.size:>12} bytes  "
                      f"{s.description or '-'}  {s.series_uid}")
            return EXIT_OK
        studies = archive.studies()
        for st in studies:
            line = (f"{st.study_date or '--------'} {'/'.join(st.modalities) or '--':<6} {st.series_count:>3} ser "
                    f"{st.instance_count:>5} inst  {st.description or '-'}  {st.study_uid}")
            if show_phi():
                line += f"  patient {phi(st.patient_name)} ({phi(st.patient_id)})"
            print(line)
        counts = archive.counts()
        print(f"{counts['studies']} studies, {counts['series']} series, {counts['instances']} instances, "
              f"{counts['bytes'] / 1e6:.1f} MB in {archive.root}")
    return EXIT_OK


def handle_rebuild(args: argparse.Namespace) -> int:
    _setup(args)
    try:
        archive = Archive(args.archive)
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    with archive:
        report = archive.rebuild()
        counts = archive.counts()
    print(f"index rebuilt: {counts['instances']} instances in {counts['studies']} studies "
          f"({report.duplicates_removed} superseded copies removed)")
    for problem in report.unreadable:
        print(f"not indexed: {problem}", file=sys.stderr)
    return EXIT_OK if not report.unreadable else EXIT_ERROR


def handle_verify(args: argparse.Namespace) -> int:
    _setup(args)
    try:
        # Read-only when another process holds the archive (a running listener), so verify never waits.
        try:
            archive = Archive(args.archive)
        except ArchiveError as exc:
            if "in use" not in str(exc):
                raise
            archive = Archive(args.archive, readonly=True)
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    with archive:
        repaired = archive.last_repair
        report = archive.verify(deep=args.deep)
    if repaired is not None and repaired.changed:
        print(f"repaired on opening (it had not been closed cleanly): {repaired.temp_files_removed} temporary "
              f"files removed, {repaired.indexed} files indexed, {repaired.rows_removed} rows dropped")
    for problem in report.problems:
        print(f"problem: {problem}")
    verdict = "consistent" if report.ok else f"{len(report.problems)} problems"
    print(f"{report.rows} indexed instances, {report.files} files: {verdict}")
    return EXIT_OK if report.ok else EXIT_ERROR
