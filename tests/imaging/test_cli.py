"""`pacsbrowser thumbnail FILE... --size N --out DIR`: one PNG per input, named after it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pacsbrowser.cli import build_parser, main
from pacsbrowser.core.imaging import render
from pacsbrowser.core.png import read_png
from pacsbrowser.core.thumbcache import thumbnail_from_png

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pacsbrowser", "thumbnail", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_one_png_per_file_named_after_it(samples, workdir):
    inputs = workdir / "in"
    inputs.mkdir()
    names = {"CT001.dcm": "ct_two_windows", "US.multi.dcm": "rgb", "IM0001": "multiframe_grey",
             "report.dcm": "sr", "XA.dcm": "j2k_lossless_rgb"}
    for target, sample in names.items():
        shutil.copyfile(samples[sample].path, inputs / target)
    result = run_cli(*(str(inputs / n) for n in names), "--size", "96", "--out", str(workdir / "out"),
                     cwd=workdir)
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (workdir / "out").iterdir())
    assert written == ["CT001.png", "IM0001.png", "US.multi.png", "XA.png", "report.png"]
    for source, png in (("CT001.dcm", "CT001.png"), ("US.multi.dcm", "US.multi.png"), ("IM0001", "IM0001.png"),
                        ("XA.dcm", "XA.png")):
        pixels, _ = read_png(workdir / "out" / png)
        np.testing.assert_array_equal(pixels, render(inputs / source, 96).pixels, err_msg=png)
        assert max(pixels.shape[:2]) == 96
    report = thumbnail_from_png((workdir / "out" / "report.png").read_bytes())
    assert report.label == "Structured report" and report.pixels.shape == (96, 96)
    assert "CT001.dcm" in result.stdout and "window 40/400 (file)" in result.stdout
    assert "frame 3 of 5" in result.stdout and "placeholder 'Structured report'" in result.stdout


def test_damaged_files_make_the_exit_status_partial_and_missing_ones_are_refused(samples, workdir):
    shutil.copyfile(samples["truncated_pixels"].path, workdir / "broken.dcm")
    shutil.copyfile(samples["mono1"].path, workdir / "CR.dcm")
    missing = run_cli("broken.dcm", "CR.dcm", "gone.dcm", "--out", "thumbs", cwd=workdir)
    assert missing.returncode == 2 and "argument FILE: 'gone.dcm' does not exist" in missing.stderr  # a typo
    result = run_cli("broken.dcm", "CR.dcm", "--out", "thumbs", cwd=workdir)
    assert result.returncode == 9, (result.stdout, result.stderr)
    assert sorted(p.name for p in (workdir / "thumbs").iterdir()) == ["CR.png", "broken.png"]
    pixels, _ = read_png(workdir / "thumbs" / "CR.png")
    assert max(pixels.shape) == 128  # the default size
    assert "broken.dcm" in result.stderr and "Damaged file" in result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr


def test_refuses_two_inputs_with_one_output_name_and_bad_sizes(samples, workdir, capsys):
    (workdir / "a").mkdir()
    (workdir / "b").mkdir()
    for d in ("a", "b"):
        shutil.copyfile(samples["rgb"].path, workdir / d / "X.dcm")
    out = workdir / "out"
    assert main(["thumbnail", str(workdir / "a" / "X.dcm"), str(workdir / "b" / "X.dcm"), "--out", str(out)]) == 1
    assert "would both be written to X.png" in capsys.readouterr().err
    assert not out.exists()
    assert main(["thumbnail", str(workdir / "a" / "X.dcm"), "--size", "0", "--out", str(out)]) == 2  # usage
    assert main(["thumbnail", str(workdir / "a" / "X.dcm"), "--workers", "0", "--out", str(out)]) == 2
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["thumbnail", "--out", str(out)])  # no FILE
    assert exc.value.code == 2


def test_a_single_file_in_process(samples, workdir, capsys):
    """One file needs no worker process: rendered on a worker thread of this process."""
    shutil.copyfile(samples["palette16"].path, workdir / "PAL.dcm")
    assert main(["thumbnail", str(workdir / "PAL.dcm"), "--size", "40", "--out", str(workdir)]) == 0
    pixels, _ = read_png(workdir / "PAL.png")
    np.testing.assert_array_equal(pixels, render(workdir / "PAL.dcm", 40).pixels)
    assert "RGB" in capsys.readouterr().out


def test_registered_with_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.dcm").write_bytes(b"")
    parser = build_parser()
    args = parser.parse_args(["thumbnail", "x.dcm", "--size", "64", "--out", "d"])
    assert (args.size, args.out, args.files) == (64, Path("d"), [Path("x.dcm")])
