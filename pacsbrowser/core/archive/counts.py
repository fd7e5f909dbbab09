"""Counts the index keeps up to date itself (schema 2): per series its instances; per study its
series, its instances and its modalities. SQLite triggers maintain them on every insert, delete and
move of a row, whoever writes (the indexer, maintenance, a deletion), so that a study-level query
over many studies reads them instead of counting (core.archive.query).

An index of schema 1 gets the columns, the triggers and its counts on its first writable open
(`add_counts`); one opened read-only is answered by counting (`has_counts` says which).
"""

from __future__ import annotations

import sqlite3

COLUMNS = (
    ("series", "instance_count", "INTEGER NOT NULL DEFAULT 0"),
    ("studies", "series_count", "INTEGER NOT NULL DEFAULT 0"),
    ("studies", "instance_count", "INTEGER NOT NULL DEFAULT 0"),
    ("studies", "modalities", "TEXT NOT NULL DEFAULT ''"),  # sorted, comma-separated
)


def _modalities(study: str) -> str:
    return (f"UPDATE studies SET modalities = COALESCE((SELECT GROUP_CONCAT(m, ',') FROM (SELECT DISTINCT "
            f"modality AS m FROM series WHERE study_uid = {study} AND modality != '' ORDER BY m)), '') "
            f"WHERE study_uid = {study};")


TRIGGERS = f"""
CREATE TRIGGER IF NOT EXISTS count_instance_added AFTER INSERT ON instances BEGIN
    UPDATE series SET instance_count = instance_count + 1 WHERE series_uid = new.series_uid;
END;
CREATE TRIGGER IF NOT EXISTS count_instance_removed AFTER DELETE ON instances BEGIN
    UPDATE series SET instance_count = instance_count - 1 WHERE series_uid = old.series_uid;
END;
CREATE TRIGGER IF NOT EXISTS count_instance_moved AFTER UPDATE OF series_uid ON instances
WHEN old.series_uid IS NOT new.series_uid BEGIN
    UPDATE series SET instance_count = instance_count - 1 WHERE series_uid = old.series_uid;
    UPDATE series SET instance_count = instance_count + 1 WHERE series_uid = new.series_uid;
END;
CREATE TRIGGER IF NOT EXISTS count_series_instances AFTER UPDATE OF instance_count ON series
WHEN old.study_uid IS new.study_uid BEGIN
    UPDATE studies SET instance_count = instance_count + new.instance_count - old.instance_count
    WHERE study_uid = new.study_uid;
END;
CREATE TRIGGER IF NOT EXISTS count_series_added AFTER INSERT ON series BEGIN
    UPDATE studies SET series_count = series_count + 1, instance_count = instance_count + new.instance_count
    WHERE study_uid = new.study_uid;
    {_modalities("new.study_uid")}
END;
CREATE TRIGGER IF NOT EXISTS count_series_removed AFTER DELETE ON series BEGIN
    UPDATE studies SET series_count = series_count - 1, instance_count = instance_count - old.instance_count
    WHERE study_uid = old.study_uid;
    {_modalities("old.study_uid")}
END;
CREATE TRIGGER IF NOT EXISTS count_series_moved AFTER UPDATE OF study_uid ON series
WHEN old.study_uid IS NOT new.study_uid BEGIN
    UPDATE studies SET series_count = series_count - 1, instance_count = instance_count - old.instance_count
    WHERE study_uid = old.study_uid;
    UPDATE studies SET series_count = series_count + 1, instance_count = instance_count + new.instance_count
    WHERE study_uid = new.study_uid;
    {_modalities("old.study_uid")}
    {_modalities("new.study_uid")}
END;
CREATE TRIGGER IF NOT EXISTS count_series_modality AFTER UPDATE OF modality ON series
WHEN old.modality IS NOT new.modality AND old.study_uid IS new.study_uid BEGIN
    {_modalities("new.study_uid")}
END;
"""

RECOUNT = f"""
UPDATE series SET instance_count = (SELECT COUNT(*) FROM instances i WHERE i.series_uid = series.series_uid);
UPDATE studies SET
    series_count = (SELECT COUNT(*) FROM series s WHERE s.study_uid = studies.study_uid),
    instance_count = (SELECT COALESCE(SUM(s.instance_count), 0) FROM series s WHERE s.study_uid = studies.study_uid);
{_modalities("studies.study_uid")}
"""


def has_counts(conn: sqlite3.Connection) -> bool:
    return "modalities" in {row[1] for row in conn.execute("PRAGMA table_info(studies)")}


def add_counts(conn: sqlite3.Connection) -> None:
    """Give the index its count columns and triggers (what is missing), and count once. In one
    transaction with the caller's other changes when one is open."""
    for table, column, kind in COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    for statement in TRIGGERS.split("END;"):
        if statement.strip():
            conn.execute(statement + "END;")
    for statement in RECOUNT.split(";"):
        if statement.strip():
            conn.execute(statement)


__all__ = ["COLUMNS", "add_counts", "has_counts"]
