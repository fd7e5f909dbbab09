"""Deleting studies and series from the archive: files first, then their rows.

Runs on the archive's indexer thread (the one writer of the index). A file that cannot be removed
keeps its row, so the index never lists less than the disk holds; a crash half way leaves rows
whose file is gone, which the next start's repair drops.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)


@dataclass
class DeleteReport:
    """What a delete did: instances (files and rows) removed, bytes freed, and files it could not remove."""

    instances: int = 0
    bytes: int = 0
    kept: list[str] = field(default_factory=list)  # "relative path: reason"


def delete_rows_and_files(conn: sqlite3.Connection, root: Path, *, study_uid: str = "", series_uid: str = "",
                          busy: Callable[[str], bool], prune: Callable[[sqlite3.Connection], None]) -> DeleteReport:
    """Remove the files of one study or one series and then their rows; `prune(conn)` drops the
    parents left empty. `busy(rel)` says a write to that path is under way: that file is left alone."""
    if bool(study_uid) == bool(series_uid):
        raise ValueError("give a study UID or a series UID")
    if series_uid:
        rows = conn.execute("SELECT path, size FROM instances WHERE series_uid = ?", (series_uid,)).fetchall()
    else:
        rows = conn.execute("SELECT i.path, i.size FROM instances i JOIN series s ON s.series_uid = i.series_uid "
                            "WHERE s.study_uid = ?", (study_uid,)).fetchall()
    report = DeleteReport()
    removed: list[str] = []
    for rel, size in rows:
        if busy(rel):
            report.kept.append(f"{rel}: being written")
            continue
        try:
            (root / PurePosixPath(rel)).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            report.kept.append(f"{rel}: {exc.strerror or exc}")
            continue
        removed.append(rel)
        report.instances += 1
        report.bytes += size
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("DELETE FROM instances WHERE path = ?", [(rel,) for rel in removed])
        prune(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    _remove_empty_folders(root, {PurePosixPath(rel).parent for rel in removed})
    for problem in report.kept:
        log.warning("archive file not deleted: %s", problem)
    return report


def _remove_empty_folders(root: Path, series_folders: set[PurePosixPath]) -> None:
    """Remove series folders and then study folders left empty (never the root)."""
    studies = set()
    for folder in series_folders:
        studies.add(folder.parent)
        _rmdir_if_empty(root / folder)
    for folder in studies:
        if str(folder) not in ("", "."):
            _rmdir_if_empty(root / folder)


def _rmdir_if_empty(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:  # not empty (another series, a file being written) or gone
        pass
