"""Logging set-up and patient-data redaction.

Patient names, IDs and birth dates never reach a log or the console unless `show_phi` was asked
for (a --verbose or --debug switch, or the window's debug setting). Code that logs a value that may
identify a patient wraps it in `phi(value)`.
"""

from __future__ import annotations

import logging

_state = {"show_phi": False}
REDACTED = "<redacted>"


def show_phi() -> bool:
    return _state["show_phi"]


def set_show_phi(enabled: bool) -> None:
    _state["show_phi"] = bool(enabled)


def phi(value: object) -> str:
    """`value` as text when patient data may be shown, a placeholder otherwise."""
    if _state["show_phi"]:
        return str(value)
    return REDACTED if value not in (None, "") else ""


def configure_logging(*, verbose: bool = False, debug: bool = False) -> None:
    """Console logging for the command line. pynetdicom's own log (which prints identifiers) only
    with `debug`."""
    set_show_phi(verbose or debug)
    level = logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pacsbrowser").setLevel(level)
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if debug else logging.CRITICAL)
    quiet_pydicom(not debug)


def quiet_pydicom(quiet: bool = True) -> None:
    """pydicom logs and warns about odd values quoting them (a malformed birth date, a name): keep
    that out of the console unless debugging."""
    import warnings

    logging.getLogger("pydicom").setLevel(logging.CRITICAL if quiet else logging.DEBUG)
    if quiet:
        warnings.filterwarnings("ignore", category=UserWarning)  # pydicom value warnings quote the values
