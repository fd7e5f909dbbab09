"""Our thumbnails against DCMTK's rendering of the same file, window, frame and size.

Every image the lab generates (CT signed with rescale and windows, MR with and without a window,
CR MONOCHROME1 and 2, US RGB, a multi-frame cine, RLE), every sample of samples.py and every sample
file pydicom ships (present offline) that DCMTK can read: the mean absolute difference per pixel
must stay within reference.MAD_BOUND. The per-file table is printed in the terminal summary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsbrowser.core.imaging import render

from .reference import MAD_BOUND, ROWS, NoReference, Row, dcmtk_render, mean_abs_diff

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning:pydicom"),
              pytest.mark.interop]  # every test here renders with DCMTK too

# Files where DCMTK 3.6.7 itself is wrong or cannot be a reference; each is checked another way.
KNOWN = {
    "rtdose_expb.dcm": "known: DCMTK swaps 32-bit big-endian OW pixel data as 16-bit words "
                       "(ours equals the little-endian twin: test_render)",
    "rtdose_expb_1frame.dcm": "known: as rtdose_expb.dcm",
    "corrupt_jpeg.dcm": "known: a ruined JPEG scan on purpose, decoders disagree on what is left",
}


def _compare(source: str, path: Path, what: str, size: int, workdir: Path, record_property) -> Row:
    thumbnail = render(path, size)
    shape = "x".join(str(n) for n in thumbnail.pixels.shape)
    if thumbnail.is_placeholder:
        row = Row(source, path.name, what, shape, "-", None, None, f"placeholder: {thumbnail.label}")
        ROWS.append(row)
        return row
    try:
        expected, how = dcmtk_render(path, thumbnail, workdir)
    except NoReference as exc:
        row = Row(source, path.name, what, shape, f"none: {exc}", None, None, "no reference")
        ROWS.append(row)
        return row
    if expected.shape != thumbnail.pixels.shape:
        row = Row(source, path.name, what, shape, how, None, None,
                  f"OVER: DCMTK's shape is {expected.shape}")
        ROWS.append(row)
        return row
    mad, max_diff = mean_abs_diff(expected, thumbnail.pixels)
    verdict = KNOWN.get(path.name, "ok" if mad <= MAD_BOUND else "OVER")
    row = Row(source, path.name if source != "lab" else _lab_name(path), what, shape, how, mad, max_diff,
              verdict if verdict in ("ok", "OVER") else "known")
    ROWS.append(row)
    record_property(f"mad:{row.name}@{size}", round(mad, 3))
    return row


def _lab_name(path: Path) -> str:
    return "/".join(path.parts[-4:])


@pytest.mark.parametrize("size", [48, 128])
def test_lab_images_match_dcmtk(lab_data, size, workdir, record_property):
    rows = []
    for instance in lab_data.instances:
        what = (f"{instance.modality} {instance.photometric} {instance.rows}x{instance.columns}"
                f"{' x' + str(instance.frames) + ' frames' if instance.frames > 1 else ''}"
                f"{' RLE' if instance.is_rle else ''} @{size}")
        rows.append(_compare("lab", instance.path, what, size, workdir, record_property))
    assert len(rows) == len(lab_data.instances) == 66
    not_compared = [r for r in rows if r.mad is None]
    assert not not_compared, [(r.name, r.verdict, r.reference) for r in not_compared]
    over = [(r.name, r.mad) for r in rows if r.verdict != "ok"]
    assert not over, f"over the bound {MAD_BOUND}: {over}"


def test_samples_match_dcmtk(samples, workdir, record_property):
    rows = []
    for sample in samples.values():
        if sample.placeholder and sample.name != "corrupt_jpeg":
            continue  # no image to compare: test_render checks the placeholder
        rows.append(_compare("sample", sample.path, sample.what, 64, workdir, record_property))
    by_name = {r.name: r for r in rows}
    # DCMTK 3.6.7 cannot read Float Pixel Data: test_render checks that sample by its values
    assert by_name["float_pixels.dcm"].verdict == "no reference"
    compared = [r for r in rows if r.mad is not None]
    assert len(compared) >= 30, f"only {len(compared)} samples compared"
    bad = [(r.name, r.mad, r.verdict, r.reference) for r in rows
           if r.name != "float_pixels.dcm" and r.verdict not in ("ok", "known")]
    assert not bad, f"over the bound {MAD_BOUND} or not compared: {bad}"


# pydicom's files that DCMTK cannot read or that we cannot decode, and why (each verdict is
# asserted, so a change in either shows up here)
PYDICOM_NOT_COMPARED = {
    "SC_rgb_jpeg.dcm": "no reference",  # DCMTK: non-standard VR in the header
    "JPEG-lossy.dcm": "placeholder: Cannot decode",  # pylibjpeg refuses its bad SOS parameters
    "JPEG2000-embedded-sequence-delimiter.dcm": "placeholder: Cannot decode",
}


def test_pydicom_sample_files_match_dcmtk(pydicom_files, workdir, record_property):
    assert len(pydicom_files) >= 60, "pydicom's sample files are missing from this install"
    rows = [_compare("pydicom", path, "pydicom sample", 128, workdir, record_property)
            for path in pydicom_files]
    images = [r for r in rows if not r.verdict.startswith("placeholder")]
    for name, verdict in PYDICOM_NOT_COMPARED.items():
        row = next(r for r in rows if r.name == name)
        assert row.verdict == verdict, (name, row.verdict, row.reference)
    compared = [r for r in images if r.mad is not None]
    assert len(compared) >= 45
    bad = [(r.name, r.mad, r.verdict, r.reference) for r in images
           if r.name not in PYDICOM_NOT_COMPARED and r.verdict not in ("ok", "known")]
    assert not bad, f"over the bound {MAD_BOUND} or not compared: {bad}"
