"""The SQLite index: its rows as records, its schema, how it is opened, and all its SQL (what the
indexer writes, what maintenance changes, what a browser reads)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import ArchiveError
from .counts import add_counts
from .part10 import StoredInstance
from .paths import SCHEMA_VERSION

log = logging.getLogger(__name__)


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


SCHEMA = """
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


def connect(path: Path, *, readonly: bool = False, check_same_thread: bool = True) -> sqlite3.Connection:
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



# --------------------------------------------------------------------------------------------
# The meta table: schema version, and whether the archive was closed cleanly


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def create_schema(conn: sqlite3.Connection, new: bool) -> None:
    """Create the tables that are missing; a `new` index also gets its version and is clean. An
    index of schema 1 gets the counts of schema 2 (core.archive.counts)."""
    conn.executescript(SCHEMA)
    version = get_meta(conn, "schema_version")
    if new or (version is not None and version.isdigit() and int(version) < 2):
        conn.execute("BEGIN IMMEDIATE")
        try:
            add_counts(conn)
            set_meta(conn, "schema_version", str(SCHEMA_VERSION))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if new:
        set_meta(conn, "clean", "1")


def check_schema(conn: sqlite3.Connection, index_path: Path) -> None:
    version = get_meta(conn, "schema_version")
    if version is None or not version.isdigit() or int(version) > SCHEMA_VERSION:
        raise ArchiveError(f"the archive index {index_path} has schema version {version!r}; "
                           f"this pacsbrowser reads up to {SCHEMA_VERSION}")


# --------------------------------------------------------------------------------------------
# Writing rows (on the indexer thread, or in maintenance, inside the caller's transaction)


# ("series" | "study" | "patient", key): a parent an instance moved away from
Moved = tuple[str, str]


def upsert(conn: sqlite3.Connection, stored: StoredInstance) -> tuple[bool, str | None, list[Moved]]:
    """Insert or update one instance and its parents. Returns (replaced, old path, the parents it
    moved away from)."""
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
    moved: list[Moved] = []
    if old is not None and old[1] != i.series_uid:
        moved.append(("series", old[1]))
    if old_series is not None and old_series[0] != i.study_uid:
        moved.append(("study", old_series[0]))
    if old_study is not None and old_study[0] != i.patient_key:
        moved.append(("patient", old_study[0]))
    return old is not None, (old[0] if old is not None else None), moved


def prune(conn: sqlite3.Connection, moved: Iterable[Moved]) -> None:
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


def prune_all(conn: sqlite3.Connection) -> None:
    """Drop every series, study and patient without children."""
    conn.execute("DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.series_uid = series.series_uid)")
    conn.execute("DELETE FROM studies WHERE NOT EXISTS (SELECT 1 FROM series s WHERE s.study_uid = studies.study_uid)")
    conn.execute("DELETE FROM patients WHERE NOT EXISTS "
                 "(SELECT 1 FROM studies st WHERE st.patient_key = patients.patient_key)")


def path_in_index(conn: sqlite3.Connection, rel: str) -> bool:
    return conn.execute("SELECT 1 FROM instances WHERE path = ?", (rel,)).fetchone() is not None


def instance_files(conn: sqlite3.Connection) -> dict[str, tuple[str, int, int]]:
    """{relative path: (SOP Instance UID, size, mtime_ns)} of every instance row."""
    return {path: (uid, size, mtime) for uid, path, size, mtime in
            conn.execute("SELECT sop_instance_uid, path, size, mtime_ns FROM instances")}


def delete_instances(conn: sqlite3.Connection, path: str | None = None) -> None:
    """Delete the row of the file at `path`, or every instance row when `path` is None."""
    if path is None:
        conn.execute("DELETE FROM instances")
    else:
        conn.execute("DELETE FROM instances WHERE path = ?", (path,))


# --------------------------------------------------------------------------------------------
# Reading (any thread, on one shared connection that sees committed data)


def _upper(value: str | None) -> str | None:
    return value.upper() if isinstance(value, str) else value


class IndexReader:
    """The queries a browser, the CLI and `verify` make, on the connection `conn` (shared
    between threads under `lock`); paths come back absolute, under `root`."""

    _INSTANCE_COLUMNS = (
        "SELECT i.sop_instance_uid, i.series_uid, s.study_uid, i.sop_class_uid, i.transfer_syntax_uid, "
        "i.instance_number, i.rows, i.columns, i.frames, i.path, i.size, i.received_at, i.source_ae "
        "FROM instances i JOIN series s ON s.series_uid = i.series_uid ")

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock, root: Path) -> None:
        self.conn, self.lock, self.root = conn, lock, root
        self.closed = False
        # Unicode-aware upper case (SQLite's upper() knows ASCII only): person names match in any case.
        conn.create_function("pb_upper", 1, _upper, deterministic=True)

    def close(self) -> None:
        """Refuse further queries (at once) and close the connection (once no query runs)."""
        self.closed = True
        with self.lock:
            self.conn.close()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.lock:
            if self.closed:
                raise ArchiveError(f"the archive {self.root} is closed")
            return self.conn.execute(sql, params).fetchall()

    def counts(self) -> dict[str, int]:
        row = self.query("SELECT (SELECT COUNT(*) FROM patients), (SELECT COUNT(*) FROM studies), "
                         "(SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances), "
                         "(SELECT COALESCE(SUM(size), 0) FROM instances)")[0]
        return dict(zip(("patients", "studies", "series", "instances", "bytes"), row))

    def has_instance(self, sop_instance_uid: str) -> bool:
        return bool(self.query("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)))

    def patients(self) -> list[PatientRow]:
        rows = self.query(
            "SELECT p.patient_key, p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex, "
            "(SELECT COUNT(*) FROM studies st WHERE st.patient_key = p.patient_key) FROM patients p "
            "ORDER BY p.patient_name, p.patient_id")
        return [PatientRow(*row) for row in rows]

    def studies(self, patient_key: str | None = None) -> list[StudyRow]:
        where, params = ("WHERE st.patient_key = ?", (patient_key,)) if patient_key is not None else ("", ())
        rows = self.query(
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

    def holds_any(self, study_uid: str, series_uid: str = "") -> bool:
        """Whether the index lists any instance of the study (of the series, with `series_uid`)."""
        if series_uid:
            return bool(self.query("SELECT 1 FROM instances WHERE series_uid = ? LIMIT 1", (series_uid,)))
        return bool(self.query("SELECT 1 FROM series WHERE study_uid = ? LIMIT 1", (study_uid,)))

    def series(self, study_uid: str) -> list[SeriesRow]:
        rows = self.query(
            "SELECT s.series_uid, s.study_uid, s.modality, s.series_number, s.description, s.body_part, "
            "(SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid), "
            "(SELECT COALESCE(SUM(i.size), 0) FROM instances i WHERE i.series_uid = s.series_uid) "
            "FROM series s WHERE s.study_uid = ? ORDER BY s.series_number, s.series_uid", (study_uid,))
        return [SeriesRow(*row) for row in rows]

    def _instance_row(self, row: tuple) -> InstanceRow:
        values = list(row)
        values[9] = self.root / PurePosixPath(values[9])
        return InstanceRow(*values)

    def instances(self, series_uid: str | None = None, *, study_uid: str | None = None) -> list[InstanceRow]:
        params: tuple[str, ...]
        if series_uid is not None:
            where, params = "WHERE i.series_uid = ?", (series_uid,)
        elif study_uid is not None:
            where, params = "WHERE s.study_uid = ?", (study_uid,)
        else:
            where, params = "", ()
        rows = self.query(self._INSTANCE_COLUMNS + where + " ORDER BY s.study_uid, i.series_uid, "
                          "i.instance_number, i.sop_instance_uid", params)
        return [self._instance_row(row) for row in rows]

    def instance(self, sop_instance_uid: str) -> InstanceRow | None:
        rows = self.query(self._INSTANCE_COLUMNS + "WHERE i.sop_instance_uid = ?", (sop_instance_uid,))
        return self._instance_row(rows[0]) if rows else None

    def integrity(self) -> str:
        """SQLite's own check: "ok" or what is wrong."""
        return str(self.query("PRAGMA integrity_check")[0][0])

    def instance_parents(self) -> list[tuple[str, str, int, str, str | None]]:
        """(SOP Instance UID, relative path, size, series UID, study UID or None) of every instance."""
        return self.query("SELECT i.sop_instance_uid, i.path, i.size, i.series_uid, s.study_uid FROM instances i "
                          "LEFT JOIN series s ON s.series_uid = i.series_uid")

    def childless(self) -> int:
        """How many series and studies have no instance."""
        return int(self.query(
            "SELECT (SELECT COUNT(*) FROM series WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE "
            "i.series_uid = series.series_uid)) + (SELECT COUNT(*) FROM studies WHERE NOT EXISTS (SELECT 1 FROM "
            "series s WHERE s.study_uid = studies.study_uid))")[0][0])
