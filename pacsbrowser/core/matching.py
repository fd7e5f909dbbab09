"""The matching rules: what a user types -> what a query is asked to match (PS3.4 C.2.2.2).

Pure functions of QueryKeys and text, with no network and no pynetdicom: C-FIND (core.query) uses
them, and so can a query of our own archive.

- Person names (patient, referring physician): "Family, Given" becomes "Family^Given"; without a
  `*` or `?` of the user's own, a `*` is appended (prefix match: `smith` finds `SMITH^JOHN` and
  `SMITH^JANE`). Case: DICOM leaves PN case-sensitivity to the PACS (Orthanc ignores case, DCMTK's
  dcmqrscp does not), so the name is sent UPPER-CASE first (the usual way names are stored); when
  that finds nothing the query is repeated as typed and then Capitalised (`Müller`), stopping at the
  first one that finds something. A name in an ideographic script (Chinese, Japanese, Korean) is
  matched anywhere in the value (`*山田*`), since it may be stored in the alphabetic group or after
  `=` in the ideographic one. Patient and referring physician names step through their cases
  together.
- Descriptions: contained anywhere (`*chest*`), upper-cased when typed all in lower case.
- IDs, accession numbers, UIDs: exact, as typed (the user's own wildcards are kept).
- Modalities, sex, body part: upper-case. Several modalities: any of them (ModalitiesInStudy list).
- Dates (study date, birth date): `YYYYMMDD`, `YYYYMMDD-YYYYMMDD`, open ranges `YYYYMMDD-` and
  `-YYYYMMDD`, ISO `YYYY-MM-DD` (ranges with `/` or `..`), `YYYY` or `YYYYMM` (the whole year or
  month), and presets: today, yesterday, last 7 days (today and the 6 days before), last 30 days.
  Presets are resolved when the query is sent.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import replace
from datetime import date, timedelta
from enum import Enum

from .records import QueryKeys

# --------------------------------------------------------------------------------------------
# Dates and times


class DatePreset(str, Enum):
    TODAY = "today"
    YESTERDAY = "yesterday"
    LAST_7_DAYS = "last 7 days"
    LAST_30_DAYS = "last 30 days"

    def range(self, today: date | None = None) -> tuple[date, date]:
        today = today or date.today()
        first = {DatePreset.TODAY: today, DatePreset.YESTERDAY: today - timedelta(days=1),
                 DatePreset.LAST_7_DAYS: today - timedelta(days=6),
                 DatePreset.LAST_30_DAYS: today - timedelta(days=29)}[self]
        last = first if self is DatePreset.YESTERDAY else today
        return first, last

    def dicom(self, today: date | None = None) -> str:
        first, last = self.range(today)
        return _da(first) if first == last else f"{_da(first)}-{_da(last)}"


_PRESET_WORDS = {
    "today": DatePreset.TODAY, "yesterday": DatePreset.YESTERDAY,
    "last7days": DatePreset.LAST_7_DAYS, "7days": DatePreset.LAST_7_DAYS, "7d": DatePreset.LAST_7_DAYS,
    "lastweek": DatePreset.LAST_7_DAYS, "week": DatePreset.LAST_7_DAYS,
    "last30days": DatePreset.LAST_30_DAYS, "30days": DatePreset.LAST_30_DAYS, "30d": DatePreset.LAST_30_DAYS,
    "lastmonth": DatePreset.LAST_30_DAYS, "month": DatePreset.LAST_30_DAYS,
}


def _da(d: date) -> str:
    return d.strftime("%Y%m%d")


def _one_date(text: str, *, end: bool) -> str:
    """One end of a range as YYYYMMDD ('' stays open). YYYY and YYYYMM widen to their first/last day."""
    text = text.strip()
    if not text:
        return ""
    digits = text.replace("-", "").replace(".", "").replace("/", "")
    if not digits.isdigit() or len(digits) not in (4, 6, 8):
        raise ValueError(f"{text!r} is not a date: use YYYYMMDD (or YYYY-MM-DD)")
    year = int(digits[:4])
    if len(digits) == 4:
        return f"{year:04d}1231" if end else f"{year:04d}0101"
    month = int(digits[4:6])
    if not 1 <= month <= 12:
        raise ValueError(f"{text!r} is not a date: month {month} does not exist")
    if len(digits) == 6:
        day = calendar.monthrange(year, month)[1] if end else 1
        return f"{year:04d}{month:02d}{day:02d}"
    try:
        return _da(date(year, month, int(digits[6:8])))
    except ValueError:
        raise ValueError(f"{text!r} is not a date that exists") from None


def date_range(value: str | date | DatePreset | tuple | None, today: date | None = None) -> str:
    """A date key as DICOM range matching: 'YYYYMMDD', 'YYYYMMDD-YYYYMMDD', 'YYYYMMDD-', '-YYYYMMDD'.

    Raises ValueError (in words) for what is not a date, range or preset.
    """
    if value is None:
        return ""
    if isinstance(value, DatePreset):
        return value.dicom(today)
    if isinstance(value, date):
        return _da(value)
    if isinstance(value, tuple):
        low, high = (date_range(v, today) if v is not None else "" for v in value)
        return f"{low}-{high}" if low or high else ""
    text = str(value).strip()
    if not text:
        return ""
    word = re.sub(r"[\s_-]", "", text.lower())
    if word in _PRESET_WORDS:
        return _PRESET_WORDS[word].dicom(today)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # ISO date, not a range
        return _one_date(text, end=False)
    last: str | None
    for separator in ("..", "/"):
        if separator in text:
            first, _, last = text.partition(separator)
            break
    else:
        if text.count("-") == 1:
            first, _, last = text.partition("-")
        elif text.count("-") == 0:
            first, last = text, None
        else:
            raise ValueError(f"{text!r} is not a date range: use YYYYMMDD-YYYYMMDD (either end may be left out)")
    if last is None:
        digits = re.sub(r"\D", "", first)
        if len(digits) == 8:
            return _one_date(first, end=False)
        start, stop = _one_date(first, end=False), _one_date(first, end=True)
        return f"{start}-{stop}"
    start, stop = _one_date(first, end=False), _one_date(last, end=True)
    if not start and not stop:
        raise ValueError("a date range needs at least one end")
    if start and stop and start > stop:
        raise ValueError(f"the range {text!r} ends before it starts")
    return f"{start}-{stop}"


def time_range(value: str) -> str:
    """A time key: 'HHMM', 'HHMMSS', 'HH:MM' and ranges with '-' as DICOM TM range matching."""
    text = (value or "").strip()
    if not text:
        return ""

    def one(t: str) -> str:
        t = t.strip().replace(":", "")
        if t and (not re.fullmatch(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", t) or int(t[:2]) > 23):
            raise ValueError(f"{value!r} is not a time: use HHMM or HHMMSS, or a range HHMM-HHMM")
        return t

    if "-" in text:
        first, _, last = text.partition("-")
        return f"{one(first)}-{one(last)}"
    return one(text)


# --------------------------------------------------------------------------------------------
# Text matching


def has_wildcard(text: str) -> bool:
    """The user typed a wildcard of their own (`*` or `?`)."""
    return "*" in text or "?" in text


def _ideographic(text: str) -> bool:
    for ch in text:
        if ord(ch) < 0x2E80:
            continue
        name = unicodedata.name(ch, "")
        if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC")):
            return True
    return False


def _capitalised(text: str) -> str:
    return "^".join(part.title() if part.islower() or part.isupper() else part for part in text.split("^"))


def name_patterns(typed: str) -> list[str]:
    """The person-name patterns to try, in order (see the module's matching rules)."""
    text = typed.strip()
    if not text:
        return []
    text = re.sub(r"\s*,\s*", "^", text)
    if _ideographic(text) and not has_wildcard(text):
        return [f"*{text}*"]
    if not has_wildcard(text):
        text += "*"
    variants = [text.upper(), text, _capitalised(text)]
    return list(dict.fromkeys(variants))


def contains_pattern(typed: str) -> str:
    text = typed.strip()
    if not text or has_wildcard(text):
        return text
    if not any(ch.isupper() for ch in text):
        text = text.upper()
    return f"*{text}*"


def single_value(text: str) -> bool:
    """One value matched exactly: no wildcard and no list."""
    return bool(text) and not has_wildcard(text) and "\\" not in text


def shape_keys(keys: QueryKeys, today: date | None = None) -> list[QueryKeys]:
    """Apply the matching rules: the keys to send, in the order to try them (more than one when a
    person name may need another case; patient and referring names step through theirs together)."""
    shaped = replace(
        keys,
        birth_date=date_range(keys.birth_date, today),
        study_date=date_range(keys.study_date, today),
        study_time=time_range(keys.study_time),
        study_description=contains_pattern(keys.study_description),
        series_description=contains_pattern(keys.series_description),
        sex=keys.sex.strip().upper(),
        modality=keys.modality.strip().upper(),
        modalities=tuple(m.strip().upper() for m in keys.modalities if m.strip()),
        body_part=keys.body_part.strip().upper(),
    )
    names = name_patterns(keys.patient_name) or [""]
    referring = name_patterns(keys.referring_physician) or [""]
    return [replace(shaped, patient_name=names[min(i, len(names) - 1)],
                    referring_physician=referring[min(i, len(referring) - 1)])
            for i in range(max(len(names), len(referring)))]


__all__ = [
    "DatePreset",
    "contains_pattern",
    "date_range",
    "has_wildcard",
    "name_patterns",
    "shape_keys",
    "single_value",
    "time_range",
]
