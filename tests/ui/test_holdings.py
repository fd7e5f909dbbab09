"""Counting what the local archive holds of result rows (the worker-thread half of the marks)."""

from __future__ import annotations

from pacsbrowser.ui.controllers.holdings import count_held
from pacsbrowser.ui.models.holdings import Held, Holding


def test_counts_by_study_series_and_instance_one_query_or_many(lab_data, archive):
    study = next(s for s in lab_data.studies if s.series_count == 2)
    first, second = lab_data.series_of(study.uid)
    for instance in lab_data.instances_of_series(first.uid):
        archive.import_file(instance.path)
    archive.flush()
    absent = lab_data.instances_of_series(second.uid)[0]
    wanted = [(study.uid, "", ""), (study.uid, first.uid, ""), (study.uid, second.uid, ""),
              (study.uid, second.uid, absent.sop_instance_uid),
              (study.uid, first.uid, lab_data.instances_of_series(first.uid)[0].sop_instance_uid)]
    expected = [first.instance_count, first.instance_count, 0, 0, 1]
    assert [count_held(archive, wanted)[w] for w in wanted] == expected
    others = [(s.uid, "", "") for s in lab_data.studies if s.uid != study.uid]
    many = wanted + others * 3  # more than 20 study rows: one query for all studies
    counted = count_held(archive, many)
    assert [counted[w] for w in wanted] == expected and all(counted[w] == 0 for w in others)


def test_states_and_words():
    assert Holding(0, 12).state is Held.NONE and Holding(0, 12).text == "Not on this computer (0 of 12 images)"
    assert Holding(5, 12).state is Held.PARTIAL and "5 of 12" in Holding(5, 12).text
    assert Holding(12, 12).state is Held.FULL and Holding(12, 12).text == "On this computer: all 12 images"
    assert Holding(3, None).state is Held.PARTIAL and "did not say" in Holding(3, None).text
    assert Holding(3, None, complete_known=True).state is Held.FULL
