"""pacsbrowser find: C-FIND at patient, study, series or instance level.

Rows are printed as the PACS sends them: a readable table (default) or, with --json, one JSON
object per result per line, keyed by DICOM keyword. The summary (count, and whether the answer may
be incomplete) goes to stdout after a table, to stderr with --json. Patient names and IDs are the
data asked for, so they are printed; they reach log lines only with --verbose.

Exit 0 when the find ran (also when --limit cut it short: that is said on stderr); a network or
DIMSE error's own status otherwise; 2 for keys that do not fit the level.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from typing import Any

from pydicom.uid import UID

from ..core.config import ConfigError
from ..core.query import result_json
from ..core.records import (
    InstanceResult,
    PatientResult,
    QueryKeys,
    QueryLevel,
    SeriesResult,
    StudyResult,
)
from ..core.services import query_service
from ..core.validation import InvalidInput, query_keys
from .common import EXIT_OK, EXIT_USAGE, add_connection_options, profile_from_args, run_command
from .inputs import BIRTH_DATE, CODES, DATE_RANGE, QUERY_KEY, UID_LIST, count, text

LEVELS = ("patient", "study", "series", "instance")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "find", help="search a PACS (C-FIND) for patients, studies, series or instances",
        description="Search a PACS. Names match from the start and ignore case (smith finds SMITH^JOHN); "
                    "dates are YYYYMMDD, ranges YYYYMMDD-YYYYMMDD (either end may be left out), or "
                    "today, yesterday, 'last 7 days', 'last 30 days'.")
    parser.add_argument("--level", choices=LEVELS, default="study", help="what to list (default: study)")
    keys = parser.add_argument_group("keys")
    keys.add_argument("--patient-name", metavar="NAME", type=text(200, private=True), help="patient name (prefix; 'family, given' or family^given)")
    keys.add_argument("--patient-id", metavar="ID", type=text(64, private=True), help="patient ID (exact; * and ? are wildcards)")
    keys.add_argument("--birth-date", metavar="DATE", type=BIRTH_DATE, help="birth date or range")
    keys.add_argument("--study-date", metavar="DATE", type=DATE_RANGE, help="study date, range or preset")
    keys.add_argument("--accession", metavar="NUMBER", type=text(16), help="accession number")
    keys.add_argument("--modality", metavar="MOD", action="append", type=CODES,
                      help="modality (study level: any of several, repeat or CT,MR; series level: one)")
    keys.add_argument("--description", metavar="TEXT", type=text(64), help="study (or series) description, contained anywhere")
    keys.add_argument("--study-uid", metavar="UID", type=UID_LIST, help="Study Instance UID (required for series and instances)")
    keys.add_argument("--series-uid", metavar="UID", type=UID_LIST, help="Series Instance UID (required for instances)")
    keys.add_argument("--key", metavar="TAG=VALUE", action="append", default=[], type=QUERY_KEY,
                      help="any other key: keyword or tag (PatientSex=F, 00100040=F); TAG alone asks for "
                           "the value back")
    parser.add_argument("--limit", type=count(1), metavar="N", help="stop after N results (C-CANCEL)")
    parser.add_argument("--json", action="store_true", help="one JSON object per result per line")
    add_connection_options(parser)
    parser.set_defaults(handler=handle)


class UsageError(Exception):
    pass


def keys_from_args(args: argparse.Namespace) -> QueryKeys:
    """QueryKeys for the options given, or UsageError naming the option that does not fit the level."""
    level = QueryLevel.parse(args.level)
    given = {flag: value for flag, value in (
        ("--patient-name", args.patient_name), ("--patient-id", args.patient_id),
        ("--birth-date", args.birth_date), ("--study-date", args.study_date), ("--accession", args.accession),
        ("--modality", args.modality), ("--description", args.description), ("--study-uid", args.study_uid),
        ("--series-uid", args.series_uid)) if value}
    allowed = {
        QueryLevel.PATIENT: {"--patient-name", "--patient-id", "--birth-date"},
        QueryLevel.STUDY: {"--patient-name", "--patient-id", "--birth-date", "--study-date", "--accession",
                           "--modality", "--description", "--study-uid"},
        QueryLevel.SERIES: {"--patient-id", "--modality", "--description", "--study-uid", "--series-uid"},
        QueryLevel.INSTANCE: {"--patient-id", "--study-uid", "--series-uid"},
    }[level]
    wrong = sorted(set(given) - allowed)
    if wrong:
        raise UsageError(f"{', '.join(wrong)} cannot be used with --level {args.level}")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    extra = []
    for item in args.key:
        name, _, value = item.partition("=")
        if not name.strip():
            raise UsageError(f"--key {item!r}: give TAG=VALUE or TAG")
        extra.append((name.strip(), value))
    modalities = [m.strip() for value in (args.modality or []) for m in value.replace("\\", ",").split(",")
                  if m.strip()]
    try:
        return query_keys(_keys(args, level, modalities, extra), FLAG_NAMES)
    except InvalidInput as exc:
        raise UsageError(str(exc)) from None


# QueryKeys attributes -> the flags that set them, for messages
FLAG_NAMES = {"patient_name": "--patient-name", "patient_id": "--patient-id", "birth_date": "--birth-date",
              "study_date": "--study-date", "accession_number": "--accession", "modalities": "--modality",
              "modality": "--modality", "study_description": "--description", "series_description": "--description",
              "study_instance_uid": "--study-uid", "series_instance_uid": "--series-uid"}


def _keys(args: argparse.Namespace, level: QueryLevel, modalities: list[str], extra: list) -> QueryKeys:
    try:
        if level is QueryLevel.PATIENT:
            return QueryKeys.patients(patient_name=args.patient_name or "", patient_id=args.patient_id or "",
                                      birth_date=args.birth_date or "", extra=extra)
        if level is QueryLevel.STUDY:
            return QueryKeys.studies(patient_name=args.patient_name or "", patient_id=args.patient_id or "",
                                     birth_date=args.birth_date or "", study_date=args.study_date or "",
                                     accession_number=args.accession or "", modalities=modalities,
                                     study_description=args.description or "",
                                     study_instance_uid=args.study_uid or "", extra=extra)
        if level is QueryLevel.SERIES:
            if len(modalities) > 1:
                raise UsageError("a series has one modality: give --modality once")
            return QueryKeys.series(args.study_uid or "", modality=(modalities or [""])[0],
                                    series_description=args.description or "",
                                    series_instance_uid=args.series_uid or "", patient_id=args.patient_id or "",
                                    extra=extra)
        return QueryKeys.instances(args.study_uid or "", args.series_uid or "", patient_id=args.patient_id or "",
                                   extra=extra)
    except ValueError as exc:
        raise UsageError(str(exc).replace("Study Instance UID", "--study-uid")
                         .replace("Series Instance UID", "--series-uid")) from exc


# --------------------------------------------------------------------------------------------
# The table


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 0 if unicodedata.combining(ch) else 1
               for ch in text)


def _fit(text: str, width: int | None) -> str:
    text = text.replace("\n", " ").replace("\r", " ")
    if width is None:
        return text
    if _width(text) > width:
        out, used = "", 0
        for ch in text:
            w = _width(ch)
            if used + w > width - 1:
                break
            out, used = out + ch, used + w
        text = out + "…"
    return text + " " * (width - _width(text))


def _date(value: Any) -> str:
    return value.isoformat() if value else ""


def _time(value: Any) -> str:
    return value.strftime("%H:%M") if value else ""


def _n(value: int | None) -> str:
    return "" if value is None else str(value)


# (heading, width or None for the last column, value from a result)
COLUMNS: dict[QueryLevel, list[tuple[str, int | None, Any]]] = {
    QueryLevel.PATIENT: [
        ("Patient ID", 14, lambda r: r.patient_id),
        ("Name", 32, lambda r: r.patient_name.display),
        ("Birth date", 10, lambda r: _date(r.birth_date)),
        ("Sex", 3, lambda r: r.sex),
        ("Studies", None, lambda r: _n(r.number_of_studies)),
    ],
    QueryLevel.STUDY: [
        ("Date", 10, lambda r: _date(r.study_date)),
        ("Time", 5, lambda r: _time(r.study_time)),
        ("Patient ID", 12, lambda r: r.patient_id),
        ("Name", 28, lambda r: r.patient_name.display),
        ("Accession", 12, lambda r: r.accession_number),
        ("Mod", 7, lambda r: "/".join(r.modalities or ())),
        ("Description", 26, lambda r: r.study_description),
        ("Ser", 3, lambda r: _n(r.number_of_series)),
        ("Img", 4, lambda r: _n(r.number_of_instances)),
        ("Study Instance UID", None, lambda r: r.study_instance_uid),
    ],
    QueryLevel.SERIES: [
        ("#", 4, lambda r: _n(r.series_number)),
        ("Mod", 4, lambda r: r.modality),
        ("Description", 28, lambda r: r.series_description),
        ("Body part", 12, lambda r: r.body_part),
        ("Img", 4, lambda r: _n(r.number_of_instances)),
        ("Series Instance UID", None, lambda r: r.series_instance_uid),
    ],
    QueryLevel.INSTANCE: [
        ("#", 5, lambda r: _n(r.instance_number)),
        ("SOP class", 30, lambda r: _sop_class(r.sop_class_uid)),
        ("Frames", 6, lambda r: _n(r.number_of_frames)),
        ("SOP Instance UID", None, lambda r: r.sop_instance_uid),
    ],
}


def _sop_class(uid: str) -> str:
    if not uid:
        return ""
    name = UID(uid).name
    return name.replace(" Storage", "") if name != uid else uid


def table_header(level: QueryLevel) -> str:
    return "  ".join(_fit(heading, width) for heading, width, _ in COLUMNS[level]).rstrip()


def table_row(result: PatientResult | StudyResult | SeriesResult | InstanceResult) -> str:
    cells = []
    for _, width, read in COLUMNS[result.level]:
        try:
            value = str(read(result) or "")
        except Exception:  # noqa: BLE001 - a row is printed whatever a PACS sent
            value = "?"
        cells.append(_fit(value, width))
    return "  ".join(cells).rstrip()


def json_line(result: PatientResult | StudyResult | SeriesResult | InstanceResult) -> str:
    return json.dumps(result_json(result), ensure_ascii=False)


# --------------------------------------------------------------------------------------------


def handle(args: argparse.Namespace) -> int:
    try:
        keys = keys_from_args(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def body() -> int:
        profile = profile_from_args(args)
        service = query_service(profile)  # C-FIND, or QIDO-RS for a DICOMweb profile
        try:
            found = service.find(keys, limit=args.limit)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        out = sys.stdout
        if not args.json:
            out.write(table_header(keys.level) + "\n")
            out.flush()
        try:
            async with found:
                async for batch in found.batches():
                    for result in batch:
                        out.write((json_line(result) if args.json else table_row(result)) + "\n")
                    out.flush()
        finally:
            outcome = found.outcome
            if outcome is not None and args.verbose:
                for number, query in enumerate(outcome.queries, start=1):
                    how = "QIDO-RS" if profile.is_web else \
                        f"{outcome.query_model.value if outcome.query_model else '?'} root"
                    print(f"query {number} sent ({how}):\n  " + query.replace("\n", "\n  "), file=sys.stderr)
        summary = outcome.summary if outcome else ""
        print(summary, file=sys.stderr if args.json else sys.stdout)
        for note in outcome.notes if outcome else ():
            print(f"note: {note}", file=sys.stderr)
        return EXIT_OK

    return run_command(args, body)
