"""The query cases that pass against Orthanc and dcmqrscp (tests/query/test_peers.py), run against
our own SCP serving the lab data: our client's QueryService against our server."""

from __future__ import annotations

import pytest

from tests.query import test_peers as cases

from .conftest import Served

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


@pytest.fixture
def peer(served: Served) -> Served:
    return served


test_study_counts_equal_the_generated_data = cases.test_study_counts_equal_the_generated_data
test_patient_counts_equal_the_generated_data = cases.test_patient_counts_equal_the_generated_data
test_series_and_instances_of_every_study = cases.test_series_and_instances_of_every_study
test_series_filtered_by_modality = cases.test_series_filtered_by_modality
test_a_german_name_is_found_by_a_non_ascii_query_at_every_level = (
    cases.test_a_german_name_is_found_by_a_non_ascii_query_at_every_level)
test_a_japanese_name_is_found_and_shown_with_its_ideographic_group = (
    cases.test_a_japanese_name_is_found_and_shown_with_its_ideographic_group)
test_referring_physician = cases.test_referring_physician
test_a_non_ascii_description_is_found = cases.test_a_non_ascii_description_is_found
test_a_patient_root_profile_queries_studies_of_one_patient_in_patient_root = (
    cases.test_a_patient_root_profile_queries_studies_of_one_patient_in_patient_root)
