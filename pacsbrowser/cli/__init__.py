"""The command line: `pacsbrowser SUB-COMMAND ...` over the same core as the window."""

from __future__ import annotations

import argparse

from .. import __version__
from . import archive, demo, echo, find, listen, profile, retrieve, serve, store, thumbnail
from .inputs import Parser, run_guarded

COMMANDS = [echo, profile, find, store, listen, serve, archive, thumbnail, retrieve, demo]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pacsbrowser", description="Query, retrieve and send DICOM images.")
    parser.add_argument("--version", action="version", version=f"pacsbrowser {__version__}")
    parser.add_argument("--debug", dest="debug_trace", action="store_true",
                        help="show the trace of an unexpected error (each command's --debug also logs more)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str]) -> int:
    """Run one command; bad input is one line on stderr (exit 1, or 2 for usage), never a traceback."""
    return run_guarded(lambda: _dispatch(argv), debug="--debug" in argv)


def _dispatch(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has said it
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if args.debug_trace and hasattr(args, "debug"):
        args.debug = True
    return args.handler(args)
