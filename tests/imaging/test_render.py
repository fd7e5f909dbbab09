"""core.imaging.render: each part of the display pipeline, checked against the expected image.

Expected pixels are computed here from the formulas that made the files (tests/lab/data.py,
samples.py) and the DICOM definitions (PS3.3 C.11), not from pydicom's output.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from pacsbrowser.core.imaging import (
    FrameError,
    Kind,
    Window,
    auto_window,
    downscale,
    fit_size,
    placeholder,
    render,
    representative_frame,
)
from tests.lab import data as lab

from .samples import color_phantom, phantom

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")


def linear(x, center, width):
    """PS3.3 C.11.2.1.2.1, to 0..255."""
    x = np.asarray(x, dtype=np.float64)
    y = np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    return np.rint(y * 255)


def assert_close(actual, expected, tolerance=1):
    diff = np.abs(np.asarray(actual, np.int32) - np.asarray(expected, np.int32))
    assert diff.max() <= tolerance, f"max difference {diff.max()} (mean {diff.mean():.3f})"


def lab_instance(catalog, accession, series, number):
    study = catalog.study_by_accession(accession)
    for instance in catalog.instances_of_study(study.uid):
        series_number = int(instance.path.parent.name)
        if series_number == series and instance.number == number:
            return instance
    raise KeyError((accession, series, number))


# ---- geometry ----------------------------------------------------------------------------------


def test_fit_size_keeps_the_aspect_and_rounds_down_like_dcmtk():
    assert fit_size(512, 512, 128) == (128, 128)
    assert fit_size(80, 96, 128) == (106, 128)  # 80 * 128 / 96 = 106.67
    assert fit_size(96, 80, 128) == (128, 106)
    assert fit_size(1024, 256, 128) == (128, 32)
    assert fit_size(3, 3, 128) == (128, 128)  # small images are enlarged
    assert fit_size(1, 1000, 16) == (1, 16)  # never below one row
    assert fit_size(96, 112, 64, aspect=0.5) == (27, 64)  # rows 0.5 mm apart: half as high
    with pytest.raises(ValueError):
        fit_size(0, 10, 10)
    with pytest.raises(ValueError):
        fit_size(10, 10, 0)


def test_downscale_is_exact_area_averaging():
    image = np.arange(64, dtype=np.float64).reshape(8, 8)
    blocks = image.reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(downscale(image, 4, 4), blocks)
    # a non-integer ratio: 3 -> 2 columns, output 0 = in0 + in1 / 2 over 1.5, output 1 = in1 / 2 + in2
    row = np.array([[0.0, 3.0, 6.0]])
    np.testing.assert_allclose(downscale(row, 1, 2), [[(0 + 1.5) / 1.5, (1.5 + 6) / 1.5]])
    # the mean is kept, a constant stays constant, RGB channels are independent
    rng = np.random.default_rng(1)
    noise = rng.random((37, 53, 3))
    small = downscale(noise, 10, 14)
    np.testing.assert_allclose(small.mean(axis=(0, 1)), noise.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(downscale(np.full((9, 7), 5.0), 4, 3), 5.0)
    # enlarging repeats pixels
    np.testing.assert_allclose(downscale(np.array([[1.0, 2.0]]), 2, 4), [[1, 1, 2, 2], [1, 1, 2, 2]])


def test_the_middle_frame_represents_a_multiframe_object():
    assert [representative_frame(n) for n in (1, 2, 3, 4, 5, 30)] == [0, 0, 1, 1, 2, 14]


# ---- grey: modality LUT, VOI, MONOCHROME1 ---------------------------------------------------------


def test_ct_window_on_hounsfield_units(lab_data):
    """Lab CT: stored = HU + 1024 with intercept -1024, window 40/400: expected from the HU."""
    instance = lab_instance(lab_data, "ACC2015001", 1, 1)
    thumbnail = render(instance.path, None)
    assert thumbnail.window == Window(40.0, 400.0, "LINEAR", "file")
    hu = lab._ct_pixels(0, 8, 1.0, -1024.0) * 1.0 - 1024.0  # what the file stores, as HU
    assert_close(thumbnail.pixels, linear(hu, 40, 400), tolerance=0)
    lung, spine = thumbnail.pixels[32, 18], thumbnail.pixels[int(64 * 0.725), 32]
    assert lung == 0 and spine == 255


def test_rescale_slope_two_and_stored_hu(lab_data):
    """Slope 2 / intercept -1024 and slope 1 / intercept 0 (negative stored values): both give HU."""
    for series, count, number, slope, intercept in ((2, 4, 3, 2.0, -1024.0), (1, 8, 5, 1.0, 0.0)):
        instance = lab_instance(lab_data, "ACC2024003", series, number)
        thumbnail = render(instance.path, None)
        stored = lab._ct_pixels(number - 1, count, slope, intercept)
        if intercept == 0:
            assert stored.min() < 0  # negative stored values
        assert_close(thumbnail.pixels, linear(stored * slope + intercept, 50, 350), tolerance=0)


def test_several_windows_first_by_default_others_by_index(lab_data):
    instance = lab_instance(lab_data, "ACC2020008", 1, 3)
    brain = render(instance.path, None)
    bone = render(instance.path, None, window_index=1)
    assert (brain.window.center, brain.window.width, brain.window.explanation) == (40, 80, "BRAIN")
    assert (bone.window.center, bone.window.width, bone.window.explanation) == (600, 2800, "BONE")
    hu = lab._ct_pixels(2, 5, 1.0, -1024.0) - 1024.0
    assert_close(brain.pixels, linear(hu, 40, 80), tolerance=0)
    assert_close(bone.pixels, linear(hu, 600, 2800), tolerance=0)
    given = render(instance.path, None, window=(0, 1000))
    assert given.window.source == "given"
    assert_close(given.pixels, linear(hu, 0, 1000), tolerance=0)


def test_monochrome1_is_inverted(lab_data, samples):
    """Lab CR MONOCHROME1: high stored values (direct exposure) are dark, bone is bright."""
    instance = lab_instance(lab_data, "ACC2019002", 1, 1)
    assert instance.photometric == "MONOCHROME1"
    thumbnail = render(instance.path, None)
    stored = lab._cr_pixels(0, monochrome1=True)
    expected = 255 - linear(stored, 2048, 4096)
    assert_close(thumbnail.pixels, expected, tolerance=1)
    assert thumbnail.pixels[0, 0] < 30  # air around the body: dark
    assert thumbnail.pixels[40, int(96 * (0.5 - 0.25 / 2))] > 190  # a bone: bright
    # the same stored values labelled MONOCHROME2 give the negative
    mono1 = render(samples["mono1"].path, None).pixels.astype(int)
    mono2 = render(samples["mono2_twin"].path, None).pixels.astype(int)
    assert_close(mono1, 255 - mono2, tolerance=1)
    assert abs(mono1.mean() - (255 - mono2.mean())) < 0.5


def test_voi_lut_sequence(samples):
    thumbnail = render(samples["voi_lut"].path, None)
    assert thumbnail.window.source == "lut" and thumbnail.window.explanation == "GAMMA 0.5"
    stored = np.rint(phantom() * 4095)
    lut = np.rint(65535 * (np.arange(4096) / 4095) ** 0.5)
    expected = np.rint(lut[stored.astype(int)] / 65535 * 255)
    assert_close(thumbnail.pixels, expected, tolerance=0)
    # a window instead of the LUT when asked
    assert render(samples["voi_lut"].path, None, window=(2048, 4096)).window.source == "given"


def test_modality_lut_sequence(samples):
    thumbnail = render(samples["modality_lut"].path, None)
    stored = np.rint(phantom() * 255)
    assert_close(thumbnail.pixels, linear(16 * stored + 100, 2000, 3000), tolerance=0)


def test_sigmoid_voi_lut_function(samples):
    thumbnail = render(samples["sigmoid"].path, None)
    assert thumbnail.window.function == "SIGMOID"
    x = np.rint(phantom() * 4095)
    expected = np.rint(255 / (1 + np.exp(-4 * (x - 2048) / 2000)))
    assert_close(thumbnail.pixels, expected, tolerance=1)


def test_automatic_window_ignores_a_few_hot_pixels(samples):
    thumbnail = render(samples["auto_window_hot_pixels"].path, None)
    window = thumbnail.window
    assert window.source == "auto"
    values = np.rint(200 + 1200 * phantom())
    assert window.center - window.width / 2 >= 190 and window.center + window.width / 2 <= 1420
    hot = np.zeros(values.shape, bool)
    hot[5, 5] = hot[6, 90] = hot[80, 40] = True
    assert_close(thumbnail.pixels[~hot], linear(values, window.center, window.width)[~hot], 0)
    assert thumbnail.pixels[5, 5] == 255  # the hot pixels are white...
    disc = phantom() > 0.2
    assert thumbnail.pixels[disc].std() > 40  # ...and the image is not flattened by them
    # a min/max window would have made the whole image nearly black
    minmax = linear(values, (200 + 65000) / 2, 65000 - 200)
    assert minmax[disc].max() < 10


def test_auto_window_edge_cases():
    assert auto_window(np.full((4, 4), 7.0)).width == 1.0  # flat image
    w = auto_window(np.repeat([0.0, 100.0], 500))
    assert (w.center, w.width) == (50.5, 101.0)  # maps 0 to black and 100 to white (LINEAR)
    padded = np.concatenate([np.full(900, -2000.0), np.linspace(0, 100, 100)])
    assert auto_window(padded, exclude=-2000.0).center > 40
    assert auto_window(np.array([np.nan, np.inf])).source == "auto"


def test_signed_pixels_and_junk_in_unused_bits(samples):
    clean = render(samples["signed_12_of_16"].path, None)
    junk = render(samples["signed_12_of_16_junk"].path, None)
    values = samples["signed_12_of_16"].extra["values"]
    assert values.min() < -1500  # really negative stored values
    assert_close(clean.pixels, linear(values, 0, 3000), tolerance=0)
    np.testing.assert_array_equal(junk.pixels, clean.pixels)


def test_float_pixel_data(samples):
    thumbnail = render(samples["float_pixels"].path, None)
    values = samples["float_pixels"].extra["values"].astype(np.float64)
    assert thumbnail.window.source == "auto"
    assert_close(thumbnail.pixels, linear(values, thumbnail.window.center, thumbnail.window.width), 0)
    assert thumbnail.pixels.max() == 255 and thumbnail.pixels.min() == 0


def test_big_endian_32_bit_equals_its_little_endian_twin(pydicom_files):
    by_name = {p.name: p for p in pydicom_files}
    for big, little in (("rtdose_expb.dcm", "rtdose.dcm"), ("rtdose_expb_1frame.dcm", "rtdose_1frame.dcm"),
                        ("MR_small_bigendian.dcm", "MR_small.dcm")):
        np.testing.assert_array_equal(render(by_name[big], 64).pixels, render(by_name[little], 64).pixels)


# ---- colour ----------------------------------------------------------------------------------------


def test_rgb_and_planar_configuration(samples):
    rgb = render(samples["rgb"].path, None)
    planar = render(samples["rgb_planar1"].path, None)
    assert rgb.is_color and rgb.pixels.shape == (72, 96, 3)
    np.testing.assert_array_equal(rgb.pixels, color_phantom())
    np.testing.assert_array_equal(planar.pixels, rgb.pixels)
    assert rgb.window is None


@pytest.mark.parametrize("name, bound", [("ybr_full", 0.8), ("ybr_full_422", 2.0)])
def test_ybr_is_converted_to_rgb(samples, name, bound):
    thumbnail = render(samples[name].path, None)
    diff = np.abs(thumbnail.pixels.astype(int) - color_phantom().astype(int))
    assert diff.mean() < bound, diff.mean()
    assert thumbnail.pixels[20, 20].tolist() == pytest.approx([230, 40, 40], abs=4)  # the red patch


def test_palette_colour(samples):
    sample = samples["palette16"]
    thumbnail = render(sample.path, None)
    index, lut = sample.extra["index"], sample.extra["lut"]
    expected = np.stack([np.rint(lut[c][index] / 65535 * 255) for c in ("Red", "Green", "Blue")], axis=-1)
    assert thumbnail.is_color
    assert_close(thumbnail.pixels, expected, tolerance=0)


def test_lab_ultrasound_rgb_and_cine(lab_data):
    cine = next(i for i in lab_data.instances if i.frames > 1)
    thumbnail = render(cine.path, 64)  # 48 x 64: the native size
    assert (thumbnail.frames, thumbnail.frame) == (4, 1)
    np.testing.assert_array_equal(thumbnail.pixels, lab._us_frame(1))
    np.testing.assert_array_equal(render(cine.path, 64, frame=3).pixels, lab._us_frame(3))
    with pytest.raises(FrameError):
        render(cine.path, 64, frame=4)
    rle_us = next(i for i in lab_data.instances if i.modality == "US" and i.is_rle)
    np.testing.assert_array_equal(render(rle_us.path, 64).pixels, lab._us_frame(rle_us.number - 1))


def test_grey_multiframe_shows_the_middle_frame(samples):
    path = samples["multiframe_grey"].path
    default = render(path, None)
    assert (default.frames, default.frame) == (5, 2)
    means = [render(path, None, frame=k).pixels.mean() for k in range(5)]
    assert means == sorted(means) and means[0] < means[4]
    expected = linear(np.rint(phantom() * 800 * 3), 2000, 4000)
    assert_close(default.pixels, expected, tolerance=0)


def test_non_square_pixels(samples):
    thumbnail = render(samples["pixel_spacing_aspect"].path, 64)
    assert thumbnail.pixels.shape == (27, 64)


# ---- compressed transfer syntaxes ---------------------------------------------------------------------


def test_every_compressed_sample_decodes_like_its_uncompressed_twin(samples):
    checked = []
    for sample in samples.values():
        if not sample.twin or sample.name in ("ybr_full", "ybr_full_422"):
            continue
        ours = render(sample.path, None)
        twin = render(samples[sample.twin].path, None)
        assert not ours.is_placeholder, (sample.name, ours.detail)
        assert ours.pixels.shape == twin.pixels.shape
        diff = np.abs(ours.pixels.astype(int) - twin.pixels.astype(int))
        if sample.lossy:
            assert diff.mean() < 1.5, (sample.name, diff.mean())
        else:
            assert diff.max() == 0, (sample.name, diff.max())
        checked.append((sample.name, ours.transfer_syntax))
    syntaxes = {ts for _, ts in checked}
    for uid in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
                "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99"):
        assert uid in syntaxes, f"transfer syntax {uid} not covered"


def test_pydicom_lossless_variants_of_one_image_agree(pydicom_files):
    by_name = {p.name: p for p in pydicom_files}
    reference = render(by_name["MR_small.dcm"], 64).pixels
    for name in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                 "MR_small_implicit.dcm", "MR_small_expb.dcm", "MR_small_padded.dcm"):
        np.testing.assert_array_equal(render(by_name[name], 64).pixels, reference, err_msg=name)
    # JPEG 2000 with YBR_RCT, deflate, JPEG extended 12-bit, palette, YBR_FULL_422 JPEG multi-frame
    for name in ("GDCMJ2K_TextGBR.dcm", "image_dfl.dcm", "JPGExtended.dcm", "examples_palette.dcm",
                 "examples_ybr_color.dcm", "examples_jpeg2k.dcm"):
        assert not render(by_name[name], 64).is_placeholder, name


def test_a_dataset_renders_like_its_file(samples):
    for name in ("ct_two_windows", "voi_lut", "rgb", "rle_ct", "deflate_ct", "multiframe_grey"):
        path = samples[name].path
        np.testing.assert_array_equal(render(dcmread(path), 64).pixels, render(path, 64).pixels, err_msg=name)


# ---- placeholders ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sr", "kos", "pr", "pdf", "truncated_pixels", "truncated_header", "not_dicom",
                                  "empty", "no_rows", "corrupt_jpeg"])
def test_objects_without_an_image_give_a_labelled_placeholder(samples, name):
    sample = samples[name]
    thumbnail = render(sample.path, 96)
    if sample.placeholder == "any":  # a ruined JPEG: an image of what is left, or a placeholder
        assert thumbnail.pixels.dtype == np.uint8
        return
    assert thumbnail.kind == Kind(sample.placeholder)
    assert thumbnail.is_placeholder and thumbnail.label and thumbnail.detail
    if sample.label:
        assert thumbnail.label == sample.label
    assert thumbnail.pixels.shape == (96, 96) and thumbnail.pixels.dtype == np.uint8
    assert not thumbnail.pixels.flags.writeable


def test_pydicom_non_images_and_damaged_files(pydicom_files):
    by_name = {p.name: p for p in pydicom_files}
    expected = {
        "test-SR.dcm": (Kind.NO_PIXELS, "Structured report"),
        "rtplan.dcm": (Kind.NO_PIXELS, "RT plan"),
        "rtstruct.dcm": (Kind.NO_PIXELS, "RT structures"),
        "waveform_ecg.dcm": (Kind.NO_PIXELS, "Waveform"),
        "MR_truncated.dcm": (Kind.DAMAGED, "Damaged file"),
        "badVR.dcm": (Kind.DAMAGED, "Damaged file"),
        "JPEG-lossy.dcm": (Kind.UNSUPPORTED, "Cannot decode"),
    }
    for name, (kind, label) in expected.items():
        thumbnail = render(by_name[name], 64)
        assert (thumbnail.kind, thumbnail.label) == (kind, label), (name, thumbnail.detail)


def test_render_never_raises_for_file_content(pydicom_files, samples, workdir):
    """Every file we have, plus a few more broken ones: a Thumbnail each, never an exception."""
    paths = [*pydicom_files, *(s.path for s in samples.values())]
    whole = samples["jpeg_lossless_sv1"].path.read_bytes()
    for cut in (200, 600, len(whole) // 2, len(whole) - 3):
        path = workdir / f"cut_{cut}.dcm"
        path.write_bytes(whole[:cut])
        paths.append(path)
    rng = np.random.default_rng(7)
    noisy = bytearray(samples["rgb"].path.read_bytes())
    for i in rng.integers(132, len(noisy), 40):
        noisy[i] = 0xFF
    (workdir / "noisy.dcm").write_bytes(bytes(noisy))
    paths.append(workdir / "noisy.dcm")
    for path in paths:
        thumbnail = render(path, 32)
        assert thumbnail.pixels.dtype == np.uint8 and max(thumbnail.pixels.shape[:2]) == 32, path.name


def test_bad_arguments_and_missing_files_raise(workdir, samples):
    with pytest.raises(FileNotFoundError):
        render(workdir / "nope.dcm")
    with pytest.raises(ValueError):
        render(samples["rgb"].path, 0)
    with pytest.raises(ValueError):
        render(samples["ct_two_windows"].path, 64, window=(40, 0))


def test_placeholder_record():
    p = placeholder("Structured report", 8, detail="why")
    assert p.pixels.shape == (8, 8) and p.pixels[0, 0] != p.pixels[4, 4]
    assert p.kind is Kind.NO_PIXELS and p.is_placeholder and not p.is_color
    assert "Structured report" in repr(p)


def test_thumbnail_carries_what_the_window_shows(samples):
    thumbnail = render(samples["ct_two_windows"].path, 64)
    assert thumbnail.sop_instance_uid == "2.25.4242.1"
    assert thumbnail.modality == "CT" and thumbnail.photometric == "MONOCHROME2"
    assert (thumbnail.rows, thumbnail.columns, thumbnail.frames, thumbnail.frame) == (96, 112, 1, 0)
    assert thumbnail.transfer_syntax == "1.2.840.10008.1.2.1"
    assert not thumbnail.pixels.flags.writeable
    assert math.isclose(thumbnail.width / thumbnail.height, 112 / 96, rel_tol=0.05)
    assert isinstance(samples["ct_two_windows"].path, Path)


def test_a_large_frame_is_reduced_band_by_band(workdir, monkeypatch):
    """A 2048 x 2048 radiograph: the float64 frame (32 MB, and its running sums) never exists at
    once; the result is the same as without bands."""
    import tracemalloc

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    import pacsbrowser.core.scaling as scaling

    y, x = np.mgrid[0:2048, 0:2048]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", "2.25.99"
    ds.set_pixel_data(((x * 7 + y * 3) % 4096).astype(np.uint16), "MONOCHROME1", 12)
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    path = workdir / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    render(path, 128)  # warm up

    def measured() -> tuple[np.ndarray, int]:
        tracemalloc.start()
        try:
            pixels = render(path, 128).pixels
            return pixels, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    banded, banded_peak = measured()
    monkeypatch.setattr(scaling, "_BAND_VALUES", 1 << 30)
    whole, whole_peak = measured()
    print(f"\n2048x2048 frame: peak {banded_peak / 1e6:.1f} MB in bands, {whole_peak / 1e6:.1f} MB whole")
    np.testing.assert_array_equal(banded, whole)
    assert banded_peak < 48e6 < whole_peak
