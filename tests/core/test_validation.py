"""core.validation: whatever comes in, a valid value or InvalidInput naming the field and the rule."""

from __future__ import annotations

import math
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pacsbrowser.core import validation as v
from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import QueryKeys, ServerProfile

FIELD = "--the-flag"

# Every check with the arguments it needs beyond (value, field).
CHECKS = {
    "port": (v.port, ()), "timeout": (v.timeout, ()), "retries": (v.retries, ()),
    "count": (v.count, (1, 1000)), "size": (v.size, (1e6,)), "whole_number": (v.whole_number, (-5, 5)),
    "real_number": (v.real_number, (0.0, 10.0)), "ae_title": (v.ae_title, ()), "uid": (v.uid, ()),
    "uid_list": (v.uid_list, ()), "dicom_date": (v.dicom_date, ()), "date_range": (v.date_range, ()),
    "time_range": (v.time_range, ()), "text_key": (v.text_key, (16,)), "code_list": (v.code_list, ()),
    "charset": (v.charset, ()), "query_key": (v.query_key, ()), "name": (v.name, ()), "host": (v.host, ()),
    "readable_file": (v.readable_file, ()), "readable_path": (v.readable_path, ()),
    "directory": (v.directory, ()),
}

# Text that reaches the interesting branches more often than uniform unicode does.
inputs = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.", max_size=80),
    st.text(alphabet=string.printable, max_size=30),
    st.from_regex(r"[+-]?\d{0,6}(\.\d{0,3})?([eE][+-]?\d{1,3})?", fullmatch=True),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "", " ", "\x00", "today", "last 7 days", "2024-02-29",
                     "20240101-", "-20240101", "PatientSex=F", "00100040=F", "ISO_IR 192", "localhost", "::1"]),
)


def _valid(name: str, result: object) -> None:
    """What each check promises about a value it returns."""
    if name == "port":
        assert isinstance(result, int) and 1 <= result <= 65535
    elif name == "timeout":
        assert isinstance(result, float) and math.isfinite(result) and 0 < result <= v.MAX_TIMEOUT
    elif name == "retries":
        assert isinstance(result, int) and 0 <= result <= 100
    elif name == "count":
        assert isinstance(result, int) and 1 <= result <= 1000
    elif name == "ae_title":
        assert isinstance(result, str) and 1 <= len(result) <= 16 and "\\" not in result
        assert result == result.strip() and all(0x20 <= ord(c) < 0x7F for c in result)
    elif name == "uid":
        assert isinstance(result, str) and len(result) <= 64
        assert re.fullmatch(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*", result)
    elif name == "uid_list":
        assert all(len(u) <= 64 and re.fullmatch(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*", u) for u in result.split("\\"))
    elif name == "dicom_date":
        assert re.fullmatch(r"\d{8}", result)
    elif name == "date_range":
        assert re.fullmatch(r"(\d{8})?(-(\d{8})?)?", result)
    elif name == "text_key":
        assert len(result) <= 16 and "\\" not in result
    elif name in ("readable_file", "readable_path", "directory"):
        assert isinstance(result, Path)


@pytest.mark.parametrize("name", sorted(CHECKS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=inputs)
@example(text="")
@example(text="\x00")
def test_any_text_gives_a_valid_value_or_one_error(name, text):
    check, args = CHECKS[name]
    try:
        result = check(text, FIELD, *args)
    except v.InvalidInput as exc:
        assert exc.field == FIELD and exc.rule
        message = str(exc)
        assert message.startswith(f"{FIELD}: ") and "\n" not in message and "\x00" not in message
        assert len(message) < 300
        return
    _valid(name, result)


@given(keys=st.builds(
    QueryKeys.studies, patient_id=st.text(max_size=70), accession_number=st.text(max_size=20),
    birth_date=st.text(max_size=20), study_instance_uid=st.text(alphabet="0123456789.*\\", max_size=70)))
@settings(max_examples=300, deadline=None)
def test_query_keys_are_valid_or_one_error(keys):
    try:
        assert v.query_keys(keys) is keys
    except v.InvalidInput as exc:
        assert exc.field and exc.rule and "\n" not in str(exc)


@pytest.mark.parametrize("check, value, words", [
    (v.port, "0", "from 1 to 65535"), (v.port, 70000, "from 1 to 65535"),
    (v.ae_title, "A\\B", "backslash"), (v.ae_title, "A" * 17, "longer than 16"),
    (v.uid, "not a uid!", "only digits and dots"), (v.uid, "1.02", "leading zero"), (v.uid, "1" * 65, "at most 64"),
    (v.uid, "1.2.*", "wildcards"), (v.timeout, "-1", "more than 0"), (v.timeout, float("nan"), "finite"),
    (v.retries, -1, "from 0 to 100"), (v.date_range, "20241301", "month 13"), (v.date_range, "2024*", "wildcards"),
    (v.time_range, "2500", "not a time"), (v.charset, "UTF-8", "not a DICOM character set"),
    (v.query_key, "Colour=red", "not a DICOM keyword"), (v.host, "a b", "no spaces"),
])
def test_rules_in_words(check, value, words):
    with pytest.raises(v.InvalidInput, match=re.escape(words)):
        check(value, FIELD)


def test_paths(tmp_path):
    (tmp_path / "f").write_text("x")
    assert v.readable_file(str(tmp_path / "f")) == tmp_path / "f"
    for value, words in ((tmp_path / "nope", "does not exist"), (tmp_path, "is a folder"),
                         (tmp_path / "f" / "x", "does not exist")):
        with pytest.raises(v.InvalidInput, match=words):
            v.readable_file(value, FIELD)
    assert v.directory(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    with pytest.raises(v.InvalidInput, match="is a file"):
        v.directory(tmp_path / "f" / "sub", FIELD)


def test_query_keys_follow_the_level():
    v.query_keys(QueryKeys.studies(study_instance_uid="1.2\\1.3"))  # a list at its own level
    with pytest.raises(v.InvalidInput, match="one UID here"):
        v.query_keys(QueryKeys.series("1.2\\1.3"))
    with pytest.raises(v.InvalidInput, match="--study-uid: .*wildcards"):
        v.query_keys(QueryKeys.series("1.2.*"), {"study_instance_uid": "--study-uid"})
    with pytest.raises(v.InvalidInput, match="Patient ID: contains a backslash") as caught:
        v.query_keys(QueryKeys.studies(patient_id="SECRET\\ID"))
    assert "SECRET" not in str(caught.value)  # patient data is not repeated


def test_profiles_go_through_the_same_checks():
    with pytest.raises(v.InvalidInput, match="port"):
        ServerProfile(name="x", host="h", port=0, called_ae="A")
    with pytest.raises(v.InvalidInput, match="timeout"):
        ServerProfile(name="x", host="h", port=1, called_ae="A").timeouts.__class__(connect=-1)
    with pytest.raises(v.InvalidInput, match="query character set"):
        ServerProfile(name="x", host="h", port=1, called_ae="A", query_charset="UTF-8")


def test_damaged_profiles_file_is_read_as_far_as_it_can_be(tmp_path):
    store = ProfileStore(tmp_path)
    good = ServerProfile(name="good", host="h", port=104, called_ae="A")
    store.save([good, ServerProfile(name="bad", host="h", port=105, called_ae="B")])
    text = store.path.read_text().replace("port = 105", "port = 105x")
    store.path.write_text(text)
    with pytest.raises(Exception, match="line"):
        store.load()  # the command line's strict way
    report = store.load_readable()
    line = text.splitlines().index("port = 105x") + 1
    assert report.profiles == [good]
    assert len(report.problems) == 1 and report.problems[0].startswith(f"line {line}:")
    assert report.backup is not None and report.backup.read_text() == text
    assert store.load_readable().backup == report.backup  # one copy per content


def test_inline_profiles_and_a_missing_schema(tmp_path):
    store = ProfileStore(tmp_path)
    store.path.write_text('profiles = [\n  { name = "a", host = "h", port = 1, called_ae = "A" },\n'
                          '  { name = "b", host = "h", port = , called_ae = "B" },\n]\n')
    report = store.load_readable()
    assert [p.name for p in report.profiles] == ["a"]
    assert any(p.startswith("line 3:") for p in report.problems), report.problems
