"""Orthanc retrieves from us: our SCP registered as a modality in the lab's Orthanc, Orthanc's REST
API starts a C-MOVE of a study from us to Orthanc itself; Orthanc then holds it, pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from pacsbrowser.core.archive import Archive
from tests.lab.peers import LOOPBACK
from tests.retrieve.helpers import make_big_study

from .conftest import start_server

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def test_orthanc_moves_a_study_from_us_to_itself(orthanc, workdir: Path) -> None:
    study = make_big_study(workdir / "study", 12, label="toorthanc", rle_every=3)
    source = Archive(workdir / "source", durable=False)
    server = None
    try:
        for path in study.paths():
            source.import_file(path)
        server = start_server(source, ae_title="PBSERVE", destinations=((orthanc.aet, LOOPBACK, orthanc.port),))
        host, port = server.address
        orthanc.add_modality("pbserve", "PBSERVE", host, port)
        answer = orthanc.rest("/modalities/pbserve/move", "POST", {
            "Level": "Study", "Resources": [{"StudyInstanceUID": study.study_uid}], "TargetAet": orthanc.aet,
        }, timeout=60)
        assert answer is not None
        held = orthanc.sop_instance_uids()
        assert {i.sop_instance_uid for i in study.instances} <= held
        for instance in study.instances:
            (found,) = [r for r in orthanc.lookup(instance.sop_instance_uid) if r["Type"] == "Instance"]
            data = orthanc.rest(f"{found['Path']}/file", raw=True)
            got = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
            want = pydicom.dcmread(instance.path)
            assert np.array_equal(got.pixel_array, want.pixel_array), instance.sop_instance_uid
    finally:
        orthanc.delete_uid(study.study_uid)
        if server is not None:
            server.shutdown()
        source.close()
