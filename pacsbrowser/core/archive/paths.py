"""Where the archive keeps things: its folder, and file names that received data cannot steer."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import platformdirs

from ... import __version__

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: counts kept by triggers (core.archive.counts)
INDEX_NAME = "index.sqlite"
LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"
SUFFIX = ".dcm"
DEFAULT_MIN_FREE_BYTES = 50 * 1024 * 1024
IMPLEMENTATION_VERSION = f"PACSBROWSER_{__version__.replace('.', '')}"[:16]
# Ours, in the files we write (0002,0012) and the associations we make: a 2.25 UUID-derived UID
# (uuid5 of the project's name), fixed forever; the version name above says which release.
IMPLEMENTATION_CLASS_UID = "2.25.268313225610118294872960930633223089276"

_VALID_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def default_archive_dir() -> Path:
    """`PACSBROWSER_ARCHIVE_DIR`, or the user data directory's ``archive`` folder."""
    override = os.environ.get("PACSBROWSER_ARCHIVE_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("pacsbrowser", appauthor=False)) / "archive"


def is_valid_uid(value: str) -> bool:
    return len(value) <= 64 and _VALID_UID.fullmatch(value) is not None


def safe_name(uid: str) -> str:
    """A file name for `uid`: the UID when valid, else ``x`` + its SHA-256 (never a path)."""
    if is_valid_uid(uid):
        return uid
    digest = hashlib.sha256(uid.encode("utf-8", "surrogatepass")).hexdigest()
    return "x" + digest[:40]


def relative_path(study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    """Where an instance lives, relative to the archive root, with ``/`` separators."""
    return f"{safe_name(study_uid)}/{safe_name(series_uid)}/{safe_name(sop_instance_uid)}{SUFFIX}"


# --------------------------------------------------------------------------------------------
# Parsing


