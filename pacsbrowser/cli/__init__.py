"""The command line: `pacsbrowser SUB-COMMAND ...` over the same core as the window."""

from __future__ import annotations

import argparse

from .. import __version__
from . import archive, demo, echo, find, listen, profile, retrieve, serve, store, thumbnail

COMMANDS = [echo, profile, find, store, listen, serve, archive, thumbnail, retrieve, demo]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacsbrowser", description="Query, retrieve and send DICOM images.")
    parser.add_argument("--version", action="version", version=f"pacsbrowser {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
