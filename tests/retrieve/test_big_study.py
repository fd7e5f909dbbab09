"""C-GET of the largest study (400 instances) from Orthanc and from dcmqrscp: all of it, over one
association for the instance query and one for the C-GET, each file as the PACS holds it. The rate
is printed and bounded only generously; ours against DCMTK's getscu is the `get` case of
`make bench` (benchmarks/optional.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.client import profile_for, run

from .helpers import GeneratedStudy, assert_same_as_source

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("which", ["big_orthanc", "rle_dcmqrscp"])
def test_c_get_of_a_400_instance_study(request, which: str, big_study: GeneratedStudy, workdir: Path, capsys):
    peer = request.getfixturevalue(which)
    with Archive(workdir / "archive") as archive:
        summary = run(RetrieveService(profile_for(peer), archive).get_study(big_study.study_uid).wait())
        with capsys.disabled():
            print(f"\n[retrieve] C-GET of 400 instances ({summary.bytes_received / 1e6:.2f} MB) from {peer.label}: "
                  f"{summary.transfer_seconds:.2f} s transfer, {summary.rate:.0f} instances/s "
                  f"(archive writes fsync'd in batches)")
        assert summary.complete and summary.received == 400
        # Orthanc: the study-level query says the SOP classes and the count (the archive holds nothing:
        # no instance listing), then the C-GET. dcmqrscp leaves the classes empty: the instance listing
        # follows on an association of its own (core.retrieve.shortcut).
        assert summary.associations == (2 if which == "big_orthanc" else 3), summary.associations
        assert summary.planned and summary.expected == 400
        assert_same_as_source(archive, big_study.instances[:20])
    assert summary.rate > 20, f"only {summary.rate:.0f} instances/s"  # 52 and 81/s measured with the machine shared
