"""Presentation-context planning for C-GET (never more than 128, compressed syntaxes in contexts of
their own, the SCP role for each storage class) and the requests a resume sends."""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from pacsbrowser.core.dicom import contexts as dc
from pacsbrowser.core.dicom import retrieve as dr
from pacsbrowser.core.dicom.syntaxes import MAX_CONTEXTS
from pacsbrowser.core.records import QueryLevel
from pacsbrowser.core.retrieve import Plan, Request, Target, Wanted, plan_requests
from pacsbrowser.core.sopclasses import RT_DOSE_STORAGE as RT_DOSE
from pacsbrowser.core.sopclasses import has_pixel_data, is_image_class

from .helpers import MANY_CLASSES

CT = "1.2.840.10008.5.1.4.1.1.2"
SR = "1.2.840.10008.5.1.4.1.1.88.22"


def _syntaxes(group: dc.ContextGroup, sop_class: str) -> list[list[str]]:
    return [[str(s) for s in cx.transfer_syntax] for cx in group.contexts if str(cx.abstract_syntax) == sop_class]


def test_one_image_class():
    (group,) = dc.plan_get_contexts([CT])
    assert str(group.contexts[0].abstract_syntax) == str(dc.GET_MODEL)
    contexts = _syntaxes(group, CT)
    assert contexts[0] == [ExplicitVRLittleEndian, ImplicitVRLittleEndian]  # uncompressed share one
    assert all(len(c) == 1 for c in contexts[1:])  # each compressed syntax alone
    assert {c[0] for c in contexts[1:]} == {str(s) for s in dc.COMPRESSED_SYNTAXES}
    assert [(r.sop_class_uid, r.scu_role, r.scp_role) for r in group.roles] == [(CT, False, True)]


def test_non_image_classes_get_uncompressed_only():
    (group,) = dc.plan_get_contexts([SR, CT])
    assert _syntaxes(group, SR) == [[ExplicitVRLittleEndian, ImplicitVRLittleEndian]]
    assert len(group.contexts) == 1 + 1 + 1 + len(dc.COMPRESSED_SYNTAXES)


@pytest.mark.parametrize("classes", [list(MANY_CLASSES), [f"1.2.3.{n}" for n in range(300)]])
def test_never_more_than_128_contexts(classes):
    groups = dc.plan_get_contexts(classes)
    assert len(groups) > 1
    seen = [c for g in groups for c in g.sop_classes]
    assert sorted(seen) == sorted(classes)  # every class in exactly one group
    for group in groups:
        assert len(group.contexts) <= MAX_CONTEXTS
        assert {r.sop_class_uid for r in group.roles} == set(group.sop_classes)
        assert sum(str(cx.abstract_syntax) == str(dc.GET_MODEL) for cx in group.contexts) == 1


def test_default_set_fits_one_association():
    (group,) = dc.default_groups()
    assert len(group.contexts) <= MAX_CONTEXTS
    assert set(dc.DEFAULT_CLASSES) == set(group.sop_classes)


def test_first_syntax_goes_first():
    (group,) = dc.plan_get_contexts([CT], first={CT: str(RLELossless)})
    contexts = _syntaxes(group, CT)
    assert contexts[0] == [str(RLELossless)]
    assert [ExplicitVRLittleEndian, ImplicitVRLittleEndian] in contexts


def test_rt_dose_gets_compressed_contexts_but_is_no_image():
    # one classification: RT Dose carries pixel data (C-GET proposes compressed syntaxes for it), but
    # is not an image class (a C-STORE check must not call an RT Dose without pixels truncated)
    (group,) = dc.plan_get_contexts([RT_DOSE])
    assert len(_syntaxes(group, RT_DOSE)) == 1 + len(dc.COMPRESSED_SYNTAXES)
    assert has_pixel_data(RT_DOSE) and not is_image_class(RT_DOSE)
    assert is_image_class(CT) and not has_pixel_data(SR)


def test_identifiers():
    ds = dr.retrieve_identifier(QueryLevel.INSTANCE, "1.2", ["1.2.3"], ["1.2.3.4", "1.2.3.5"])
    assert (ds.QueryRetrieveLevel, ds.StudyInstanceUID, ds.SeriesInstanceUID) == ("IMAGE", "1.2", "1.2.3")
    assert list(ds.SOPInstanceUID) == ["1.2.3.4", "1.2.3.5"]
    ds = dr.retrieve_identifier(QueryLevel.SERIES, "1.2", ["1.2.3", "1.2.4"])
    assert ds.QueryRetrieveLevel == "SERIES" and list(ds.SeriesInstanceUID) == ["1.2.3", "1.2.4"]
    with pytest.raises(ValueError):
        dr.retrieve_identifier(QueryLevel.INSTANCE, "1.2", ["1", "2"], ["3"])
    with pytest.raises(ValueError):
        dr.retrieve_identifier(QueryLevel.PATIENT, "1.2")


def _wanted(series: int, per: int) -> list[Wanted]:
    return [Wanted(f"9.{s}.{n}", f"9.{s}", CT) for s in range(series) for n in range(per)]


def test_requests_nothing_present_is_one_study_request():
    wanted = _wanted(3, 4)
    plan = Plan(wanted)
    assert plan_requests(Target(QueryLevel.STUDY, "9"), plan, plan.missing) == [
        Request(QueryLevel.STUDY, (), (), 12)]


def test_requests_whole_series_and_missing_instances():
    wanted = _wanted(3, 4)
    plan = Plan(wanted, present={"9.0.0", "9.0.1", "9.0.2", "9.0.3", "9.1.0"})
    requests = plan_requests(Target(QueryLevel.STUDY, "9"), plan, plan.missing)
    assert requests == [
        Request(QueryLevel.SERIES, ("9.2",), (), 4),
        Request(QueryLevel.INSTANCE, ("9.1",), ("9.1.1", "9.1.2", "9.1.3"), 3),
    ]
    assert plan_requests(Target(QueryLevel.STUDY, "9"), Plan(wanted, present={w.uid for w in wanted}), []) == []


def test_requests_chunk_long_uid_lists():
    wanted = _wanted(1, 450)
    plan = Plan(wanted, present={"9.0.0"})
    requests = plan_requests(Target(QueryLevel.SERIES, "9", "9.0"), plan, plan.missing)
    assert [r.count for r in requests] == [200, 200, 49]
    assert all(r.level is QueryLevel.INSTANCE and r.series_uids == ("9.0",) for r in requests)


def test_requests_unplanned():
    plan = Plan(None)
    assert plan_requests(Target(QueryLevel.INSTANCE, "9", "9.0", "9.0.1"), plan, None) == [
        Request(QueryLevel.INSTANCE, ("9.0",), ("9.0.1",), None)]
