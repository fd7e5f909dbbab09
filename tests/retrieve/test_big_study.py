"""Speed on the wire: C-GET of the largest study (400 instances) from Orthanc and from dcmqrscp, ours
against DCMTK's getscu on the same study in the same run. Prints the numbers; fails only when ours is
far off (a regression such as a per-instance association or a 1 ms stall per message)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.peers import dcmtk

from .helpers import GeneratedStudy, assert_same_as_source, profile_for, run

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def _getscu(peer, study_uid: str, out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = dcmtk("getscu", "-S", "-aet", "PACSBROWSER", "-aec", peer.aet, "-k", "QueryRetrieveLevel=STUDY",
                   "-k", f"StudyInstanceUID={study_uid}", "-od", out, peer.host, str(peer.port), timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    return elapsed


@pytest.mark.parametrize("which", ["big_orthanc", "rle_dcmqrscp"])
def test_c_get_speed_against_getscu(request, which: str, big_study: GeneratedStudy, workdir: Path, capsys):
    peer = request.getfixturevalue(which)
    with Archive(workdir / "archive") as archive:
        started = time.monotonic()
        summary = run(RetrieveService(profile_for(peer), archive).get_study(big_study.study_uid).wait())
        ours = time.monotonic() - started
        assert summary.complete and summary.received == 400
        assert summary.associations == 2  # one for the instance query, one for the C-GET
        assert_same_as_source(archive, big_study.instances[:20])
    theirs = _getscu(peer, big_study.study_uid, workdir / "getscu")
    assert len(list((workdir / "getscu").iterdir())) == 400
    shutil.rmtree(workdir / "getscu")
    with capsys.disabled():
        print(f"\n[retrieve] C-GET of 400 instances ({summary.bytes_received / 1e6:.2f} MB) from {peer.label}: "
              f"ours {ours:.2f} s in all ({summary.transfer_seconds:.2f} s transfer, {summary.rate:.0f}/s, "
              f"instance query and fsync'd archive writes included), getscu {theirs:.2f} s "
              f"({400 / theirs:.0f}/s, plain files)")
    assert summary.rate > 100, f"only {summary.rate:.0f} instances/s"
