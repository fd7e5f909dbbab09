"""Fixtures for the imaging tests (core.imaging, core.thumbcache, core.thumbnails, the CLI).

    samples         dict[name, Sample]: tests/imaging/samples.py's files, made once per session
    pydicom_files   the sample files pydicom ships that are present offline (never downloaded)
    workdir         a temporary folder of ours, removed after the test

Every test here checks that it leaves no thread, child process or temporary file of ours behind.
The comparison with DCMTK prints its per-file table in the terminal summary.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import reference
from .samples import Sample, make_samples


@pytest.fixture(scope="session")
def _session_dir() -> Iterator[Path]:
    """Everything these tests write lives under here; removed at the end of the session."""
    path = Path(tempfile.mkdtemp(prefix="pacsbrowser-imaging-"))
    (path / "work").mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_leftovers(_session_dir: Path) -> Iterator[None]:
    """No temporary file of ours outlives its test (threads and processes: the root conftest)."""
    work = _session_dir / "work"
    yield
    assert not list(work.iterdir()), f"temporary files left behind: {list(work.iterdir())}"


@pytest.fixture
def workdir(_session_dir: Path) -> Iterator[Path]:
    """A temporary folder for one test, removed after it (the session's folder is checked)."""
    path = Path(tempfile.mkdtemp(prefix="test-", dir=_session_dir / "work"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def samples(_session_dir: Path) -> dict[str, Sample]:
    return make_samples(_session_dir / "samples")


def local_pydicom_files() -> list[Path]:
    """pydicom's own test files that this install has on disk (get_testdata_file with
    download=False: the network is closed, and nothing is fetched)."""
    from pydicom.data import get_testdata_file
    from pydicom.data.data_manager import DATA_ROOT

    names = sorted(p.name for p in (Path(DATA_ROOT) / "test_files").glob("*.dcm"))
    found = []
    for name in names:
        path = get_testdata_file(name, download=False)
        if path:
            found.append(Path(path))
    return found


@pytest.fixture(scope="session")
def pydicom_files() -> list[Path]:
    return local_pydicom_files()


def pytest_terminal_summary(terminalreporter) -> None:
    lines = reference.table()
    if lines:
        terminalreporter.section("thumbnails vs DCMTK (mean absolute difference per pixel, 0..255)")
        for line in lines:
            terminalreporter.write_line(line)
