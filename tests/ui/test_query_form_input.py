"""The query form checks its date, UID and ID fields as they are typed: the rule shows next to the
field and Search stays disabled while one is invalid. No network: nothing is sent."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from pacsbrowser.ui.widgets.query_form import QueryForm


@pytest.fixture
def form(qtbot):
    form = QueryForm()
    qtbot.addWidget(form)
    form.show()
    return form


@pytest.mark.parametrize("field, bad, words, good", [
    ("birth_date", "20241301", "month 13 does not exist", "19700101-19801231"),
    ("birth_date", "1970*", "wildcards", "1970"),
    ("study_uid", "1.2.03", "leading zero", "1.2.3"),
    ("study_uid", "not a uid!", "only digits and dots", "1.2.840.10008.1.1\\1.2.3"),
    ("study_uid", "1" * 65, "at most 64", "1" * 64),
    ("patient_id", "ID\\2", "backslash", "ID*"),
    ("patient_id", "X" * 65, "longer than 64", "X" * 64),
    ("accession", "A" * 17, "longer than 16", "A" * 16),
])
def test_rule_shows_next_to_the_field_and_search_waits(form, qtbot, field, bad, words, good):
    edit = getattr(form, field)
    hint = form.hints[field]
    assert form.search_button.isEnabled() and not hint.isVisible()
    with qtbot.assertNotEmitted(form.search_requested):
        qtbot.keyClicks(edit, bad)
        assert hint.isVisible() and words in hint.text(), hint.text()
        assert not form.search_button.isEnabled()
        qtbot.keyClick(edit, Qt.Key.Key_Return)  # Enter does not search either
    if field in ("patient_id", "birth_date"):
        assert bad not in hint.text()  # patient data is not repeated
    edit.setText(good)
    assert not hint.isVisible() and hint.text() == ""
    assert form.search_button.isEnabled()
    with qtbot.waitSignal(form.search_requested, timeout=1000) as sent:
        form.search_button.click()
    assert sent.args[0] is not None


def test_two_broken_fields_both_show_and_search_waits_for_both(form):
    form.birth_date.setText("2024-13-01")
    form.study_uid.setText("1..2")
    assert form.hints["birth_date"].isVisible() and form.hints["study_uid"].isVisible()
    form.birth_date.clear()
    assert not form.search_button.isEnabled()
    form.study_uid.clear()
    assert form.search_button.isEnabled()
    form.grab().save("/tmp/query-form-valid.png")


def test_a_running_search_keeps_search_disabled_until_it_ends_and_fields_are_valid(form):
    form.set_running(True)
    form.patient_id.setText("OK")
    assert not form.search_button.isEnabled()
    form.study_uid.setText("x")
    form.set_running(False)
    assert not form.search_button.isEnabled()
    form.study_uid.setText("1.2")
    assert form.search_button.isEnabled()


def test_fields_the_patient_level_does_not_use_do_not_block_it(form):
    form.study_uid.setText("not a uid")
    assert not form.search_button.isEnabled()
    form.level_patient.setChecked(True)  # the UID field is disabled, so its text does not count
    assert form.search_button.isEnabled()
    form.level_study.setChecked(True)
    assert not form.search_button.isEnabled()


def test_the_look(form):
    form.birth_date.setText("20241301")
    form.study_uid.setText("1.2.03")
    form.resize(1100, 260)
    form.grab().save("/tmp/query-form-invalid.png")
