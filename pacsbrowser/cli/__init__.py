"""The command line: `pacsbrowser SUB-COMMAND ...` over the same core as the window.

Start-up: a command imports only its own module (and through it the part of the core it uses):
`pacsbrowser echo` never loads the archive, pydicom's pixel handlers or numpy. `build_parser()`
with no command, `pacsbrowser --help` and an unknown command load them all.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

from .. import __version__
from .inputs import Parser, run_guarded

# command -> its module under pacsbrowser.cli, in the order `--help` lists them
COMMAND_MODULES = {
    "echo": "echo", "profile": "profile", "find": "find", "store": "store", "listen": "listen", "serve": "serve",
    "archive": "archive", "thumbnail": "thumbnail", "get": "retrieve", "move": "retrieve", "demo": "demo",
}


def _modules(command: str | None = None) -> list[ModuleType]:
    names = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else list(dict.fromkeys(COMMAND_MODULES.values()))
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command` alone (what running it needs)."""
    parser = Parser(prog="pacsbrowser", description="Query, retrieve and send DICOM images.")
    parser.add_argument("--version", action="version", version=f"pacsbrowser {__version__}")
    parser.add_argument("--debug", dest="debug_trace", action="store_true",
                        help="show the trace of an unexpected error (each command's --debug also logs more)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _modules(command):
        module.register(sub)
    return parser


def command_of(argv: list[str]) -> str | None:
    """The sub-command named in `argv` (the first word that is not an option), if it is one of ours."""
    for arg in argv:
        if arg == "--debug":
            continue
        return arg if arg in COMMAND_MODULES else None
    return None


def main(argv: list[str]) -> int:
    """Run one command; bad input is one line on stderr (exit 1, or 2 for usage), never a traceback."""
    return run_guarded(lambda: _dispatch(argv), debug="--debug" in argv)


def _dispatch(argv: list[str]) -> int:
    try:
        args = build_parser(command_of(argv)).parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has said it
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if args.debug_trace and hasattr(args, "debug"):
        args.debug = True
    return args.handler(args)
