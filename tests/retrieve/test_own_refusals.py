"""Issue 15, item 9: when our own C-STORE handler refuses what a C-GET brings (the archive's disk
is full, out of resources), the PACS counts failed sub-operations; the C-GET used to take them for
a transfer syntax problem and ask again on new associations, to be refused again. Now it stops
there and says why."""

from __future__ import annotations

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.errors import DIMSEError
from pacsbrowser.core.retrieve import RetrieveService
from tests.lab.client import profile_for, run
from tests.lab.data import Catalog

pytestmark = pytest.mark.timeout(120)


def test_no_c_get_retry_after_our_own_refusals(orthanc, lab_data: Catalog, workdir):
    study = lab_data.studies[0]
    archive = Archive(workdir / "full", min_free_bytes=1 << 62)  # "full": every write would cross the reserve
    try:
        service = RetrieveService(profile_for(orthanc), archive, cancel_timeout=3.0)
        with pytest.raises(DIMSEError) as failed:  # nothing arrived and the PACS said Failure
            run(service.get_study(study.uid).wait(), timeout=90)
        print(failed.value)
        assert "our archive refused" in str(failed.value) and "cannot convert" not in str(failed.value)
        summary = failed.value.summary
        print(f"associations {summary.associations}, requests {summary.requests}, reasons {summary.reasons}, "
              f"notes {summary.notes}")
        assert summary.received == 0 and not summary.complete
        assert summary.failed == study.instance_count  # each refused once, not once per round
        # the study query (no listing: the archive held nothing), one C-GET, then the listing that
        # names what is missing: no further C-GET rounds
        assert summary.associations == 3
        assert len(summary.missing) == study.instance_count
        assert summary.requests == 1
        assert not any("asked for again" in n for n in summary.notes), summary.notes
        assert any("no second attempt: our archive refused" in n for n in summary.notes), summary.notes
        assert any("could not be written to the archive" in r for r in summary.reasons), summary.reasons
        archive.flush()
        assert archive.counts()["instances"] == 0
    finally:
        archive.close()
