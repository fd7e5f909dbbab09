"""The command line's side of input checking: argparse types over core.validation, a parser whose
errors are one line, and the last guard around every command (no traceback without --debug)."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from ..core import validation
from ..core.config import ConfigError

T = TypeVar("T")

EXIT_ERROR = 1  # bad input, configuration (as in common.py)
EXIT_CANCELLED = 130


def checked(check: Callable[..., T], *args: Any, kind: str = "", **kwargs: Any) -> Callable[[str], T]:
    """An argparse `type=` that runs a core.validation check: argparse then names the flag, e.g.
    "argument --port: must be a whole number from 1 to 65535, not '0'" (exit 2). `kind` names the
    type (argparse's messages, tests); the check's name by default."""

    def convert(text: str) -> T:
        try:
            return check(text, "value", *args, **kwargs)
        except validation.InvalidInput as exc:
            raise argparse.ArgumentTypeError(exc.rule) from None

    convert.__name__ = kind or check.__name__.replace("_", " ")
    return convert


def keep_text(check: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[str], str]:
    """Like `checked`, but the argument keeps the text as typed (the command interprets it)."""
    inner = checked(check, *args, **kwargs)

    def convert(text: str) -> str:
        inner(text)
        return text

    convert.__name__ = inner.__name__
    return convert


# The types the commands use, one per kind of value.
PORT = checked(validation.port)
LISTEN_PORT = checked(validation.port, any_free=True, kind="listen port")  # 0: any free port
AE_TITLE = checked(validation.ae_title)
UID = checked(validation.uid)
UID_LIST = checked(validation.uid_list)
HOST = checked(validation.host)
ANY_HOST = checked(validation.host, empty=True, kind="any host")  # '' = every interface
TIMEOUT = checked(validation.timeout)
RETRIES = checked(validation.retries)
READABLE_FILE = checked(validation.readable_file)
READABLE_PATH = checked(validation.readable_path)
DIRECTORY = checked(validation.directory)
PROFILE_NAME = checked(validation.name)
CHARSET = checked(validation.charset)
DATE_RANGE = keep_text(validation.date_range)  # presets stay words until the query is sent
BIRTH_DATE = keep_text(validation.date_range, private=True, kind="birth date")  # patient data: not repeated in messages
QUERY_KEY = keep_text(validation.query_key)
CODES = checked(validation.code_list)
MOVE_DESTINATION = checked(validation.move_destination)
WEB_URL = checked(validation.web_url, kind="web url")  # a DICOMweb root: https://host/dicom-web
WEB_USER = checked(validation.web_user, kind="web user")
SECRET_FILE = checked(validation.secret_file, kind="secret file")  # a file holding a password or token


def count(minimum: int = 1, maximum: int | None = 1_000_000) -> Callable[[str], int]:
    return checked(validation.count, minimum, maximum)


def text(max_length: int, *, private: bool = False) -> Callable[[str], str]:
    return checked(validation.text_key, max_length, private=private)


def size(maximum: float) -> Callable[[str], float]:
    return checked(validation.size, maximum)


class Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line (the flag, the rule, where to look), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def run_guarded(command: Callable[[], int], *, debug: bool) -> int:
    """Run a command: bad input the command did not catch is one line and exit 1; anything
    unexpected is one line with a hint to rerun with --debug, which then shows the trace."""
    try:
        return command()
    except (validation.InvalidInput, ConfigError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:  # noqa: BLE001 - the last guard: one line instead of a traceback
        if debug:
            traceback.print_exc(file=sys.stderr)
        hint = "" if debug else " (run again as `pacsbrowser --debug COMMAND ...` to see the trace)"
        print(f"error: unexpected {type(exc).__name__}: {_one_line(exc)}{hint}", file=sys.stderr)
        return EXIT_ERROR


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:499] + "…"
