"""The results table (printed and written to benchmarks/RESULTS.md) and the machine it ran on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from pathlib import Path

from .cases import Row

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["CPU"] = f"{model or platform.processor() or 'unknown'}, {os.cpu_count()} cores"
    try:
        mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
        info["Memory"] = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    info["OS"] = f"{_os_name()} (kernel {platform.release()})"
    info["Python"] = platform.python_version()
    from importlib.metadata import version

    for package in ("pynetdicom", "pydicom", "numpy", "PySide6-Essentials", "qasync"):
        try:
            info[package] = version(package)
        except Exception:  # noqa: BLE001 - a package not installed is shown as "?"
            info[package] = "?"
    info["DCMTK"] = _tool_version(["/usr/bin/echoscu", "--version"], r"v(\d+\.\d+\.\d+)")
    info["Orthanc"] = _tool_version(["/usr/sbin/Orthanc", "--version"], r"Orthanc (\d+\.\d+\.\d+)")
    return info


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _tool_version(command: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "not found"
    match = re.search(pattern, out)
    return match.group(1) if match else "?"


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f} s" if value < 10 else f"{value:.2f} s"


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f}" if kb else "—"


def _cpu(values: list[float]) -> str:
    if not values:
        return "—"
    values = sorted(values)
    return f"{values[len(values) // 2]:.2f}"


def _ratio(row: Row) -> str:
    if row.missing:
        return "not measured"
    r = row.ratio
    return f"{r:.2f}x" if r is not None else "—"


HEADER = ["case", "ours", "DCMTK", "ours/DCMTK", "ours peak RSS MB", "DCMTK peak RSS MB", "ours CPU s",
          "DCMTK CPU s", "DCMTK side"]


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for row in rows:
        if row.missing:
            out.append([row.label, "—", "—", "not measured", "—", "—", "—", "—", row.dcmtk_label])
            continue
        out.append([
            row.label, _value(row.ours_median, row.unit), _value(row.dcmtk_median, row.unit), _ratio(row),
            _mb(row.ours_rss_kb), _mb(row.dcmtk_rss_kb), _cpu(row.ours_cpu), _cpu(row.dcmtk_cpu), row.dcmtk_label,
        ])
    return out


def text_table(rows: list[Row]) -> str:
    body = table_rows(rows)
    widths = [max(len(HEADER[i]), *(len(r[i]) for r in body)) for i in range(len(HEADER))]
    line = "  ".join("-" * w for w in widths)

    def fmt(cells) -> str:
        return "  ".join(c.ljust(w) if i in (0, 8) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(HEADER), line, *map(fmt, body)])


def markdown(rows: list[Row], info: dict[str, str], *, reps: int, warmup: int, wall: float,
             setup: dict[str, float], notes: list[str]) -> str:
    body = table_rows(rows)
    out = [
        "# Benchmarks: pacsbrowser against DCMTK",
        "",
        f"Written by `make bench` (`python -m benchmarks`) on {dt.datetime.now():%Y-%m-%d %H:%M}. "
        f"Medians of {reps} repetitions after {warmup} warm-up; each repetition runs both sides, "
        "alternating which goes first. Ratio = ours / DCMTK (lower is better, 1.00x = as fast as DCMTK).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * 7 + ["---"]) + "|",
        *("| " + " | ".join(cells) + " |" for cells in body),
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        "",
        "## How it was measured",
        "",
        "- Peers: Orthanc (5,000 studies: 4,999 of one 8x8 image, one of 500 CT images 256x256x16 bit in two "
        "series, 64 MB; `StorageAccessOnFind: Never`, `MaximumPduLength` 16384 as Orthanc ships), "
        "dcmqrscp (500 of the tiny studies: DCMTK 3.6.7 caps a storage area at 500 studies, "
        "`DB_UpperMaxStudies` in dcmqrdbi.h, a compile-time constant that the configuration's maxStudies "
        "cannot raise; past it dcmqridx crashes) and DCMTK storescp (`+B`, `-pdu 131072`), all on 127.0.0.1 "
        "under the lab's LD_PRELOAD loopback shim with `TCP_NODELAY=1`.",
        "- Repetitions: as above; thumbnails 3 (500 dcmj2pnm processes take ~14 s a repetition).",
        "- Ours: the core API the application uses (DICOMClient, VerificationService, QueryService, "
        "StoreService, ArchiveServer over a fresh Archive, RetrieveService, ThumbnailService; the GUI case "
        "drives MainWindow offscreen under qasync), each case in a fresh worker process on a warm interpreter: "
        "imports and set-up are not timed. DCMTK: the tool's whole process, exec to exit, as a user runs it.",
        "- Peak RSS: ours = the high-water mark (VmHWM) of the worker process that ran only that case; it "
        "includes the interpreter and its libraries (~55-60 MB with pydicom, pynetdicom and numpy, ~150 MB "
        "with Qt). DCMTK = the largest ru_maxrss of its processes, from wait4 in a small launcher "
        "(benchmarks/measure_exec.c, so that the harness's own size is not inherited through fork), or "
        "VmHWM of the long-running storescp for the receiving cases.",
        "- CPU: user + system seconds of one repetition (median) of our worker process and of the DCMTK "
        "process(es); the peers' own CPU is not counted, except storescp's when it is the receiver (move, "
        "receive). For thumbnails, ours includes the render processes.",
        "- The GUI stall row has no DCMTK counterpart (no GUI): its value is absolute; the row above it compares "
        "the time until the 5,000th row is in the tree with findscu's time to its last response.",
        "",
        "## Notes",
        "",
        *(f"- {n}" for n in notes),
        *(f"- {row.label}: {row.note}" for row in rows if row.note),
        *(f"- {row.label}: NOT MEASURED: {row.missing}" for row in rows if row.missing),
        "",
        *_ab_section(),
        *_kept_sections(),
        "## Set-up and wall time",
        "",
        *(f"- {what}: {seconds:.1f} s" for what, seconds in setup.items()),
        f"- whole run: {wall:.0f} s",
        "",
    ]
    return "\n".join(out)


def _kept_sections() -> list[str]:
    """The figures measured by other commands (RESULTS-bundle.md, RESULTS-window.md...): each file's
    text under a heading of its own, so that a `make bench` run keeps them."""
    out: list[str] = []
    for path in sorted(RESULTS.parent.glob("RESULTS-*.md")):
        if path.name == "RESULTS-ab.md":
            continue
        text = path.read_text().strip()
        if text.startswith("# "):
            text = "#" + text  # one level down: a section of RESULTS.md
        out += [text, f"(from {path.name})", ""]
    return out


def _ab_section() -> list[str]:
    """The last `python -m benchmarks.ab` results, when there are some."""
    path = RESULTS.with_name("RESULTS-ab.md")
    try:
        text = path.read_text()
    except OSError:
        return []
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    return ["## Before/after of the core change (from RESULTS-ab.md, `python -m benchmarks.ab`)", "",
            body.strip(), "",
            "C-FIND associations keep pynetdicom's polling (core/dicom/responsive.py explains why: the "
            "window's stall), so the find row changes nothing by construction.", ""]
