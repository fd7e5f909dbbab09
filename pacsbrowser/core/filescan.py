"""Which of the files and folders a user points at (a drop, an import) are DICOM files we can use.

`scan_paths` walks folders, reads each file's header and checks it is whole (core.dicom's file
reading, the same a send uses), and sorts every file into good, not DICOM, or damaged (with the
reason in words). Blocking: run it on a worker thread; `stop` ends it early.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import dicomfiles

_PREAMBLE_MAGIC = slice(128, 132)


@dataclass(frozen=True)
class Unusable:
    path: Path
    reason: str
    damaged: bool  # True: a DICOM file that is damaged or unreadable; False: not DICOM at all
    size: int = 0


@dataclass
class FileScan:
    """Good DICOM files (in the order found) with their total size, and the files that are not."""

    files: list[Path] = field(default_factory=list)
    bytes: int = 0
    unusable: list[Unusable] = field(default_factory=list)
    stopped: bool = False

    @property
    def not_dicom(self) -> list[Unusable]:
        return [u for u in self.unusable if not u.damaged]

    @property
    def damaged(self) -> list[Unusable]:
        return [u for u in self.unusable if u.damaged]


def _looks_like_part10(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[_PREAMBLE_MAGIC] == b"DICM"
    except OSError:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def scan_paths(paths: Iterable[Path | str], *, stop: threading.Event | None = None,
               on_file: Callable[[int], None] | None = None) -> FileScan:
    """Sort the files under `paths` (files or folders, walked recursively). `on_file(n)` is told
    how many files were looked at so far (for a progress line)."""
    scan = FileScan()
    seen = 0
    for name, source, problem in dicomfiles.iter_sources([Path(p) for p in paths]):
        if stop is not None and stop.is_set():
            scan.stopped = True
            break
        seen += 1
        if on_file is not None:
            on_file(seen)
        path = Path(source)
        if problem:
            scan.unusable.append(Unusable(path, problem, damaged=True))
            continue
        try:
            item = dicomfiles.read_header(name, path)
            dicomfiles.check_file(item)
        except dicomfiles.Unsendable as exc:
            size = _size(path)
            scan.unusable.append(Unusable(path, str(exc), damaged=size > 0 and _looks_like_part10(path), size=size))
            continue
        scan.files.append(path)
        scan.bytes += item.size
    return scan
