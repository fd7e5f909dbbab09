"""The local archive: DICOM files on disk and an SQLite index of what a browser lists.

Layout under the archive root (platformdirs' user data dir by default)::

    <root>/index.sqlite              the index (WAL mode; -wal and -shm beside it)
    <root>/.lock                     held by the one process writing to this archive
    <root>/<study>/<series>/<instance>.dcm

Each of <study>, <series> and <instance> is the UID itself when it is a valid UID (digits and dots,
at most 64 characters) and ``x`` followed by a SHA-256 of the value otherwise: received data never
decides where a file goes, so a UID crafted like ``../../etc`` lands inside the root like any other.

Files are written atomically: a temporary ``.tmp-*`` file in the destination folder, fsync, rename.
The bytes of the data set are stored as received (no decode and re-encode), behind a File Meta
Information header that records the transfer syntax and the sending AE.

Writing and indexing are apart: `store` (any thread, e.g. a Storage SCP handler) writes the file,
queues it for the archive's one indexer thread and returns at once; the indexer commits in batches
and then calls back. (`write_instance` + `submit`/`add` do the same in two steps; `import_file`
copies a Part 10 file in.) Reads use their own connection and see committed data. A second copy of
the same SOP Instance UID replaces the first (one row, one file). One process writes to an archive
(a lock file says which); others may open it read-only.

The index is a cache of the files: `rebuild()` makes it again from them. The index records
whether the archive was closed cleanly; opening it after a crash runs `repair()`: temporary files
of interrupted writes are deleted, files that were written but not yet indexed are indexed, rows
whose file is gone are dropped.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import queue
import re
import shutil
import sqlite3
import struct
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import platformdirs
from pydicom import config
from pydicom.charset import decode_bytes, convert_encodings
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import TEXT_VR_DELIMS, PersonName

from .. import __version__
from .errors import ArchiveError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
INDEX_NAME = "index.sqlite"
LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"
SUFFIX = ".dcm"
DEFAULT_MIN_FREE_BYTES = 50 * 1024 * 1024
IMPLEMENTATION_VERSION = f"PACSBROWSER_{__version__.replace('.', '')}"[:16]

_VALID_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}

# The attributes the index keeps (read from the data set up to the pixel data).
_HEADER_TAGS = [
    0x00080005,  # SpecificCharacterSet
    0x00080016,  # SOPClassUID
    0x00080018,  # SOPInstanceUID
    0x00080020,  # StudyDate
    0x00080021,  # SeriesDate
    0x00080030,  # StudyTime
    0x00080050,  # AccessionNumber
    0x00080060,  # Modality
    0x00080090,  # ReferringPhysicianName
    0x00081030,  # StudyDescription
    0x0008103E,  # SeriesDescription
    0x00100010,  # PatientName
    0x00100020,  # PatientID
    0x00100021,  # IssuerOfPatientID
    0x00100030,  # PatientBirthDate
    0x00100040,  # PatientSex
    0x00180015,  # BodyPartExamined
    0x0020000D,  # StudyInstanceUID
    0x0020000E,  # SeriesInstanceUID
    0x00200010,  # StudyID
    0x00200011,  # SeriesNumber
    0x00200013,  # InstanceNumber
    0x00280008,  # NumberOfFrames
    0x00280010,  # Rows
    0x00280011,  # Columns
]


def default_archive_dir() -> Path:
    """`PACSBROWSER_ARCHIVE_DIR`, or the user data directory's ``archive`` folder."""
    override = os.environ.get("PACSBROWSER_ARCHIVE_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("pacsbrowser", appauthor=False)) / "archive"


class MalformedDataset(ValueError):
    """The bytes received are not a data set we can understand (or lack the UIDs we file by)."""


# --------------------------------------------------------------------------------------------
# Names


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


def _stop_at_pixels(tag: Any, vr: Any, length: int) -> bool:
    return int(tag) in _PIXEL_TAGS


class _Header:
    """The header elements the index keeps, decoded from their raw bytes.

    pydicom's own conversion validates each value and warns or logs the offending value when it is
    malformed (a birth date, a name): patient data in the log. Decoding the raw bytes ourselves
    keeps the log clean, and an undecodable value leaves that attribute empty, not the instance
    refused.
    """

    def __init__(self, ds: Dataset, little_endian: bool = True) -> None:
        self.ds = ds
        self.little_endian = little_endian
        charset = self.ascii(0x00080005)
        try:
            self.encodings = convert_encodings([c.strip() for c in charset.split("\\")] if charset else None)
        except Exception:  # noqa: BLE001
            self.encodings = convert_encodings(None)

    def raw(self, tag: int) -> Any:
        try:
            elem = self.ds.get_item(tag)
        except Exception:  # noqa: BLE001
            return None
        return None if elem is None else elem.value

    def ascii(self, tag: int) -> str:
        value = self.raw(tag)
        if value is None:
            return ""
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("ascii", "replace").strip(" \x00")
        if isinstance(value, (list, tuple, MultiValue)):
            return "\\".join(str(v) for v in value)
        return str(value).strip(" \x00")

    def text(self, tag: int) -> str:
        value = self.raw(tag)
        if value is None:
            return ""
        if isinstance(value, (bytes, bytearray)):
            try:
                return decode_bytes(bytes(value), self.encodings, TEXT_VR_DELIMS).strip(" \x00")
            except Exception:  # noqa: BLE001
                return bytes(value).decode("latin-1").strip(" \x00")
        return str(value).strip(" \x00")

    def person(self, tag: int) -> str:
        value = self.raw(tag)
        if value is None:
            return ""
        if isinstance(value, (bytes, bytearray)):
            try:
                return str(PersonName(bytes(value), self.encodings, validation_mode=config.IGNORE)).strip(" \x00")
            except Exception:  # noqa: BLE001
                return bytes(value).decode("latin-1").strip(" \x00")
        return str(value).strip(" \x00")

    def integer(self, tag: int) -> int | None:
        """IS as text; US/UL as binary."""
        value = self.raw(tag)
        if value is None or value == b"":
            return None
        try:
            if isinstance(value, (bytes, bytearray)):
                if tag in (0x00280010, 0x00280011):  # Rows, Columns: US
                    return int.from_bytes(bytes(value[:2]), "little" if self.little_endian else "big")
                return int(float(bytes(value).decode("ascii").split("\\")[0].strip(" \x00")))
            if isinstance(value, (list, tuple, MultiValue)):
                value = value[0]
            return int(value)
        except (ValueError, TypeError, IndexError):
            return None


def parse_dataset(data: bytes | BinaryIO, transfer_syntax: str) -> Dataset:
    """The header (everything before the pixel data) of an encoded data set without its File Meta
    Information, in `transfer_syntax`, from bytes or a binary stream: the elements the index
    keeps, raw (see _Header). Raises MalformedDataset."""
    ts = UID(transfer_syntax)
    try:
        if ts == DeflatedExplicitVRLittleEndian:
            raw = data if isinstance(data, (bytes, bytearray, memoryview)) else data.read()
            data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, 512 * 1024 * 1024)
        implicit = ts.is_implicit_VR if ts.is_transfer_syntax else False
        little = ts.is_little_endian if ts.is_transfer_syntax else True
        fp = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        ds = read_dataset(fp, implicit, little, stop_when=_stop_at_pixels, specific_tags=list(_HEADER_TAGS))
        ds._pb_little_endian = little  # for binary values (Rows, Columns)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on bad input
        raise MalformedDataset(f"the data set cannot be decoded ({exc.__class__.__name__})") from exc
    return ds


@dataclass(frozen=True)
class InstanceInfo:
    """What the index keeps of one instance (read from its header)."""

    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    patient_id: str = ""
    issuer: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    series_date: str = ""
    body_part: str = ""
    instance_number: int | None = None
    rows: int | None = None
    columns: int | None = None
    frames: int | None = None
    charset: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset, sop_class_uid: str = "", sop_instance_uid: str = "",
                     little_endian: bool = True) -> "InstanceInfo":
        h = _Header(ds, getattr(ds, "_pb_little_endian", little_endian))
        sop_uid = h.ascii(0x00080018) or sop_instance_uid
        study_uid = h.ascii(0x0020000D)
        series_uid = h.ascii(0x0020000E)
        missing = [name for name, value in (("SOP Instance UID", sop_uid), ("Study Instance UID", study_uid),
                                            ("Series Instance UID", series_uid)) if not value]
        if missing:
            raise MalformedDataset(f"the data set has no {', '.join(missing)}")
        return cls(
            sop_instance_uid=sop_uid,
            sop_class_uid=h.ascii(0x00080016) or sop_class_uid,
            study_uid=study_uid,
            series_uid=series_uid,
            patient_id=h.text(0x00100020),
            issuer=h.text(0x00100021),
            patient_name=h.person(0x00100010),
            birth_date=h.ascii(0x00100030),
            sex=h.ascii(0x00100040),
            study_date=h.ascii(0x00080020),
            study_time=h.ascii(0x00080030),
            accession_number=h.text(0x00080050),
            study_id=h.text(0x00200010),
            study_description=h.text(0x00081030),
            referring_physician=h.person(0x00080090),
            modality=h.ascii(0x00080060),
            series_number=h.integer(0x00200011),
            series_description=h.text(0x0008103E),
            series_date=h.ascii(0x00080021),
            body_part=h.ascii(0x00180015),
            instance_number=h.integer(0x00200013),
            rows=h.integer(0x00280010),
            columns=h.integer(0x00280011),
            frames=h.integer(0x00280008),
            charset=h.ascii(0x00080005),
        )

    @property
    def patient_key(self) -> str:
        return f"{self.issuer}\\{self.patient_id}"


@dataclass(frozen=True)
class StoredInstance:
    """A file written into the archive, not necessarily indexed yet."""

    info: InstanceInfo
    relative_path: str
    path: Path
    size: int
    mtime_ns: int
    transfer_syntax_uid: str
    received_at: float
    source_ae: str = ""


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    """One group 2 element, explicit VR little endian."""
    if vr in (b"OB",):
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    if len(value) > 0xFFFF:
        raise MalformedDataset("a UID is too long to be written")
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    value = text.encode("ascii", "replace")
    return value + pad if len(value) % 2 else value


def _file_meta_bytes(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae: str) -> bytes:
    """Preamble, DICM and the File Meta Information, encoded here byte by byte: pydicom would
    validate (and warn about, or one day refuse) the crafted UIDs a peer may send, which we still
    store, under a hashed name."""
    body = b"".join([
        _element(0x0001, b"OB", b"\x00\x01"),
        _element(0x0002, b"UI", _padded(sop_class_uid, b"\x00")),
        _element(0x0003, b"UI", _padded(sop_instance_uid, b"\x00")),
        _element(0x0010, b"UI", _padded(str(transfer_syntax), b"\x00")),
        _element(0x0012, b"UI", _padded(PYDICOM_IMPLEMENTATION_UID, b"\x00")),
        _element(0x0013, b"SH", _padded(IMPLEMENTATION_VERSION, b" ")),
    ])
    if source_ae and len(source_ae) <= 16 and source_ae.isascii() and "\\" not in source_ae:
        body += _element(0x0016, b"AE", _padded(source_ae, b" "))
    return b"\x00" * 128 + b"DICM" + _element(0x0000, b"UL", struct.pack("<I", len(body))) + body


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def split_part10(data: bytes) -> tuple[str, int, dict[int, str]]:
    """(transfer syntax, offset of the data set, {element: text} of the group 2 elements) of the
    start of a DICOM Part 10 file (the File Meta Information is always explicit VR little endian)."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise MalformedDataset("not a DICOM file (no DICM prefix)")
    pos = 132
    values: dict[int, str] = {}
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                break
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        if start + length > len(data):
            raise MalformedDataset("the file meta information is truncated")
        if vr in (b"UI", b"AE", b"SH", b"LO", b"CS"):
            values[element] = data[start : start + length].decode("ascii", "replace").strip("\x00 ")
        pos = start + length
    ts = values.get(0x0010, "")
    if not ts:
        raise MalformedDataset("the file meta information has no transfer syntax")
    return ts, pos, values


# --------------------------------------------------------------------------------------------
# Index rows


@dataclass(frozen=True)
class PatientRow:
    patient_key: str = field(repr=False)  # issuer '\\' patient ID: identifying
    patient_id: str = field(repr=False)
    issuer: str
    patient_name: str = field(repr=False)
    birth_date: str = field(repr=False)
    sex: str
    study_count: int


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    patient_key: str = field(repr=False)
    patient_id: str = field(repr=False)
    patient_name: str = field(repr=False)
    birth_date: str = field(repr=False)
    sex: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    description: str
    referring_physician: str = field(repr=False)
    modalities: tuple[str, ...]
    series_count: int
    instance_count: int
    size: int


@dataclass(frozen=True)
class SeriesRow:
    series_uid: str
    study_uid: str
    modality: str
    series_number: int | None
    description: str
    body_part: str
    instance_count: int
    size: int


@dataclass(frozen=True)
class InstanceRow:
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    frames: int | None
    path: Path
    size: int
    received_at: float
    source_ae: str


@dataclass
class RepairReport:
    temp_files_removed: int = 0
    indexed: int = 0
    rows_removed: int = 0
    duplicates_removed: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.temp_files_removed or self.indexed or self.rows_removed or self.duplicates_removed)


@dataclass
class VerifyReport:
    files: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patients (
    patient_key TEXT PRIMARY KEY,          -- issuer '\\' patient ID
    patient_id TEXT NOT NULL DEFAULT '',
    issuer TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    patient_key TEXT NOT NULL REFERENCES patients(patient_key),
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    accession_number TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    referring_physician TEXT NOT NULL DEFAULT '',
    charset TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS studies_by_patient ON studies(patient_key);
CREATE INDEX IF NOT EXISTS studies_by_date ON studies(study_date);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES studies(study_uid),
    modality TEXT NOT NULL DEFAULT '',
    series_number INTEGER,
    description TEXT NOT NULL DEFAULT '',
    series_date TEXT NOT NULL DEFAULT '',
    body_part TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS series_by_study ON series(study_uid);
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL REFERENCES series(series_uid),
    sop_class_uid TEXT NOT NULL DEFAULT '',
    transfer_syntax_uid TEXT NOT NULL DEFAULT '',
    instance_number INTEGER,
    rows INTEGER,
    columns INTEGER,
    frames INTEGER,
    path TEXT NOT NULL UNIQUE,             -- relative to the archive root, '/' separators
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,             -- seconds since the epoch
    source_ae TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS instances_by_series ON instances(series_uid);
"""


def _connect(path: Path, *, readonly: bool = False, check_same_thread: bool = True) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=10.0,
                               check_same_thread=check_same_thread, isolation_level=None)
    else:
        conn = sqlite3.connect(str(path), timeout=10.0, check_same_thread=check_same_thread, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crash of the process (not a power cut; the index can be rebuilt).
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


# A test hook: how the bytes reach the disk (tests make it fail with ENOSPC half way).
def _write_chunks(fd: int, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


class _DirLock:
    """An exclusive lock on the archive (one writing process), released on close or death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.name == "nt":  # pragma: no cover - Windows
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


class _Job:
    __slots__ = ("kind", "payload", "callback", "future")

    def __init__(self, kind: str, payload: Any, callback: Any = None, future: Future | None = None) -> None:
        self.kind, self.payload, self.callback, self.future = kind, payload, callback, future


IndexedCallback = Callable[[StoredInstance, bool], None]


class Archive:
    """The local archive at `root` (default: `default_archive_dir()`).

    Open for writing (the default) takes an exclusive lock on the folder: one process writes, any
    number read (`readonly=True`, no lock, no repair). Thread-safe: `write_instance` from any
    thread; indexing on the archive's own thread; queries from any thread.
    """

    BATCH = 256

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        readonly: bool = False,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        durable: bool = True,
    ) -> None:
        self.root = Path(root) if root is not None else default_archive_dir()
        self.readonly = readonly
        self.min_free_bytes = min_free_bytes
        self.durable = durable
        self.index_path = self.root / INDEX_NAME
        self.last_repair: RepairReport | None = None
        self._closed = False
        self._clean_close = True
        self._writers = 0  # write-and-submit sections under way (close waits for them)
        self._writers_cond = threading.Condition()
        self._lock: _DirLock | None = None
        self._read_lock = threading.Lock()
        self._paths_lock = threading.Lock()
        self._pending_paths: Counter[str] = Counter()
        self._queue: "queue.Queue[_Job | None]" = queue.Queue()
        self._thread: threading.Thread | None = None
        self._index_failures = 0
        if readonly:
            if not self.index_path.exists():
                raise ArchiveError(f"{self.root} is not a pacsbrowser archive (no {INDEX_NAME})")
            try:
                self._reader = _connect(self.index_path, readonly=True, check_same_thread=False)
                self._check_schema(self._reader)
            except sqlite3.Error as exc:
                raise ArchiveError(f"cannot read the archive index {self.index_path}: {exc}") from exc
            return
        self._open_for_writing()

    # ---- opening and closing

    def _open_for_writing(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create the archive folder {self.root}: {exc.strerror or exc}") from exc
        lock = _DirLock(self.root / LOCK_NAME)
        if not lock.acquire():
            raise ArchiveError(f"the archive {self.root} is in use by another pacsbrowser (process {lock.holder()})")
        self._lock = lock
        try:
            try:
                self._prepare_index()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise
                # Not a database any more (a disk error, a bad copy): keep it aside, index the files anew.
                aside = self._move_index_aside()
                log.error("the archive index %s is damaged (%s); it was moved to %s and is being made again "
                          "from the files", self.index_path, exc, aside)
                self._prepare_index()
            self._reader = _connect(self.index_path, check_same_thread=False)
        except sqlite3.Error as exc:
            lock.release()
            raise ArchiveError(f"cannot open the archive index {self.index_path}: {exc}") from exc
        except BaseException:
            lock.release()
            raise
        self._thread = threading.Thread(target=self._run_indexer, name="pacsbrowser-archive-indexer", daemon=True)
        self._thread.start()

    def _prepare_index(self) -> None:
        """Create or check the index; repair it when the archive was not closed cleanly, or index
        the files when the index is new and the folder is not empty."""
        new = not self.index_path.exists()
        conn = _connect(self.index_path)
        try:
            conn.executescript(_SCHEMA)
            if new:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '1')")
            self._check_schema(conn)
            clean = self._meta(conn, "clean") == "1"
            if not clean or (new and self._has_data_folders()):
                if new:
                    log.warning("archive %s has no index: indexing its files", self.root)
                else:
                    log.warning("archive %s was not closed cleanly: repairing", self.root)
                self.last_repair = self._reconcile(conn, trust_rows=True, remove_temp=True)
            self._set_meta(conn, "clean", "0")
        finally:
            conn.close()

    def _move_index_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.index_path.with_name(f"{INDEX_NAME}.damaged-{stamp}")
        os.replace(self.index_path, aside)
        for suffix in ("-wal", "-shm"):
            extra = self.index_path.with_name(INDEX_NAME + suffix)
            if extra.exists():
                os.replace(extra, aside.with_name(aside.name + suffix))
        return aside

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        version = self._meta(conn, "schema_version")
        if version is None or not version.isdigit() or int(version) > SCHEMA_VERSION:
            raise ArchiveError(f"the archive index {self.index_path} has schema version {version!r}; "
                               f"this pacsbrowser reads up to {SCHEMA_VERSION}")

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> str | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _has_data_folders(self) -> bool:
        return any(entry.is_dir() and not entry.name.startswith(".") for entry in os.scandir(self.root))

    def close(self, timeout: float = 30.0) -> None:
        """Index what is queued, mark the archive clean and let go of it. Idempotent."""
        if self._closed:
            return
        with self._writers_cond:
            self._closed = True  # no new writes from here on
            if not self._writers_cond.wait_for(lambda: self._writers == 0, timeout):
                log.error("%d writes to the archive did not finish within %.0f s", self._writers, timeout)
                self._clean_close = False
        if self._thread is not None:
            self._queue.put(_Job("close", None))
            self._queue.put(None)
            self._thread.join(timeout)
            if self._thread.is_alive():  # pragma: no cover - a stuck disk
                log.error("the archive indexer did not stop within %.0f s", timeout)
            self._thread = None
        with self._read_lock:
            self._reader.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- writing

    def _require_writable(self) -> None:
        if self.readonly:
            raise ArchiveError(f"the archive {self.root} is open read-only")
        if self._closed:
            raise ArchiveError(f"the archive {self.root} is closed")

    def _enter_write(self) -> None:
        with self._writers_cond:
            self._require_writable()
            self._writers += 1

    def _leave_write(self) -> None:
        with self._writers_cond:
            self._writers -= 1
            self._writers_cond.notify_all()

    def path_for(self, info: InstanceInfo) -> Path:
        return self.root / relative_path(info.study_uid, info.series_uid, info.sop_instance_uid)

    def store(
        self,
        data: bytes,
        transfer_syntax: str,
        *,
        sop_class_uid: str = "",
        sop_instance_uid: str = "",
        source_ae: str = "",
        received_at: float | None = None,
        on_indexed: IndexedCallback | None = None,
    ) -> StoredInstance:
        """Write an encoded data set (without File Meta Information) as received, and queue it for
        indexing: what a Storage SCP handler calls. Returns once the file is in place (renamed);
        `on_indexed(stored, replaced)` runs on the indexer thread after the commit.

        Raises MalformedDataset when the data set cannot be read or lacks its UIDs, OSError when it
        cannot be written (ENOSPC when the disk is full or would keep less than `min_free_bytes`),
        ArchiveError when the archive is closed. Nothing is left behind on failure.
        """
        self._enter_write()
        try:
            stored = self._write_encoded(data, transfer_syntax, sop_class_uid, sop_instance_uid, source_ae,
                                         received_at)
            self._queue.put(_Job("index", stored, on_indexed))
            return stored
        finally:
            self._leave_write()

    def write_instance(
        self,
        data: bytes,
        transfer_syntax: str,
        *,
        sop_class_uid: str = "",
        sop_instance_uid: str = "",
        source_ae: str = "",
        received_at: float | None = None,
    ) -> StoredInstance:
        """Like `store`, without indexing: the caller hands the result to `submit` or `add`."""
        self._enter_write()
        try:
            return self._write_encoded(data, transfer_syntax, sop_class_uid, sop_instance_uid, source_ae,
                                       received_at)
        finally:
            self._leave_write()

    def _write_encoded(self, data: bytes, transfer_syntax: str, sop_class_uid: str, sop_instance_uid: str,
                       source_ae: str, received_at: float | None) -> StoredInstance:
        header = parse_dataset(data, transfer_syntax)
        info = InstanceInfo.from_dataset(header, sop_class_uid, sop_instance_uid)
        if not info.sop_class_uid:
            raise MalformedDataset("the data set has no SOP Class UID")
        meta = _file_meta_bytes(info.sop_class_uid, info.sop_instance_uid, transfer_syntax, source_ae)
        return self._write(info, [meta, data], transfer_syntax, source_ae, received_at)

    def import_file(self, path: Path | str, *, source_ae: str = "", timeout: float | None = 60.0) -> StoredInstance:
        """Copy a DICOM Part 10 file into the archive (its data set bytes unchanged) and index it."""
        data = Path(path).read_bytes()
        transfer_syntax, offset, _ = split_part10(data)
        stored = self.write_instance(data[offset:], transfer_syntax, source_ae=source_ae)
        self.add(stored, timeout)
        return stored

    def _write(self, info: InstanceInfo, chunks: list[bytes], transfer_syntax: str, source_ae: str,
               received_at: float | None) -> StoredInstance:
        rel = relative_path(info.study_uid, info.series_uid, info.sop_instance_uid)
        final = self.root / rel
        size = sum(len(c) for c in chunks)
        folder = final.parent
        # Every part of the path is ours: a valid UID or a hash. Check anyway.
        if folder.parent.parent != self.root:
            raise MalformedDataset("the UIDs do not make a path inside the archive")  # pragma: no cover
        with self._paths_lock:
            self._pending_paths[rel] += 1
        tmp: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if self.min_free_bytes:
                free = shutil.disk_usage(folder).free
                if free - size < self.min_free_bytes:
                    raise OSError(errno.ENOSPC, f"{free // (1024 * 1024)} MB free, less than the archive's reserve "
                                                f"of {self.min_free_bytes // (1024 * 1024)} MB after this file")
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=folder)
            try:
                _write_chunks(fd, chunks)
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            tmp = None
            if self.durable:
                _fsync_dir(folder)
            stat = final.stat()
        except BaseException:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            with self._paths_lock:
                self._release_path(rel)
            raise
        return StoredInstance(
            info=info,
            relative_path=rel,
            path=final,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            transfer_syntax_uid=str(transfer_syntax),
            received_at=time.time() if received_at is None else received_at,
            source_ae=source_ae,
        )

    def _release_path(self, rel: str) -> None:
        self._pending_paths[rel] -= 1
        if self._pending_paths[rel] <= 0:
            del self._pending_paths[rel]

    def submit(self, stored: StoredInstance, on_indexed: IndexedCallback | None = None) -> None:
        """Queue `stored` (from `write_instance`) for indexing; `on_indexed(stored, replaced)` runs
        on the indexer thread after the commit."""
        self._require_writable()
        self._queue.put(_Job("index", stored, on_indexed))

    def add(self, stored: StoredInstance, timeout: float | None = 60.0) -> bool:
        """Index `stored` now (waits for the indexer); True when it replaced an earlier copy."""
        self._require_writable()
        future: Future = Future()
        self._queue.put(_Job("index", stored, lambda s, replaced: None, future))
        return bool(future.result(timeout))

    def flush(self, timeout: float | None = 60.0) -> None:
        """Wait until everything submitted before this call is indexed."""
        if self.readonly or self._closed or self._thread is None:
            return
        self._call(lambda conn: None, timeout)

    def _call(self, fn: Callable[[sqlite3.Connection], Any], timeout: float | None) -> Any:
        future: Future = Future()
        self._queue.put(_Job("call", fn, None, future))
        return future.result(timeout)

    # ---- the indexer thread

    def _run_indexer(self) -> None:
        conn = _connect(self.index_path)
        retry: list[_Job] = []
        try:
            while True:
                try:
                    job = self._queue.get(timeout=1.0 if retry else None)
                except queue.Empty:
                    job = _Job("retry", None)
                if job is None:
                    break
                batch = list(retry)
                retry = []
                calls: list[_Job] = []
                if job.kind == "index":
                    batch.append(job)
                elif job.kind in ("call", "close"):
                    calls.append(job)
                while len(batch) < self.BATCH and not calls:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    if nxt.kind == "index":
                        batch.append(nxt)
                    else:
                        calls.append(nxt)
                if batch:
                    retry = self._index_batch(conn, batch)
                for call in calls:
                    if call.kind == "close":
                        if not retry and not self._index_failures and self._clean_close:
                            try:
                                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                                self._set_meta(conn, "clean", "1")
                            except sqlite3.Error as exc:
                                log.error("cannot mark the archive clean: %s", exc)
                        elif retry:
                            log.error("%d received instances could not be indexed; the next start repairs "
                                      "the index from the files", len(retry))
                            retry = []
                        continue
                    try:
                        result = call.payload(conn)
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        if call.future is not None:
                            call.future.set_exception(exc)
                    else:
                        if call.future is not None:
                            call.future.set_result(result)
        finally:
            conn.close()

    def _index_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Job]:
        """Commit `batch` in one transaction; on failure return it to be retried."""
        results: list[bool] = []
        obsolete: list[str] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            moved: list[tuple[str, str]] = []
            for job in batch:
                replaced, old_path, left = self._upsert(conn, job.payload)
                results.append(replaced)
                if old_path is not None and old_path != job.payload.relative_path:
                    obsolete.append(old_path)
                moved.extend(left)
            if moved:
                self._prune(conn, moved)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._index_failures += 1
            log.error("cannot index %d received instances (%s); will retry", len(batch), exc)
            return batch
        # Files of replaced copies that moved elsewhere (another study or series): remove them
        # unless a write to that same path is under way.
        with self._paths_lock:
            for job in batch:
                self._release_path(job.payload.relative_path)
            for rel in obsolete:
                if self._pending_paths.get(rel):
                    continue
                if not self._path_in_index(conn, rel):
                    try:
                        (self.root / rel).unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        log.warning("cannot remove the replaced copy %s: %s", rel, exc)
        for job, replaced in zip(batch, results):
            try:
                if job.callback is not None:
                    job.callback(job.payload, replaced)
            except Exception:  # noqa: BLE001 - a listener's callback must not stop the indexer
                log.exception("error in an archive indexing callback")
            if job.future is not None:
                job.future.set_result(replaced)
        return []

    @staticmethod
    def _path_in_index(conn: sqlite3.Connection, rel: str) -> bool:
        return conn.execute("SELECT 1 FROM instances WHERE path = ?", (rel,)).fetchone() is not None

    @staticmethod
    def _upsert(conn: sqlite3.Connection, stored: StoredInstance) -> tuple[bool, str | None, list[tuple[str, str]]]:
        """Insert or update one instance and its parents. Returns (replaced, old path, the
        ("series" | "study" | "patient", key) parents it moved away from)."""
        i = stored.info
        old = conn.execute(
            "SELECT i.path, i.series_uid, s.study_uid, st.patient_key FROM instances i "
            "LEFT JOIN series s ON s.series_uid = i.series_uid LEFT JOIN studies st ON st.study_uid = s.study_uid "
            "WHERE i.sop_instance_uid = ?", (i.sop_instance_uid,)).fetchone()
        old_study = conn.execute("SELECT patient_key FROM studies WHERE study_uid = ?", (i.study_uid,)).fetchone()
        old_series = conn.execute("SELECT study_uid FROM series WHERE series_uid = ?", (i.series_uid,)).fetchone()
        conn.execute(
            "INSERT INTO patients (patient_key, patient_id, issuer, patient_name, birth_date, sex) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(patient_key) DO UPDATE SET "
            "patient_name = COALESCE(NULLIF(excluded.patient_name, ''), patient_name), "
            "birth_date = COALESCE(NULLIF(excluded.birth_date, ''), birth_date), "
            "sex = COALESCE(NULLIF(excluded.sex, ''), sex)",
            (i.patient_key, i.patient_id, i.issuer, i.patient_name, i.birth_date, i.sex))
        conn.execute(
            "INSERT INTO studies (study_uid, patient_key, study_date, study_time, accession_number, study_id, "
            "description, referring_physician, charset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(study_uid) DO UPDATE SET patient_key = excluded.patient_key, "
            "study_date = COALESCE(NULLIF(excluded.study_date, ''), study_date), "
            "study_time = COALESCE(NULLIF(excluded.study_time, ''), study_time), "
            "accession_number = COALESCE(NULLIF(excluded.accession_number, ''), accession_number), "
            "study_id = COALESCE(NULLIF(excluded.study_id, ''), study_id), "
            "description = COALESCE(NULLIF(excluded.description, ''), description), "
            "referring_physician = COALESCE(NULLIF(excluded.referring_physician, ''), referring_physician), "
            "charset = COALESCE(NULLIF(excluded.charset, ''), charset)",
            (i.study_uid, i.patient_key, i.study_date, i.study_time, i.accession_number, i.study_id,
             i.study_description, i.referring_physician, i.charset))
        conn.execute(
            "INSERT INTO series (series_uid, study_uid, modality, series_number, description, series_date, body_part) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(series_uid) DO UPDATE SET study_uid = excluded.study_uid, "
            "modality = COALESCE(NULLIF(excluded.modality, ''), modality), "
            "series_number = COALESCE(excluded.series_number, series_number), "
            "description = COALESCE(NULLIF(excluded.description, ''), description), "
            "series_date = COALESCE(NULLIF(excluded.series_date, ''), series_date), "
            "body_part = COALESCE(NULLIF(excluded.body_part, ''), body_part)",
            (i.series_uid, i.study_uid, i.modality, i.series_number, i.series_description, i.series_date,
             i.body_part))
        conn.execute(
            "INSERT INTO instances (sop_instance_uid, series_uid, sop_class_uid, transfer_syntax_uid, "
            "instance_number, rows, columns, frames, path, size, mtime_ns, received_at, source_ae) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sop_instance_uid) DO UPDATE SET "
            "series_uid = excluded.series_uid, sop_class_uid = excluded.sop_class_uid, "
            "transfer_syntax_uid = excluded.transfer_syntax_uid, instance_number = excluded.instance_number, "
            "rows = excluded.rows, columns = excluded.columns, frames = excluded.frames, path = excluded.path, "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, received_at = excluded.received_at, "
            "source_ae = excluded.source_ae",
            (i.sop_instance_uid, i.series_uid, i.sop_class_uid, stored.transfer_syntax_uid, i.instance_number,
             i.rows, i.columns, i.frames, stored.relative_path, stored.size, stored.mtime_ns, stored.received_at,
             stored.source_ae))
        moved: list[tuple[str, str]] = []
        if old is not None and old[1] != i.series_uid:
            moved.append(("series", old[1]))
        if old_series is not None and old_series[0] != i.study_uid:
            moved.append(("study", old_series[0]))
        if old_study is not None and old_study[0] != i.patient_key:
            moved.append(("patient", old_study[0]))
        return old is not None, (old[0] if old is not None else None), moved

    @staticmethod
    def _prune(conn: sqlite3.Connection, moved: Iterable[tuple[str, str]]) -> None:
        """Drop series, studies and patients that lost their last child."""
        series = {key for kind, key in moved if kind == "series"}
        studies = {key for kind, key in moved if kind == "study"}
        patients = {key for kind, key in moved if kind == "patient"}
        for uid in series:
            row = conn.execute("SELECT study_uid FROM series WHERE series_uid = ?", (uid,)).fetchone()
            if row and not conn.execute("SELECT 1 FROM instances WHERE series_uid = ? LIMIT 1", (uid,)).fetchone():
                conn.execute("DELETE FROM series WHERE series_uid = ?", (uid,))
                studies.add(row[0])
        for uid in studies:
            row = conn.execute("SELECT patient_key FROM studies WHERE study_uid = ?", (uid,)).fetchone()
            if row and not conn.execute("SELECT 1 FROM series WHERE study_uid = ? LIMIT 1", (uid,)).fetchone():
                conn.execute("DELETE FROM studies WHERE study_uid = ?", (uid,))
                patients.add(row[0])
        for key in patients:
            if not conn.execute("SELECT 1 FROM studies WHERE patient_key = ? LIMIT 1", (key,)).fetchone():
                conn.execute("DELETE FROM patients WHERE patient_key = ?", (key,))

    @staticmethod
    def _prune_all(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.series_uid = series.series_uid)")
        conn.execute("DELETE FROM studies WHERE NOT EXISTS (SELECT 1 FROM series s WHERE s.study_uid = studies.study_uid)")
        conn.execute("DELETE FROM patients WHERE NOT EXISTS "
                     "(SELECT 1 FROM studies st WHERE st.patient_key = patients.patient_key)")

    # ---- maintenance

    def _scan(self) -> tuple[dict[str, os.stat_result], list[Path]]:
        """Our files under the root (study/series/instance.dcm) and leftover temporary files."""
        files: dict[str, os.stat_result] = {}
        temps: list[Path] = []
        for study in _dirs(self.root):
            for series in _dirs(Path(study.path)):
                with os.scandir(series.path) as entries:
                    for entry in entries:
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        if entry.name.startswith(TEMP_PREFIX):
                            temps.append(Path(entry.path))
                        elif entry.name.endswith(SUFFIX):
                            files[f"{study.name}/{series.name}/{entry.name}"] = entry.stat(follow_symlinks=False)
        return files, temps

    def read_stored(self, rel: str, stat: os.stat_result | None = None) -> StoredInstance:
        """Read an archived file's header back into a StoredInstance (for repair and rebuild)."""
        path = self.root / rel
        with open(path, "rb") as handle:
            prefix = handle.read(1 << 16)
            transfer_syntax, offset, meta = split_part10(prefix)
            handle.seek(offset)
            header = parse_dataset(handle, transfer_syntax)
        info = InstanceInfo.from_dataset(header, meta.get(0x0002, ""), meta.get(0x0003, ""))
        stat = stat or path.stat()
        return StoredInstance(info=info, relative_path=rel, path=path, size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                              transfer_syntax_uid=transfer_syntax, received_at=stat.st_mtime,
                              source_ae=meta.get(0x0016, ""))

    def _reconcile(self, conn: sqlite3.Connection, *, trust_rows: bool, remove_temp: bool) -> RepairReport:
        """Make the index agree with the files. With `trust_rows`, rows whose file still has the
        recorded size and time are kept without reading the file; otherwise every file is read."""
        report = RepairReport()
        files, temps = self._scan()
        if remove_temp:
            for tmp in temps:
                try:
                    tmp.unlink()
                    report.temp_files_removed += 1
                except OSError as exc:
                    log.warning("cannot remove the temporary file %s: %s", tmp, exc)
        rows = {path: (uid, size, mtime) for uid, path, size, mtime in
                conn.execute("SELECT sop_instance_uid, path, size, mtime_ns FROM instances")}
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not trust_rows:
                conn.execute("DELETE FROM instances")
                report.rows_removed = 0
                rows_kept: dict[str, tuple[str, int, int]] = {}
            else:
                rows_kept = {}
                for path, (uid, size, mtime) in rows.items():
                    stat = files.get(path)
                    if stat is None:
                        conn.execute("DELETE FROM instances WHERE path = ?", (path,))
                        report.rows_removed += 1
                    elif stat.st_size == size and stat.st_mtime_ns == mtime:
                        rows_kept[path] = (uid, size, mtime)
            # Read the files the index does not vouch for.
            candidates: dict[str, list[StoredInstance]] = {}
            for rel, stat in files.items():
                if rel in rows_kept:
                    continue
                with self._paths_lock:
                    if self._pending_paths.get(rel):
                        continue  # being written right now: its own index job follows
                try:
                    stored = self.read_stored(rel, stat)
                except (OSError, MalformedDataset) as exc:
                    report.unreadable.append(f"{rel}: {exc}")
                    continue
                candidates.setdefault(stored.info.sop_instance_uid, []).append(stored)
            kept_by_uid = {uid: path for path, (uid, _, _) in rows_kept.items()}
            for uid, copies in candidates.items():
                copies.sort(key=lambda s: s.mtime_ns)
                newest = copies[-1]
                losers = [c.relative_path for c in copies[:-1]]
                old = kept_by_uid.get(uid)
                if old is not None and old != newest.relative_path:
                    old_stat = files[old]
                    if old_stat.st_mtime_ns > newest.mtime_ns:  # the indexed copy is the newer one
                        losers = [c.relative_path for c in copies]
                        newest = None  # type: ignore[assignment]
                    else:
                        losers.append(old)
                if newest is not None:
                    self._upsert(conn, newest)
                    report.indexed += 1
                for rel in losers:
                    conn.execute("DELETE FROM instances WHERE path = ?", (rel,))
                    try:
                        (self.root / rel).unlink()
                        report.duplicates_removed += 1
                    except OSError:
                        pass
            self._prune_all(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for problem in report.unreadable:
            log.warning("archive file not indexed: %s", problem)
        if report.changed and remove_temp:
            log.warning("archive %s repaired: %d temporary files removed, %d files indexed, %d rows without "
                        "a file dropped, %d superseded copies removed", self.root, report.temp_files_removed,
                        report.indexed, report.rows_removed, report.duplicates_removed)
        return report

    def repair(self, timeout: float | None = 600.0) -> RepairReport:
        """Make the index agree with the files (rows re-read only where the file changed)."""
        self._require_writable()
        return self._call(lambda conn: self._reconcile(conn, trust_rows=True, remove_temp=False), timeout)

    def rebuild(self, timeout: float | None = 3600.0) -> RepairReport:
        """Make the index again by reading every file."""
        self._require_writable()
        return self._call(lambda conn: self._reconcile(conn, trust_rows=False, remove_temp=False), timeout)

    def verify(self, *, deep: bool = False) -> VerifyReport:
        """Check that index and files agree: every row's file exists with its size, every file is
        indexed, no temporary file is left, SQLite's own check passes. With `deep`, every file is
        read and its UIDs compared with its row."""
        self.flush()
        report = VerifyReport()
        files, temps = self._scan()
        report.files = len(files)
        with self._read_lock:
            integrity = self._reader.execute("PRAGMA integrity_check").fetchone()[0]
            rows = self._reader.execute(
                "SELECT i.sop_instance_uid, i.path, i.size, i.series_uid, s.study_uid FROM instances i "
                "LEFT JOIN series s ON s.series_uid = i.series_uid").fetchall()
            orphans = self._reader.execute(
                "SELECT (SELECT COUNT(*) FROM series WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE "
                "i.series_uid = series.series_uid)) + (SELECT COUNT(*) FROM studies WHERE NOT EXISTS (SELECT 1 FROM "
                "series s WHERE s.study_uid = studies.study_uid))").fetchone()[0]
        report.rows = len(rows)
        if integrity != "ok":
            report.problems.append(f"SQLite integrity check: {integrity}")
        if orphans:
            report.problems.append(f"{orphans} series or studies without instances")
        indexed = set()
        for uid, rel, size, series_uid, study_uid in rows:
            indexed.add(rel)
            stat = files.get(rel)
            if study_uid is None:
                report.problems.append(f"{rel}: its series is not in the index")
            if stat is None:
                report.problems.append(f"{rel}: indexed but the file is missing")
                continue
            if stat.st_size != size:
                report.problems.append(f"{rel}: size {stat.st_size} on disk, {size} in the index")
            if deep:
                try:
                    stored = self.read_stored(rel, stat)
                except (OSError, MalformedDataset) as exc:
                    report.problems.append(f"{rel}: unreadable ({exc})")
                    continue
                i = stored.info
                if (i.sop_instance_uid, i.series_uid, i.study_uid) != (uid, series_uid, study_uid):
                    report.problems.append(f"{rel}: the file's UIDs differ from its row")
        for rel in sorted(set(files) - indexed):
            with self._paths_lock:
                if self._pending_paths.get(rel):
                    continue
            report.problems.append(f"{rel}: a file the index does not list")
        if not self.readonly:
            for tmp in temps:
                report.problems.append(f"{tmp.relative_to(self.root)}: a temporary file left by an interrupted write")
        return report

    # ---- reading

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self._closed:
            raise ArchiveError(f"the archive {self.root} is closed")
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    def counts(self) -> dict[str, int]:
        row = self._query("SELECT (SELECT COUNT(*) FROM patients), (SELECT COUNT(*) FROM studies), "
                          "(SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances), "
                          "(SELECT COALESCE(SUM(size), 0) FROM instances)")[0]
        return dict(zip(("patients", "studies", "series", "instances", "bytes"), row))

    def has_instance(self, sop_instance_uid: str) -> bool:
        return bool(self._query("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)))

    def patients(self) -> list[PatientRow]:
        rows = self._query(
            "SELECT p.patient_key, p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex, "
            "(SELECT COUNT(*) FROM studies st WHERE st.patient_key = p.patient_key) FROM patients p "
            "ORDER BY p.patient_name, p.patient_id")
        return [PatientRow(*row) for row in rows]

    def studies(self, patient_key: str | None = None) -> list[StudyRow]:
        where, params = ("WHERE st.patient_key = ?", (patient_key,)) if patient_key is not None else ("", ())
        rows = self._query(
            "SELECT st.study_uid, st.patient_key, p.patient_id, p.patient_name, p.birth_date, p.sex, st.study_date, "
            "st.study_time, st.accession_number, st.study_id, st.description, st.referring_physician, "
            "(SELECT GROUP_CONCAT(DISTINCT s.modality) FROM series s WHERE s.study_uid = st.study_uid), "
            "(SELECT COUNT(*) FROM series s WHERE s.study_uid = st.study_uid), "
            "(SELECT COUNT(*) FROM instances i JOIN series s ON s.series_uid = i.series_uid "
            " WHERE s.study_uid = st.study_uid), "
            "(SELECT COALESCE(SUM(i.size), 0) FROM instances i JOIN series s ON s.series_uid = i.series_uid "
            " WHERE s.study_uid = st.study_uid) "
            f"FROM studies st LEFT JOIN patients p ON p.patient_key = st.patient_key {where} "
            "ORDER BY st.study_date DESC, st.study_time DESC", params)
        out = []
        for row in rows:
            values = list(row)
            values[2:6] = [v or "" for v in values[2:6]]
            values[12] = tuple(sorted(m for m in (values[12] or "").split(",") if m))
            out.append(StudyRow(*values))
        return out

    def series(self, study_uid: str) -> list[SeriesRow]:
        rows = self._query(
            "SELECT s.series_uid, s.study_uid, s.modality, s.series_number, s.description, s.body_part, "
            "(SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid), "
            "(SELECT COALESCE(SUM(i.size), 0) FROM instances i WHERE i.series_uid = s.series_uid) "
            "FROM series s WHERE s.study_uid = ? ORDER BY s.series_number, s.series_uid", (study_uid,))
        return [SeriesRow(*row) for row in rows]

    _INSTANCE_COLUMNS = (
        "SELECT i.sop_instance_uid, i.series_uid, s.study_uid, i.sop_class_uid, i.transfer_syntax_uid, "
        "i.instance_number, i.rows, i.columns, i.frames, i.path, i.size, i.received_at, i.source_ae "
        "FROM instances i JOIN series s ON s.series_uid = i.series_uid ")

    def _instance_row(self, row: tuple) -> InstanceRow:
        values = list(row)
        values[9] = self.root / PurePosixPath(values[9])
        return InstanceRow(*values)

    def instances(self, series_uid: str | None = None, *, study_uid: str | None = None) -> list[InstanceRow]:
        if series_uid is not None:
            where, params = "WHERE i.series_uid = ?", (series_uid,)
        elif study_uid is not None:
            where, params = "WHERE s.study_uid = ?", (study_uid,)
        else:
            where, params = "", ()
        rows = self._query(self._INSTANCE_COLUMNS + where + " ORDER BY s.study_uid, i.series_uid, "
                           "i.instance_number, i.sop_instance_uid", params)
        return [self._instance_row(row) for row in rows]

    def instance(self, sop_instance_uid: str) -> InstanceRow | None:
        rows = self._query(self._INSTANCE_COLUMNS + "WHERE i.sop_instance_uid = ?", (sop_instance_uid,))
        return self._instance_row(rows[0]) if rows else None

    def path_of(self, sop_instance_uid: str) -> Path | None:
        row = self.instance(sop_instance_uid)
        return row.path if row else None


def _dirs(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except FileNotFoundError:
        return []


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "Archive",
    "InstanceInfo",
    "InstanceRow",
    "MalformedDataset",
    "PatientRow",
    "RepairReport",
    "SeriesRow",
    "StoredInstance",
    "StudyRow",
    "VerifyReport",
    "default_archive_dir",
    "parse_dataset",
    "relative_path",
    "safe_name",
    "split_part10",
]
