"""The archive query case: a study-level C-FIND identifier answered from the index of 10,000 studies.

Ours only (no DCMTK tool answers from our index); the rows are inserted straight into the index,
no files. Run alone with `python -m benchmarks.archive_query` (prints the medians), or as the
`archive_query` case of `make bench`.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pydicom.dataset import Dataset

STUDIES = 10_000
SERIES_PER_STUDY = 3
INSTANCES_PER_SERIES = 10
MODALITIES = ("CT", "MR", "CR", "US", "DX", "PT")


def fill_index(root: Path, studies: int = STUDIES, series: int = SERIES_PER_STUDY,
               instances: int = INSTANCES_PER_SERIES) -> None:
    """Create an archive at `root` whose index holds `studies` synthetic studies (no files)."""
    from pacsbrowser.core.archive import Archive

    Archive(root, durable=False).close()
    conn = sqlite3.connect(str(root / "index.sqlite"))
    with conn:
        patients = max(1, studies // 3)
        conn.executemany("INSERT INTO patients (patient_key, patient_id, issuer, patient_name, birth_date, sex) "
                         "VALUES (?, ?, '', ?, ?, ?)",
                         ((f"\\P{p:06d}", f"P{p:06d}", f"NAME{p % 997:03d}^GIVEN{p % 13}", f"19{p % 90 + 10:02d}0101",
                           "MF"[p % 2]) for p in range(patients)))
        conn.executemany(
            "INSERT INTO studies (study_uid, patient_key, study_date, study_time, accession_number, study_id, "
            "description) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((f"1.2.3.{s}", f"\\P{s % patients:06d}", f"{2000 + s % 25}{s % 12 + 1:02d}{s % 28 + 1:02d}",
              f"{s % 24:02d}{s % 60:02d}00", f"ACC{s:07d}", str(s), f"STUDY {s % 50}") for s in range(studies)))
        conn.executemany(
            "INSERT INTO series (series_uid, study_uid, modality, series_number) VALUES (?, ?, ?, ?)",
            ((f"1.2.3.{s}.{k}", f"1.2.3.{s}", MODALITIES[(s + k) % len(MODALITIES)], k + 1)
             for s in range(studies) for k in range(series)))
        conn.executemany(
            "INSERT INTO instances (sop_instance_uid, series_uid, sop_class_uid, transfer_syntax_uid, "
            "instance_number, path, size, received_at) VALUES (?, ?, '1.2.840.10008.5.1.4.1.1.2', "
            "'1.2.840.10008.1.2.1', ?, ?, 1000, 0)",
            ((f"1.2.3.{s}.{k}.{n}", f"1.2.3.{s}.{k}", n + 1, f"{s}/{k}/{n}.dcm")
             for s in range(studies) for k in range(series) for n in range(instances)))
    conn.close()


def study_identifier(**keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate", "StudyTime",
                    "AccessionNumber", "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                    "NumberOfStudyRelatedInstances"):
        setattr(ds, keyword, keys.get(keyword, ""))
    return ds


QUERIES = {
    "every study, with counts": {},
    "a date range": {"StudyDate": "20100101-20121231"},
    "a name prefix, any case": {"PatientName": "name12*"},
    "one accession number": {"AccessionNumber": "ACC0004242"},
}


def measure(root: Path, reps: int = 5) -> dict[str, tuple[float, float, int]]:
    """{query: (median seconds of the SQL, median seconds with the answer Datasets, answers)}."""
    from pacsbrowser.core.archive import Archive
    from pacsbrowser.core.archive.query import ArchiveQuery

    out = {}
    with Archive(root, readonly=True) as archive:
        query = ArchiveQuery(archive)
        for name, keys in QUERIES.items():
            sql, times, count = [], [], 0
            for _ in range(reps + 1):
                started = time.perf_counter()
                query.rows(study_identifier(**keys), "STUDY")
                sql.append(time.perf_counter() - started)
                started = time.perf_counter()
                count = sum(1 for _ in query.find(study_identifier(**keys), "STUDY"))
                times.append(time.perf_counter() - started)
            out[name] = (statistics.median(sql[1:]), statistics.median(times[1:]), count)
    return out


def case_archive_query(ctx: object) -> list:
    from .cases import Row

    reps = int(getattr(ctx, "reps", 5))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fill_index(Path(tmp) / "archive")
        for number, (name, (sql, seconds, count)) in enumerate(measure(Path(tmp) / "archive", reps).items()):
            row = Row(f"archive_query_{number}", f"archive C-FIND over {STUDIES:,} studies: {name} "
                      f"({count} answers, Datasets built)", "—")
            row.ours = [seconds]
            row.note = f"the SQL alone: {sql * 1000:.1f} ms"
            rows.append(row)
    return rows


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "archive"
        started = time.perf_counter()
        fill_index(root)
        print(f"index of {STUDIES} studies, {STUDIES * SERIES_PER_STUDY * INSTANCES_PER_SERIES} instances "
              f"filled in {time.perf_counter() - started:.1f} s")
        for name, (sql, seconds, count) in measure(root).items():
            print(f"{name}: {count} answers; SQL {sql * 1000:.1f} ms, with the answer Datasets "
                  f"{seconds * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
