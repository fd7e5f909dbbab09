"""The query cases the lab data answers, shared by the C-FIND tests against the peers
(tests/query/test_peers.py) and the same cases over QIDO-RS (tests/web/test_qido.py): the keys,
and what the generated data says they must find."""

from __future__ import annotations

from typing import Any

from pacsbrowser.core.records import QueryKeys

from .data import Catalog

STUDY_CASES = [
    "name wildcard", "lower-case name", "family, given", "patient id", "date range", "open range from",
    "open range to", "modality", "two modalities", "accession", "description", "everything",
]


def study_case(lab_data: Catalog, case: str) -> tuple[QueryKeys, list[Any]]:
    """The keys of a study case of STUDY_CASES and the lab studies they must find."""
    smiths = [s for s in lab_data.studies if s.patient_name.startswith("SMITH^")]
    return {
        "name wildcard": (QueryKeys.studies(patient_name="SMITH*"), smiths),
        "lower-case name": (QueryKeys.studies(patient_name="smith"), smiths),
        "family, given": (QueryKeys.studies(patient_name="smith, john"), lab_data.studies_of("LAB0001")),
        "patient id": (QueryKeys.studies(patient_id="LAB0001"), lab_data.studies_of("LAB0001")),
        "date range": (QueryKeys.studies(study_date="20150101-20191231"),
                       lab_data.studies_between("20150101", "20191231")),
        "open range from": (QueryKeys.studies(study_date="20200101-"), lab_data.studies_between("20200101")),
        "open range to": (QueryKeys.studies(study_date="-20161231"), lab_data.studies_between("", "20161231")),
        "modality": (QueryKeys.studies(modalities="CT"), [s for s in lab_data.studies if "CT" in s.modalities]),
        "two modalities": (QueryKeys.studies(modalities=["CR", "US"]),
                           [s for s in lab_data.studies if {"CR", "US"} & set(s.modalities)]),
        "accession": (QueryKeys.studies(accession_number="ACC2019002"), [lab_data.study_by_accession("ACC2019002")]),
        "description": (QueryKeys.studies(study_description="chest"),
                        [s for s in lab_data.studies if "CHEST" in s.description]),
        "everything": (QueryKeys.studies(), list(lab_data.studies)),
    }[case]


# (keys, the patient IDs they must find)
PATIENT_CASES = [
    (QueryKeys.patients(), {"LAB0001", "LAB0002", "LAB0003", "LAB0004", "LAB0005", "LAB0006"}),
    (QueryKeys.patients(patient_name="smith"), {"LAB0001", "LAB0002"}),
    (QueryKeys.patients(patient_name="SMITH*"), {"LAB0001", "LAB0002"}),
    (QueryKeys.patients(patient_name="o'neil"), {"LAB0006"}),
    (QueryKeys.patients(patient_id="LAB0003"), {"LAB0003"}),
    (QueryKeys.patients(birth_date="19600101-19801231"), {"LAB0002", "LAB0004", "LAB0005"}),
    (QueryKeys.patients(birth_date="-19591231"), {"LAB0001"}),
]

GERMAN_NAME_TYPED = ["müller", "Müller", "MÜLLER", "Müller^Jürgen", "müller, jürgen"]  # finds LAB0004
JAPANESE_NAME_TYPED = ["山田", "山田^太郎", "yamada", "Yamada^Tarou"]  # finds LAB0005

# (referring physician as typed, the accession numbers it must find)
PHYSICIAN_CASES = [("cuddy", {"ACC2024003", "ACC2025007"}), ("schäfer", {"ACC2020008"}), ("鈴木", {"ACC2021009"})]
