"""Fixtures of the retrieve (C-GET / C-MOVE) tests.

The session peers of tests/conftest.py (orthanc, dcmqrscp, lab_data, move_port) plus, made here
once per session:
    big_study         tests.retrieve.helpers.GeneratedStudy: 400 small CT instances, 2 series
    many_class_study  one series with 12 image SOP classes (more contexts than one association holds)
    compressed_study  5 lab images in RLE, JPEG 2000 lossless, JPEG-LS lossless, JPEG lossless, JPEG baseline
    big_orthanc       an Orthanc holding big_study, many_class_study and compressed_study (read only)
    rle_dcmqrscp      a dcmqrscp started with +xr (it accepts RLE on incoming associations, so it can
                      send RLE files back on a C-GET) holding the lab data and big_study
Function-scoped:
    workdir           a temporary folder of ours, removed after the test
    archive           an Archive in workdir/archive, closed after the test
    retrieve_scp(files, **options) -> helpers.RetrieveSCP, started; shut down after the test

Every test also checks that no worker thread, association thread or server of ours, and no child
process, outlives it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.lab.data import Catalog
from tests.lab.peers import DcmqrscpPeer, LabError, OrthancPeer

from .helpers import GeneratedStudy, RetrieveSCP, make_big_study, make_compressed_study, make_many_class_study


@pytest.fixture(scope="session")
def big_study(lab_dir: Path) -> GeneratedStudy:
    return make_big_study(lab_dir / "retrieve-big", 400)


@pytest.fixture(scope="session")
def many_class_study(lab_dir: Path) -> GeneratedStudy:
    return make_many_class_study(lab_dir / "retrieve-many")


@pytest.fixture(scope="session")
def compressed_study(lab_dir: Path, lab_data: Catalog) -> GeneratedStudy:
    try:
        return make_compressed_study(lab_dir / "retrieve-compressed", lab_data)
    except LabError as exc:
        pytest.fail(f"compressed test files could not be made: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def big_orthanc(big_study: GeneratedStudy, many_class_study: GeneratedStudy, compressed_study: GeneratedStudy,
                move_port: int, _lab_peers: list[Any]) -> OrthancPeer:
    peer = OrthancPeer(aet="BIGORTHANC", move_port=move_port)
    _lab_peers.append(peer)
    try:
        peer.start()
        peer.load(big_study.paths() + many_class_study.paths() + compressed_study.paths())
    except LabError as exc:
        peer.stop()
        pytest.fail(f"Orthanc (big study) could not be started: {exc}", pytrace=False)
    return peer


@pytest.fixture(scope="session")
def rle_dcmqrscp(lab_data: Catalog, big_study: GeneratedStudy, move_port: int,
                 _lab_peers: list[Any]) -> DcmqrscpPeer:
    peer = DcmqrscpPeer(aet="RLEQR", move_port=move_port, extra_args=["+xr"])
    _lab_peers.append(peer)
    try:
        peer.load(lab_data.paths() + big_study.paths())
        peer.start()
    except LabError as exc:
        peer.stop()
        pytest.fail(f"dcmqrscp (+xr) could not be started: {exc}", pytrace=False)
    return peer


@pytest.fixture
def retrieve_scp(start_scp: Callable[..., Any]) -> Callable[..., RetrieveSCP]:
    return functools.partial(start_scp, RetrieveSCP)
