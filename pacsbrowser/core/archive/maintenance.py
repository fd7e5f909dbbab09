"""Keeping the index true to the files: scan the folders, repair or rebuild the index from them,
verify that both agree. The index is a cache of the files; the files are the archive."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from . import index
from .incoming import clear_leftovers
from .index import IndexReader, RepairReport, VerifyReport
from .part10 import (
    InstanceInfo,
    MalformedDataset,
    StoredInstance,
    parse_dataset,
    split_part10,
)
from .paths import INDEX_NAME, SUFFIX, TEMP_PREFIX
from .writer import PendingPaths

log = logging.getLogger(__name__)


def _dirs(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except FileNotFoundError:
        return []


def has_data_folders(root: Path) -> bool:
    return any(entry.is_dir() and not entry.name.startswith(".") for entry in os.scandir(root))


def move_index_aside(index_path: Path) -> Path:
    """Rename a damaged index (and its -wal and -shm) out of the way; where it went."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = index_path.with_name(f"{INDEX_NAME}.damaged-{stamp}")
    os.replace(index_path, aside)
    for suffix in ("-wal", "-shm"):
        extra = index_path.with_name(INDEX_NAME + suffix)
        if extra.exists():
            os.replace(extra, aside.with_name(aside.name + suffix))
    return aside


class Maintenance:
    """Scan, repair, rebuild and verify the archive at `root`; files in `pending` (being written,
    their indexing queued) are left to their own index job."""

    def __init__(self, root: Path, pending: PendingPaths) -> None:
        self.root, self.pending = root, pending

    def scan(self) -> tuple[dict[str, os.stat_result], list[Path]]:
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

    def reconcile(self, conn: sqlite3.Connection, *, trust_rows: bool, remove_temp: bool) -> RepairReport:
        """Make the index agree with the files. With `trust_rows` (repair), rows whose file still
        has the recorded size and time are kept without reading the file; otherwise (rebuild) every
        file is read. With `remove_temp` (at opening), temporary files of interrupted writes go."""
        report = RepairReport()
        files, temps = self.scan()
        if remove_temp:
            clear_leftovers(self.root)  # empty files made ahead (core.archive.incoming), not interrupted writes
            for tmp in temps:
                try:
                    tmp.unlink()
                    report.temp_files_removed += 1
                except OSError as exc:
                    log.warning("cannot remove the temporary file %s: %s", tmp, exc)
        rows = index.instance_files(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows_kept = self._keep_rows(conn, rows, files, report) if trust_rows else self._drop_rows(conn)
            candidates = self._read_unvouched(files, rows_kept, report)
            self._index_newest(conn, candidates, rows_kept, files, report)
            index.prune_all(conn)
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

    @staticmethod
    def _drop_rows(conn: sqlite3.Connection) -> dict[str, tuple[str, int, int]]:
        index.delete_instances(conn)
        return {}

    @staticmethod
    def _keep_rows(conn: sqlite3.Connection, rows: dict[str, tuple[str, int, int]],
                   files: dict[str, os.stat_result], report: RepairReport) -> dict[str, tuple[str, int, int]]:
        """Drop the rows whose file is gone; the rows whose file is as recorded."""
        kept = {}
        for path, (uid, size, mtime) in rows.items():
            stat = files.get(path)
            if stat is None:
                index.delete_instances(conn, path)
                report.rows_removed += 1
            elif stat.st_size == size and stat.st_mtime_ns == mtime:
                kept[path] = (uid, size, mtime)
        return kept

    def _read_unvouched(self, files: dict[str, os.stat_result], rows_kept: dict[str, tuple[str, int, int]],
                        report: RepairReport) -> dict[str, list[StoredInstance]]:
        """Read the files the index does not vouch for: {SOP Instance UID: its copies}."""
        candidates: dict[str, list[StoredInstance]] = {}
        for rel, stat in files.items():
            if rel in rows_kept or self.pending.busy(rel):  # being written: its own index job follows
                continue
            try:
                stored = self.read_stored(rel, stat)
            except (OSError, MalformedDataset) as exc:
                report.unreadable.append(f"{rel}: {exc}")
                continue
            candidates.setdefault(stored.info.sop_instance_uid, []).append(stored)
        return candidates

    def _index_newest(self, conn: sqlite3.Connection, candidates: dict[str, list[StoredInstance]],
                      rows_kept: dict[str, tuple[str, int, int]], files: dict[str, os.stat_result],
                      report: RepairReport) -> None:
        """Index the newest copy of each instance; remove the others (one row, one file)."""
        kept_by_uid = {uid: path for path, (uid, _, _) in rows_kept.items()}
        for uid, copies in candidates.items():
            copies.sort(key=lambda s: s.mtime_ns)
            newest: StoredInstance | None = copies[-1]
            losers = [c.relative_path for c in copies[:-1]]
            old = kept_by_uid.get(uid)
            if old is not None and newest is not None and old != newest.relative_path:
                if files[old].st_mtime_ns > newest.mtime_ns:  # the indexed copy is the newer one
                    losers = [c.relative_path for c in copies]
                    newest = None
                else:
                    losers.append(old)
            if newest is not None:
                index.upsert(conn, newest)
                report.indexed += 1
            for rel in losers:
                index.delete_instances(conn, rel)
                try:
                    (self.root / rel).unlink()
                    report.duplicates_removed += 1
                except OSError:
                    pass

    def verify(self, reader: IndexReader, *, deep: bool, readonly: bool) -> VerifyReport:
        """Check that index and files agree (see Archive.verify)."""
        report = VerifyReport()
        files, temps = self.scan()
        report.files = len(files)
        integrity = reader.integrity()
        rows = reader.instance_parents()
        childless = reader.childless()
        report.rows = len(rows)
        if integrity != "ok":
            report.problems.append(f"SQLite integrity check: {integrity}")
        if childless:
            report.problems.append(f"{childless} series or studies without instances")
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
            if not self.pending.busy(rel):
                report.problems.append(f"{rel}: a file the index does not list")
        if not readonly:
            for tmp in temps:
                report.problems.append(f"{tmp.relative_to(self.root)}: a temporary file left by an interrupted write")
        return report
