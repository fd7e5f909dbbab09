"""pacsbrowser serve: our SCP over the local archive with every role: C-ECHO, C-STORE into it,
C-FIND (Patient and Study Root), C-GET, and C-MOVE to the destinations configured."""

from __future__ import annotations

import argparse
import sys

from ..core.config import ProfileStore
from .common import EXIT_ERROR
from .inputs import MOVE_DESTINATION
from .listen import add_server_options, run_server


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the local archive to other DICOM nodes (Query/Retrieve and Storage SCP)",
        description="Serve the local archive as a PACS does: C-ECHO, C-STORE into the archive, C-FIND "
                    "(Patient Root and Study Root), C-GET, and C-MOVE to the destinations given, until "
                    "interrupted (Ctrl+C).")
    add_server_options(parser)
    parser.add_argument("--destination", action="append", default=[], metavar="AE=HOST:PORT", type=MOVE_DESTINATION,
                        help="a C-MOVE destination (repeatable)")
    parser.add_argument("--profile-destinations", action="store_true",
                        help="every server profile is a C-MOVE destination too (its called AE, host and port)")
    parser.set_defaults(handler=handle)


def destinations(args: argparse.Namespace) -> dict[str, tuple[str, int]]:
    """The move destinations of `args`: the profiles' (when asked), then --destination (which wins)."""
    found: dict[str, tuple[str, int]] = {}
    if args.profile_destinations:
        for profile in ProfileStore().load():
            found[profile.called_ae] = (profile.host, profile.port)
    for ae_title, where in args.destination:  # checked by argparse (cli.inputs.MOVE_DESTINATION)
        found[ae_title] = where
    return found


def handle(args: argparse.Namespace) -> int:
    try:
        moves = destinations(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return run_server(args, query_retrieve=True, destinations=moves)
