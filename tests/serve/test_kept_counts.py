"""The counts the index keeps by triggers (core.archive.counts) equal counting, through stores,
replacements that move an instance to another series and study, repairs and rebuilds; an index of
schema 1 gets them on its first writable open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pacsbrowser.core.archive import Archive, index
from tests.archive.helpers import make_dataset, save

COUNTED = """
SELECT st.study_uid, st.series_count, st.instance_count, st.modalities,
       (SELECT COUNT(*) FROM series s WHERE s.study_uid = st.study_uid),
       (SELECT COUNT(*) FROM series s JOIN instances i ON i.series_uid = s.series_uid WHERE s.study_uid = st.study_uid),
       COALESCE((SELECT GROUP_CONCAT(m, ',') FROM (SELECT DISTINCT modality AS m FROM series s
                 WHERE s.study_uid = st.study_uid AND modality != '' ORDER BY m)), '')
FROM studies st
"""


def assert_counts_true(root: Path) -> int:
    conn = sqlite3.connect(str(root / "index.sqlite"))
    try:
        rows = conn.execute(COUNTED).fetchall()
        for uid, series, instances, modalities, real_series, real_instances, real_modalities in rows:
            assert (series, instances, modalities) == (real_series, real_instances, real_modalities), uid
        wrong = conn.execute("SELECT COUNT(*) FROM series s WHERE s.instance_count != "
                             "(SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid)").fetchone()[0]
        assert wrong == 0
        return len(rows)
    finally:
        conn.close()


def _store(archive: Archive, ds) -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    archive.store(fp.getvalue(), str(ds.file_meta.TransferSyntaxUID))


def test_counts_follow_every_change(workdir: Path) -> None:
    root = workdir / "archive"
    with Archive(root, durable=False) as archive:
        for n in range(6):
            ds = make_dataset("1.2.9.1", f"1.2.9.1.{n % 2}", f"1.2.9.1.{n % 2}.{n}")
            if n % 2:
                ds.Modality = "MR"
            _store(archive, ds)
        for n in range(3):
            _store(archive, make_dataset("1.2.9.2", "1.2.9.2.0", f"1.2.9.2.0.{n}"))
        archive.flush()
        assert assert_counts_true(root) == 2
        # the same SOP Instance UID again, now in another series of another study: it moves
        _store(archive, make_dataset("1.2.9.2", "1.2.9.2.0", "1.2.9.1.1.1"))
        archive.flush()
        assert assert_counts_true(root) == 2
        assert {s.study_uid: s.instance_count for s in archive.studies()} == {"1.2.9.1": 5, "1.2.9.2": 4}
        archive.rebuild()
        assert assert_counts_true(root) == 2
        (root / "1.2.9.2" / "1.2.9.2.0" / "1.2.9.2.0.0.dcm").unlink()
        archive.repair()
        assert assert_counts_true(root) == 2


def test_an_index_of_schema_1_gets_its_counts(workdir: Path) -> None:
    root = workdir / "archive"
    files = [save(make_dataset("1.2.8.1", "1.2.8.1.1", f"1.2.8.1.1.{n}"), workdir / f"in{n}.dcm") for n in range(4)]
    with Archive(root, durable=False) as archive:
        for path in files:
            archive.import_file(path)
    old = workdir / "old"
    old.mkdir()
    conn = sqlite3.connect(str(old / "index.sqlite"))
    conn.executescript(index.SCHEMA)  # the tables of schema 1, without the counts
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('clean', '1')")
    source = sqlite3.connect(str(root / "index.sqlite"))
    for table, columns in (("patients", "*"), ("studies", "study_uid, patient_key, study_date, study_time, "
                           "accession_number, study_id, description, referring_physician, charset"),
                           ("series", "series_uid, study_uid, modality, series_number, description, series_date, "
                           "body_part"), ("instances", "*")):
        rows = source.execute(f"SELECT {columns} FROM {table}").fetchall()
        if rows:
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.commit()
    conn.close()
    source.close()
    for path in root.iterdir():
        if path.is_dir():
            path.rename(old / path.name)
    with Archive(old, durable=False) as archive:
        assert archive.counts()["instances"] == 4
    check = sqlite3.connect(str(old / "index.sqlite"))
    assert index.get_meta(check, "schema_version") == "2"
    check.close()
    assert assert_counts_true(old) == 1
