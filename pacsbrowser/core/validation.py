"""Where user input becomes values: every flag, profile setting, environment variable and form field
goes through one of these checks.

Each check takes what the user gave (text as typed, or an already-typed value), returns the value
to use, or raises `InvalidInput(field, rule)`: `field` names where the value came from (a flag such
as `--port`, a profile setting, a form label), `rule` says in words what is allowed. Patient data
(names, IDs) is never repeated in a message.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any


class InvalidInput(ValueError):
    """A value that breaks a rule; `str()` is one line: "FIELD: RULE"."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable with both arguments
        return (type(self), (self.field, self.rule))


def shown(value: object, limit: int = 40) -> str:
    """The value as it may appear in a message: quoted, control characters escaped, cut short."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "…" + text[0]


def _text(value: object, field: str) -> str:
    if value is None:
        raise InvalidInput(field, "is missing")
    if not isinstance(value, str):
        value = str(value)
    if "\x00" in value:
        raise InvalidInput(field, "contains a NUL character")
    return value


def _no_controls(text: str, field: str) -> None:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InvalidInput(field, f"{shown(text)} contains a control character")


# --------------------------------------------------------------------------------------------
# Numbers


def whole_number(value: object, field: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number within [minimum, maximum] (either bound may be None)."""
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise InvalidInput(field, f"must be a whole number, not {shown(value)}")
    if isinstance(value, (int, float)):
        number = int(value)
    else:
        text = _text(value, field).strip()
        if not re.fullmatch(r"[+-]?\d{1,18}", text):
            raise InvalidInput(field, f"must be a whole number, not {shown(text)}")
        number = int(text)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        if maximum is None:
            rule = f"must be {minimum} or more"
        elif minimum is None:
            rule = f"must be {maximum} or less"
        else:
            rule = f"must be from {minimum} to {maximum}"
        raise InvalidInput(field, f"{rule}, not {number}")
    return number


def real_number(value: object, field: str, minimum: float | None = None, maximum: float | None = None,
                *, above: bool = False) -> float:
    """A finite number within [minimum, maximum]; with `above`, strictly greater than minimum."""
    if isinstance(value, bool):
        raise InvalidInput(field, f"must be a number, not {shown(value)}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = _text(value, field).strip()
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
            raise InvalidInput(field, f"must be a number, not {shown(text)}")
        number = float(text)
    if not math.isfinite(number):
        raise InvalidInput(field, f"must be a finite number, not {shown(value)}")
    if minimum is not None and (number <= minimum if above else number < minimum):
        raise InvalidInput(field, f"must be {'more than' if above else 'at least'} {minimum:g}, not {number:g}")
    if maximum is not None and number > maximum:
        raise InvalidInput(field, f"must be at most {maximum:g}, not {number:g}")
    return number


def port(value: object, field: str = "port", *, any_free: bool = False) -> int:
    """A TCP port, 1 to 65535; with `any_free` (a port to listen on), 0 too: any free port."""
    low = 0 if any_free else 1
    try:
        return whole_number(value, field, low, 65535)
    except InvalidInput:
        raise InvalidInput(field, f"must be a whole number from {low} to 65535, not {shown(value)}") from None


MAX_TIMEOUT = 86_400.0  # a day; longer waits overflow the platform's timers


def timeout(value: object, field: str = "timeout") -> float:
    """Seconds to wait: more than 0, finite, at most a day."""
    return real_number(value, field, 0.0, MAX_TIMEOUT, above=True)


def retries(value: object, field: str = "retries") -> int:
    """How many times to try again: 0 to 100."""
    return whole_number(value, field, 0, 100)


def count(value: object, field: str, minimum: int = 1, maximum: int | None = 1_000_000) -> int:
    """How many of something (results, workers, associations): a whole number from `minimum`."""
    return whole_number(value, field, minimum, maximum)


def size(value: object, field: str, maximum: float = 1e9) -> float:
    """An amount (of megabytes, pixels...): a finite number from 0 to `maximum`."""
    return real_number(value, field, 0.0, maximum)


# --------------------------------------------------------------------------------------------
# DICOM values


# PS3.5 6.2: an AE title is at most 16 characters of the default repertoire, no backslash and no
# control characters; leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")


def ae_title(value: object, field: str = "AE title") -> str:
    """An AE title stripped of surrounding spaces."""
    stripped = _text(value, field).strip()
    if not stripped:
        raise InvalidInput(field, "is empty (an AE title has 1 to 16 characters)")
    if len(stripped) > 16:
        raise InvalidInput(field, f"{shown(stripped)} is longer than 16 characters")
    if not _AE_TITLE.fullmatch(stripped):
        raise InvalidInput(field, f"{shown(stripped)} contains a character DICOM does not allow in an AE title "
                                  "(backslash, control or non-ASCII)")
    return stripped


# PS3.5 9.1: components of digits separated by dots, no leading zero in a component (0 alone is
# fine), at most 64 characters.
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def uid(value: object, field: str = "UID") -> str:
    """A UID as PS3.5 9.1 allows it (surrounding spaces and a trailing NUL pad are dropped)."""
    text = _text(str(value).rstrip("\x00") if value is not None else None, field).strip()
    if not text:
        raise InvalidInput(field, "is empty (a UID is digits and dots, e.g. 1.2.840.10008.1.1)")
    if len(text) > 64:
        raise InvalidInput(field, f"is {len(text)} characters long; a UID has at most 64")
    if "*" in text or "?" in text:
        raise InvalidInput(field, "a UID cannot hold wildcards (* or ?): give the whole UID")
    if not _UID.fullmatch(text):
        if not re.fullmatch(r"[0-9.]+", text):
            rule = f"{shown(text)} is not a UID: only digits and dots are allowed"
        else:
            rule = f"{shown(text)} is not a UID: no empty component and no leading zero in one (PS3.5 9.1)"
        raise InvalidInput(field, rule)
    return text


def uid_list(value: object, field: str = "UID") -> str:
    """One UID or several separated by backslashes (UID list matching)."""
    text = _text(value, field).strip()
    return "\\".join(uid(part, field) for part in text.split("\\"))


def dicom_date(value: object, field: str = "date") -> str:
    """One date as YYYYMMDD (also accepts YYYY-MM-DD)."""
    text = _text(value, field).strip()
    if not text:
        raise InvalidInput(field, "is empty: give a date as YYYYMMDD")
    result = date_range(text, field)
    if "-" in result:
        raise InvalidInput(field, f"{shown(text)} is not one date: use YYYYMMDD")
    return result


def date_range(value: object, field: str = "date", *, private: bool = False) -> str:
    """A date, range or preset as DICOM range matching (core.matching.date_range's rules).
    `private` (a birth date): the value is not repeated in the message."""
    from .matching import date_range as parse  # matching imports the records, which import this module

    text = _text(value, field)
    if len(text) > 64:
        raise InvalidInput(field, "is longer than 64 characters; use YYYYMMDD or YYYYMMDD-YYYYMMDD")
    if "*" in text or "?" in text:
        raise InvalidInput(field, "dates cannot hold wildcards: use a range YYYYMMDD-YYYYMMDD")
    try:
        return parse(text)
    except ValueError as exc:
        rule = re.sub(r"'[^']*'", "it", str(exc)) if private else str(exc)
        raise InvalidInput(field, rule) from None


def time_range(value: object, field: str = "time") -> str:
    """A time or time range as DICOM range matching (HHMM, HHMMSS, HH:MM, ranges with '-')."""
    from .matching import time_range as parse

    text = _text(value, field)
    if len(text) > 64:
        raise InvalidInput(field, "is longer than 64 characters; use HHMM or HHMM-HHMM")
    try:
        return parse(text)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None


def text_key(value: object, field: str, max_length: int = 64, *, wildcards: bool = True,
             private: bool = False) -> str:
    """A matching key typed by the user (an ID, an accession number, a description): at most
    `max_length` characters, no control characters and no backslash (DICOM's value separator).
    `private`: patient data, never repeated in a message."""
    text = _text(value, field).strip()
    if len(text) > max_length:
        raise InvalidInput(field, f"is longer than {max_length} characters")
    bad = next((ch for ch in text if ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\"), None)
    if bad is not None:
        what = "a backslash" if bad == "\\" else "a control character"
        raise InvalidInput(field, f"contains {what}, which DICOM does not allow here"
                           + ("" if private else f" ({shown(text)})"))
    if not wildcards and ("*" in text or "?" in text):
        raise InvalidInput(field, "cannot hold wildcards (* or ?) here")
    return text


def code_list(value: object, field: str, max_length: int = 16) -> str:
    """Code strings (modalities, body parts) separated by commas or backslashes: letters, digits,
    spaces and underscores (and wildcards), each at most `max_length` characters."""
    text = _text(value, field).strip()
    for part in re.split(r"[,\\]", text):
        part = part.strip()
        if len(part) > max_length:
            raise InvalidInput(field, f"{shown(part)} is longer than {max_length} characters")
        if not re.fullmatch(r"[A-Za-z0-9 _*?]*", part):
            raise InvalidInput(field, f"{shown(part)} may hold only letters, digits, spaces and underscores")
    return text


def charset(value: object, field: str = "character set") -> str:
    """A Specific Character Set defined term pydicom knows (e.g. ISO_IR 192)."""
    from pydicom.charset import python_encoding

    text = _text(value, field).strip()
    parts = [part.strip() for part in text.split("\\")]  # code extensions: several, the first may be empty
    if not text or any(part not in python_encoding for part in parts if part) or not parts[-1]:
        raise InvalidInput(field, f"{shown(text)} is not a DICOM character set (e.g. ISO_IR 192, ISO_IR 100)")
    return text


def query_key(value: object, field: str = "key") -> tuple[str, str]:
    """`KEYWORD=VALUE` or `TAG=VALUE` (tag as 8 hex digits, or gggg,eeee); the name alone asks for
    the value back."""
    from pydicom.datadict import keyword_for_tag, tag_for_keyword

    text = _text(value, field)
    name, _, val = text.partition("=")
    name = name.strip()
    if not name:
        raise InvalidInput(field, f"{shown(text)}: give KEYWORD=VALUE or KEYWORD (e.g. PatientSex=F)")
    hex_tag = name.replace(",", "").replace("(", "").replace(")", "")
    if re.fullmatch(r"[0-9A-Fa-f]{8}", hex_tag):
        number = int(hex_tag, 16)
        if not keyword_for_tag(number) and not (number >> 16) % 2:
            raise InvalidInput(field, f"{shown(name)} is not a tag in the DICOM dictionary")
    elif tag_for_keyword(name) is None:
        raise InvalidInput(field, f"{shown(name)} is not a DICOM keyword (e.g. PatientSex) or tag (00100040)")
    _no_controls(val, field)
    if len(val) > 1024:
        raise InvalidInput(field, "the value is longer than 1024 characters")
    return name, val


# --------------------------------------------------------------------------------------------
# Names, hosts, paths


def name(value: object, field: str = "name", max_length: int = 64) -> str:
    """A name we give something (a profile): not empty, printable, at most `max_length` characters."""
    text = _text(value, field).strip()
    if not text:
        raise InvalidInput(field, "is empty")
    if len(text) > max_length:
        raise InvalidInput(field, f"is longer than {max_length} characters")
    _no_controls(text, field)
    return text


def host(value: object, field: str = "host", *, empty: bool = False) -> str:
    """A host name or address; with `empty`, '' (every interface) is allowed."""
    text = _text(value, field).strip()
    if not text:
        if empty:
            return ""
        raise InvalidInput(field, "is empty: give a host name or address")
    if len(text) > 253:
        raise InvalidInput(field, "is longer than 253 characters")
    if any(ch.isspace() for ch in text) or any(ord(ch) < 0x20 for ch in text):
        raise InvalidInput(field, f"{shown(text)} is not a host name: no spaces or control characters")
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = "\x00"
    if not re.fullmatch(r"[A-Za-z0-9._:\-\[\]%]+", ascii_name):
        raise InvalidInput(field, f"{shown(text)} is not a host name or address")
    return text


# DICOMweb: the base URL of a DICOMweb root, its service prefixes, authentication

WEB_AUTH_KINDS = ("none", "basic", "bearer")


def web_url(value: object, field: str = "URL") -> str:
    """The base URL of a DICOMweb root: http:// or https://, a host, an optional port and path; no
    user or password in it (they go in the profile's user and the keyring), no query or fragment.
    Returned without a trailing slash."""
    from urllib.parse import urlsplit

    text = _text(value, field).strip()
    if not text:
        raise InvalidInput(field, "is empty: give the DICOMweb root, e.g. https://pacs.example.org/dicom-web")
    if len(text) > 2048:
        raise InvalidInput(field, "is longer than 2048 characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InvalidInput(field, f"{shown(text)} contains a space or a control character")
    try:
        parts = urlsplit(text)
        port_number = parts.port
    except ValueError as exc:
        raise InvalidInput(field, f"{shown(text)} is not a URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(field, f"{shown(text)} must start with https:// (or http://)")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(field, "holds a user or password: give the user on its own (--user) and keep the "
                                  "password out of the URL")
    if not parts.hostname:
        raise InvalidInput(field, f"{shown(text)} names no host")
    host(parts.hostname, field)
    if port_number == 0:
        raise InvalidInput(field, "port 0 is not a port")
    if parts.query or parts.fragment:
        raise InvalidInput(field, "the DICOMweb root takes no ?query or #fragment")
    return text.rstrip("/")


def url_prefix(value: object, field: str = "prefix") -> str:
    """A path segment appended to the DICOMweb root for one service (e.g. "qido" when a server splits
    QIDO, WADO and STOW); "" for none. Returned without surrounding slashes."""
    text = _text(value, field).strip().strip("/")
    if len(text) > 256:
        raise InvalidInput(field, "is longer than 256 characters")
    if text and not re.fullmatch(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]+", text):
        raise InvalidInput(field, f"{shown(text)} may hold only the characters of a URL path")
    if any(part in (".", "..") for part in text.split("/")):
        raise InvalidInput(field, "may not hold . or .. segments")
    return text


def web_auth(value: object, field: str = "authentication") -> str:
    """none, basic or bearer."""
    text = _text(value, field).strip().lower()
    if text not in WEB_AUTH_KINDS:
        raise InvalidInput(field, f"must be one of {', '.join(WEB_AUTH_KINDS)}, not {shown(text)}")
    return text


def web_user(value: object, field: str = "user") -> str:
    """A user name for HTTP basic authentication: printable, no colon (basic auth's separator)."""
    text = _text(value, field).strip()
    if len(text) > 256:
        raise InvalidInput(field, "is longer than 256 characters")
    _no_controls(text, field)
    if ":" in text:
        raise InvalidInput(field, "an HTTP basic user name cannot hold a colon")
    return text


def web_secret(value: object, field: str = "password or token") -> str:
    """A password or bearer token: not empty, one line (a trailing line break, as files end, is
    dropped). Never repeated in a message."""
    text = _text(value, field).rstrip("\r\n")
    if not text:
        raise InvalidInput(field, "is empty")
    if len(text) > 16_384:
        raise InvalidInput(field, "is longer than 16384 characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InvalidInput(field, "contains a line break or a control character (give one line)")
    return text


def secret_file(value: object, field: str = "token file") -> Path:
    """A readable file holding one password or token (checked now, read when connecting)."""
    path = readable_file(value, field)
    try:
        if path.stat().st_size > 65_536:
            raise InvalidInput(field, f"{shown(path)} is larger than 64 kB: a token file holds one token")
    except OSError as exc:
        raise InvalidInput(field, f"{shown(path)} cannot be read: {exc.strerror or exc}") from None
    return path


def _path(value: object, field: str) -> Path:
    text = _text(os.fspath(value) if isinstance(value, os.PathLike) else value, field)
    if not text.strip():
        raise InvalidInput(field, "is empty: give a path")
    if len(text) > 4096:
        raise InvalidInput(field, "is longer than 4096 characters")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~name of no known user, or no home folder
        raise InvalidInput(field, f"{shown(text)}: the ~ at its start names no known home folder") from None


def _exists(path: Path, field: str) -> None:
    try:
        path.stat()
    except FileNotFoundError:
        raise InvalidInput(field, f"{shown(path)} does not exist") from None
    except NotADirectoryError:
        raise InvalidInput(field, f"{shown(path)} does not exist (a part of it is a file)") from None
    except OSError as exc:
        raise InvalidInput(field, f"{shown(path)} cannot be read: {exc.strerror or exc}") from None


def readable_file(value: object, field: str = "file") -> Path:
    """An existing file we may read (not a folder)."""
    path = _path(value, field)
    _exists(path, field)
    if path.is_dir():
        raise InvalidInput(field, f"{shown(path)} is a folder; a file is expected here")
    if not path.is_file():
        raise InvalidInput(field, f"{shown(path)} is not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidInput(field, f"{shown(path)} cannot be read (permission denied)")
    return path


def readable_path(value: object, field: str = "path") -> Path:
    """An existing file or folder we may read."""
    path = _path(value, field)
    _exists(path, field)
    if not (path.is_dir() or path.is_file()):
        raise InvalidInput(field, f"{shown(path)} is neither a file nor a folder")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise InvalidInput(field, f"{shown(path)} cannot be read (permission denied)")
    return path


def directory(value: object, field: str = "folder") -> Path:
    """A folder, existing or to be created: whatever exists along the path must be a folder."""
    path = _path(value, field)
    if path.exists() and not path.is_dir():
        raise InvalidInput(field, f"{shown(path)} is a file; a folder is expected here")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidInput(field, f"{shown(path)} cannot be a folder: {shown(parent)} is a file")
            break
    return path


# --------------------------------------------------------------------------------------------
# Query keys: what each level allows (PS3.4 C.2.2.2, C.4.1.2.2)

# attribute -> (name in messages, the level whose own key it is)
_UID_KEYS = {
    "study_instance_uid": ("Study Instance UID", "STUDY"),
    "series_instance_uid": ("Series Instance UID", "SERIES"),
    "sop_instance_uid": ("SOP Instance UID", "INSTANCE"),
}
# attribute -> (name in messages, maximum length (PS3.5 6.2 VR), patient data)
_TEXT_KEYS = {
    "patient_name": ("Patient name", 200, True),
    "patient_id": ("Patient ID", 64, True),
    "accession_number": ("Accession number", 16, False),
    "study_description": ("Study description", 64, False),
    "series_description": ("Series description", 64, False),
    "referring_physician": ("Referring physician", 200, True),
    "study_id": ("Study ID", 16, False),
    "modality": ("Modality", 16, False),
    "body_part": ("Body part", 16, False),
    "sex": ("Sex", 16, False),
}


def query_keys(keys: Any, names: dict[str, str] | None = None) -> Any:
    """Check QueryKeys as the user gave them, before any association: UIDs are whole UIDs (no
    wildcards); a UID list only for the level's own key, one UID for the levels above it (the
    hierarchy); dates, times and text within their rules. `names` renames attributes in messages
    (e.g. {"study_instance_uid": "--study-uid"}). Returns the keys unchanged."""
    names = names or {}
    level = keys.level.name
    for attribute, (label, own_level) in _UID_KEYS.items():
        value = getattr(keys, attribute)
        if not value:
            continue
        field = names.get(attribute, label)
        if "\\" in value and own_level != level:
            raise InvalidInput(field, f"a {level.lower()} query takes one UID here, not a list")
        uid_list(value, field)
    if keys.sop_class_uid:
        uid_list(keys.sop_class_uid, names.get("sop_class_uid", "SOP Class UID"))
    for attribute, label in (("birth_date", "Birth date"), ("study_date", "Study date")):
        if isinstance(getattr(keys, attribute), str):
            date_range(getattr(keys, attribute), names.get(attribute, label), private=attribute == "birth_date")
    time_range(keys.study_time, names.get("study_time", "Study time"))
    for attribute, (label, longest, private) in _TEXT_KEYS.items():
        text_key(getattr(keys, attribute), names.get(attribute, label), longest, private=private)
    for modality in keys.modalities:
        text_key(modality, names.get("modalities", "Modality"), 16)
    return keys


def environment_directory(variable: str) -> Path | None:
    """The folder an environment variable names, checked like a flag; None when it is not set."""
    value = os.environ.get(variable)
    if not value:
        return None
    return directory(value, f"environment variable {variable}")


def move_destination(value: object, field: str = "move destination") -> tuple[str, tuple[str, int]]:
    """'AE=HOST:PORT' (a C-MOVE destination our server knows) -> (AE, (HOST, PORT))."""
    text = _text(value, field).strip()
    ae_part, sep, address = text.partition("=")
    where, colon, number = address.rpartition(":")
    if not sep or not colon or not where.strip("[] "):
        raise InvalidInput(field, f"a move destination is AE=HOST:PORT, not {text!r}")
    return (ae_title(ae_part, f"{field} AE title"),
            (host(where.strip("[] "), f"{field} host"), port(number.strip(), f"{field} port")))



def server_tls(tls: Any, field: str = "listener TLS") -> Any:
    """The TLS settings of one of our listeners (a core.records.TLSConfiguration, or None): our
    certificate and key are needed, and verifying callers needs a CA to verify them against. With
    `verify_peer` on and no `ca_certificate` a listener would have to accept any client certificate
    (or none) while the settings say callers are checked: refused, in words."""
    if tls is None:
        return tls
    if tls.certificate is None or tls.key is None:
        raise InvalidInput(field, "a TLS listener needs its certificate and private key")
    if tls.verify_peer and tls.ca_certificate is None:
        raise InvalidInput(field, "verifying callers' certificates needs the CA certificate that signed them "
                                  "(give a CA certificate, or turn client certificate verification off)")
    return tls
