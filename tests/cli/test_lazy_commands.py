"""The command line imports only the module of the command it runs (start-up time): every command
is in `COMMAND_MODULES`, its own parser is the full parser's, and `echo --help` loads neither
pydicom, pynetdicom nor numpy."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import subprocess
import sys

import pacsbrowser.cli as cli


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_command_is_mapped_to_its_module():
    full = _commands(cli.build_parser())
    assert full == set(cli.COMMAND_MODULES), "a command is missing from cli.COMMAND_MODULES"
    with_register = {info.name for info in pkgutil.iter_modules(cli.__path__)
                     if hasattr(importlib.import_module(f"pacsbrowser.cli.{info.name}"), "register")}
    assert with_register == set(cli.COMMAND_MODULES.values())
    for command, module in cli.COMMAND_MODULES.items():
        alone = _commands(cli.build_parser(command))
        assert command in alone and alone <= {c for c, m in cli.COMMAND_MODULES.items() if m == module}


def test_the_command_is_found_after_debug_and_not_in_option_values():
    assert cli.command_of(["--debug", "get", "--study-uid", "1.2"]) == "get"
    assert cli.command_of(["--help"]) is None and cli.command_of([]) is None
    assert cli.command_of(["nonsense"]) is None


def test_echo_help_imports_no_dicom_library():
    code = ("import sys\nfrom pacsbrowser.cli import main\nmain(['echo', '--help'])\n"
            "print(sorted(m for m in ('pydicom', 'pynetdicom', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-500:]
