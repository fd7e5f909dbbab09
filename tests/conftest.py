"""Shared fixtures: the real-peer DICOM test lab (tests/lab).

Session-scoped, started lazily by the first test that asks:
    lab_data      tests.lab.data.Catalog of the generated files (66 instances, see data.py)
    certs         tests.lab.certs.LabCerts (CA, server, client, expired, wrong host...)
    move_port     int: the port our client's C-MOVE destination (AE "PACSBROWSER") listens on;
                  every Orthanc and dcmqrscp below knows it as 127.0.0.1:move_port
    orthanc       tests.lab.peers.OrthancPeer, plain DICOM, DefaultEncoding Utf8, lab_data loaded
    orthanc_tls   OrthancPeer with DICOM TLS (client certificate required), lab_data loaded
    orthanc_latin1
                  like orthanc, with Orthanc's stock DefaultEncoding Latin1, lab_data loaded
    orthanc_expired_tls, orthanc_notyetvalid_tls, orthanc_wronghost_tls
                  like orthanc_tls but presenting certs.expired_cert / notyetvalid_cert /
                  wronghost_cert; no data loaded
    dcmqrscp      tests.lab.peers.DcmqrscpPeer, lab_data indexed
All session peers are stopped together at the end (SIGTERM; Orthanc needs ~3.5 s to stop).
Tests that store into a session peer should remove what they added (OrthancPeer.delete_uid).

Function-scoped:
    unused_port   int: a free port on 127.0.0.1 (nothing listens: connection refused)
    start_scp(cls, *args, **options) -> cls(*args, **options).start(), shut down after the test
    fault_scp(mode="ok", **options) -> tests.lab.fault_scp.FaultSCP (started)
    workdir       a fresh temporary folder, removed after the test
    archive       an empty Archive in workdir/archive, closed after the test

A peer that cannot start (binary missing, shim not buildable...) fails the tests that need it
with the reason; it never skips them. Every test using a peer is marked `interop` (PEER_FIXTURES).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.certs import LabCerts, make_certs
from tests.lab.data import Catalog, generate
from tests.lab.fault_scp import FaultSCP
from tests.lab.peers import (
    KEEP,
    DcmqrscpPeer,
    LabError,
    OrthancPeer,
    free_port,
    stop_all,
)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication (pytest-qt makes it in a fixture)

# The DICOMweb peers: one of each kind per session, for tests/web and tests/ui alike.
pytest_plugins = ["tests.lab.web_fixtures"]

# Fixtures that start Orthanc or dcmqrscp, or run DCMTK to make their files. A test that uses one,
# directly, through another fixture or by naming it in a parameter (request.getfixturevalue), is
# marked `interop` at collection, so `-m "not interop"` needs no peer and no DCMTK. A test that runs
# a DCMTK tool itself carries the marker by hand.
PEER_FIXTURES = frozenset({
    "orthanc", "orthanc_tls", "orthanc_latin1", "orthanc_expired_tls", "orthanc_notyetvalid_tls",
    "orthanc_wronghost_tls", "dcmqrscp", "orthanc_factory",
    "big_orthanc", "rle_dcmqrscp", "compressed_study",  # tests/retrieve
    "send_orthanc", "send_orthanc_tls", "send_dcmqrscp", "compressed",  # tests/send
    "samples",  # tests/imaging: dcmcjpeg, dcmcjpls, dcmcrle
    "web_orthanc", "web_orthanc_secure", "web_orthanc_mtls", "fresh_web_orthanc", "web_big_orthanc",  # tests/web
})


def _uses_a_peer(item: pytest.Item) -> bool:
    if PEER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(isinstance(value, str) and value in PEER_FIXTURES
                                        for value in callspec.params.values())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_a_peer(item):
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session temp dir for generated data and certificates, removed at the end."""
    path = tmp_path_factory.mktemp("lab")
    yield path
    if not KEEP:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def lab_data(lab_dir: Path) -> Catalog:
    return generate(lab_dir / "data")


@pytest.fixture(scope="session")
def certs(lab_dir: Path) -> LabCerts:
    try:
        return make_certs(lab_dir / "certs")
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"test certificates could not be made: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def move_port() -> int:
    return free_port()


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago (connections are refused)."""
    return free_port()


@pytest.fixture(scope="session")
def _lab_peers() -> Iterator[list[Any]]:
    """Every session peer registers here; they are stopped together (Orthanc takes ~3.5 s)."""
    peers: list[Any] = []
    yield peers
    stop_all(peers)


def _start(peer: Any, what: str, files: list[Path] | None, load_first: bool) -> Any:
    """Start ``peer`` (loading ``files`` before or after), or fail the test with the reason."""
    try:
        if files is not None and load_first:
            peer.load(files)
        peer.start()
        if files is not None and not load_first:
            peer.load(files)
    except LabError as exc:
        peer.stop()
        pytest.fail(f"{what} could not be started: {exc}", pytrace=False)
    return peer


def _checked_orthanc(peer: OrthancPeer, catalog: Catalog, what: str) -> OrthancPeer:
    count = peer.instance_count()
    if count != len(catalog.instances):
        peer.stop()
        pytest.fail(f"{what} holds {count} instances, expected {len(catalog.instances)}",
                    pytrace=False)
    return peer


@pytest.fixture
def orthanc_factory(lab_data: Catalog, move_port: int) -> Iterator[Callable[..., OrthancPeer]]:
    """``orthanc_factory(load=True, **options)``: a fresh Orthanc for one test (e.g. an empty one to
    send to). Stopping takes ~3.5 s at the test's end: prefer a session fixture when one fits."""
    made: list[OrthancPeer] = []

    def factory(load: bool = True, **options: Any) -> OrthancPeer:
        options.setdefault("move_port", move_port)
        peer = OrthancPeer(**options)
        made.append(peer)
        _start(peer, "Orthanc", lab_data.paths() if load else None, load_first=False)
        return peer

    yield factory
    stop_all(made)


@pytest.fixture(scope="session")
def orthanc(lab_data: Catalog, move_port: int, _lab_peers: list[Any]) -> OrthancPeer:
    peer = OrthancPeer(move_port=move_port)
    _lab_peers.append(peer)
    _start(peer, "Orthanc", lab_data.paths(), load_first=False)
    return _checked_orthanc(peer, lab_data, "Orthanc")


@pytest.fixture(scope="session")
def orthanc_tls(lab_data: Catalog, certs: LabCerts, move_port: int,
                _lab_peers: list[Any]) -> OrthancPeer:
    peer = OrthancPeer(move_port=move_port, tls=certs)
    _lab_peers.append(peer)
    _start(peer, "Orthanc (DICOM TLS)", lab_data.paths(), load_first=False)
    return _checked_orthanc(peer, lab_data, "Orthanc (DICOM TLS)")


@pytest.fixture(scope="session")
def orthanc_latin1(lab_data: Catalog, move_port: int, _lab_peers: list[Any]) -> OrthancPeer:
    """Like ``orthanc`` but with Orthanc's stock DefaultEncoding Latin1 (the fallback case)."""
    peer = OrthancPeer(move_port=move_port, encoding="Latin1")
    _lab_peers.append(peer)
    _start(peer, "Orthanc (Latin1)", lab_data.paths(), load_first=False)
    return _checked_orthanc(peer, lab_data, "Orthanc (Latin1)")


def _bad_cert_orthanc(certs: LabCerts, move_port: int, peers: list[Any], which: str) -> OrthancPeer:
    peer = OrthancPeer(move_port=move_port, tls=certs,
                       server_cert=getattr(certs, f"{which}_cert"),
                       server_key=getattr(certs, f"{which}_key"))
    peers.append(peer)
    return _start(peer, f"Orthanc ({which} TLS certificate)", None, load_first=False)


@pytest.fixture(scope="session")
def orthanc_expired_tls(certs: LabCerts, move_port: int, _lab_peers: list[Any]) -> OrthancPeer:
    """DICOM TLS Orthanc presenting the expired server certificate; holds no data."""
    return _bad_cert_orthanc(certs, move_port, _lab_peers, "expired")


@pytest.fixture(scope="session")
def orthanc_notyetvalid_tls(certs: LabCerts, move_port: int,
                            _lab_peers: list[Any]) -> OrthancPeer:
    """DICOM TLS Orthanc presenting a certificate valid from 2099 only; holds no data."""
    return _bad_cert_orthanc(certs, move_port, _lab_peers, "notyetvalid")


@pytest.fixture(scope="session")
def orthanc_wronghost_tls(certs: LabCerts, move_port: int,
                          _lab_peers: list[Any]) -> OrthancPeer:
    """DICOM TLS Orthanc presenting a certificate for wrong.example only; holds no data."""
    return _bad_cert_orthanc(certs, move_port, _lab_peers, "wronghost")


@pytest.fixture(scope="session")
def dcmqrscp(lab_data: Catalog, move_port: int, _lab_peers: list[Any]) -> DcmqrscpPeer:
    peer = DcmqrscpPeer(move_port=move_port)
    _lab_peers.append(peer)
    return _start(peer, "dcmqrscp", lab_data.paths(), load_first=True)


@pytest.fixture
def start_scp() -> Iterator[Callable[..., Any]]:
    """``start_scp(cls, *args, **options)``: ``cls(*args, **options).start()`` for any in-process
    test SCP of ours (FaultSCP, ScriptedSCP, RetrieveSCP...); each is shut down after the test."""
    made: list[Any] = []

    def factory(cls: Callable[..., Any], *args: Any, **options: Any) -> Any:
        scp = cls(*args, **options)
        made.append(scp)
        return scp.start()

    yield factory
    for scp in made:
        scp.shutdown()


@pytest.fixture
def fault_scp(start_scp: Callable[..., Any]) -> Callable[..., FaultSCP]:
    """``fault_scp(mode="ok", **options)``: a started FaultSCP on 127.0.0.1, shut down after."""
    return functools.partial(start_scp, FaultSCP)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh temporary folder for one test, removed afterwards."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="pacsbrowser-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def archive(workdir: Path) -> Iterator[Any]:
    """An empty local archive in `workdir`, closed afterwards."""
    from pacsbrowser.core.archive import Archive

    arc = Archive(workdir / "archive")
    try:
        yield arc
    finally:
        arc.close()


@pytest.fixture(autouse=True)
def _no_patient_data_by_default() -> Iterator[None]:
    """Every test starts with patient data hidden (a --verbose run in-process must not leak)."""
    from pacsbrowser.core import logs

    logs.set_show_phi(False)
    yield
    logs.set_show_phi(False)


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """After each test no thread, worker thread or child process it started is still running
    (bounded wait for those ending). Session peers start before the snapshot and are not counted."""
    from tests.lab.hygiene import Snapshot

    snapshot = Snapshot()
    yield
    problems = snapshot.leftovers()
    if problems:
        pytest.fail("left running after the test: " + "; ".join(problems), pytrace=False)
