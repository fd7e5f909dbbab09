"""DCMTK as the reference renderer: the same file, window, frame and size through dcmj2pnm.

`dcmtk_render(path, thumbnail, workdir)` runs DCMTK with the window our thumbnail used (+Wi n for
the file's window, +Wl n for its VOI LUT, +Ww c w for an automatic one, +Wfs for SIGMOID), the
frame it showed (+F), its size (+Sxv/+Syv: DCMTK's default scaling averages areas, as we do), no
overlays (-O), PNG out (+on, -il: not interlaced) read back with our own PNG decoder.

JPEG-LS files go to dcml2pnm (dcmj2pnm has no JPEG-LS codec). DCMTK 3.6.7 has no JPEG 2000 codec:
those files are decompressed by pydicom into a temporary copy first (the decoder is then not
checked by DCMTK, the rest of the pipeline still is; lossless ones are also compared with their
uncompressed twin in test_render.py).
"""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread

from pacsbrowser.core.imaging import Thumbnail
from pacsbrowser.core.png import read_png

DCMJ2PNM = "/usr/bin/dcmj2pnm"
DCML2PNM = "/usr/bin/dcml2pnm"
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
JPEG_2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
             "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")

# Mean absolute difference per pixel and channel, on the 0..255 scale, that a thumbnail may differ
# from DCMTK's rendering by. What is left is rounding (DCMTK truncates window output and rounds
# its scaled intermediate values to integers), YBR->RGB arithmetic and JPEG decoders.
MAD_BOUND = 1.5


class NoReference(Exception):
    """DCMTK could not render the file."""


@dataclass
class Row:
    source: str  # lab / sample / pydicom
    name: str
    what: str
    shape: str
    reference: str  # "dcmj2pnm", "dcml2pnm", "dcmj2pnm (pydicom-decompressed copy)", or why none
    mad: float | None
    max_diff: int | None
    verdict: str  # ok / OVER / skipped: reason / placeholder: label


ROWS: list[Row] = []


def dcmtk_args(thumbnail: Thumbnail, window_index: int = 0) -> list[str]:
    args = ["+on", "-il", "-O"]
    w = thumbnail.window
    if w is not None:
        if w.source == "lut":
            args += ["+Wl", str(window_index + 1)]
        elif w.source == "file":
            args += ["+Wi", str(window_index + 1)]
        else:
            args += ["+Ww", repr(w.center), repr(w.width)]
        if w.function == "SIGMOID" and w.source != "file":
            args += ["+Wfs"]
    if thumbnail.frames > 1 and thumbnail.frame is not None:
        args += ["+F", str(thumbnail.frame + 1)]
    if thumbnail.width >= thumbnail.height:
        args += ["+Sxv", str(thumbnail.width)]
    else:
        args += ["+Syv", str(thumbnail.height)]
    return args


def dcmtk_render(path: Path, thumbnail: Thumbnail, workdir: Path, window_index: int = 0) -> tuple[np.ndarray, str]:
    """DCMTK's rendering of `path` with the settings `thumbnail` was made with, and which tool."""
    ts = thumbnail.transfer_syntax
    tool, how = DCMJ2PNM, "dcmj2pnm"
    source = Path(path)
    if ts in JPEG_LS:
        tool, how = DCML2PNM, "dcml2pnm"
    elif ts in JPEG_2000:
        ds = dcmread(source)
        ds.decompress()
        source = workdir / f"{source.stem}.decompressed.dcm"
        ds.save_as(source)
        how = "dcmj2pnm (pydicom-decompressed copy)"
    out = workdir / f"{Path(path).stem}.dcmtk.png"
    result = subprocess.run([tool, *dcmtk_args(thumbnail, window_index), str(source), str(out)],
                            capture_output=True, text=True, timeout=60)
    try:
        if result.returncode != 0 or not out.exists():
            message = " ".join(line for line in result.stderr.splitlines() if line.startswith(("E:", "F:")))
            raise NoReference(message or f"exit status {result.returncode}")
        pixels, _ = read_png(out)
        return pixels, how
    finally:
        out.unlink(missing_ok=True)
        if source != Path(path):
            source.unlink(missing_ok=True)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    d = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return float(d.mean()), int(d.max())


def table() -> list[str]:
    """The per-file table, then a summary: what the terminal summary prints."""
    if not ROWS:
        return []
    rows = sorted(ROWS, key=lambda r: (r.source, r.name))
    lines = [f"{'source':8} {'file':44} {'MAD':>6} {'max':>4}  {'shape':14} {'reference':38} {'verdict':10} what",
             "-" * 150]
    for r in rows:
        mad = f"{r.mad:6.3f}" if r.mad is not None else "     -"
        mx = f"{r.max_diff:4d}" if r.max_diff is not None else "   -"
        lines.append(f"{r.source:8} {r.name[:44]:44} {mad} {mx}  {r.shape:14} {r.reference[:38]:38} "
                     f"{r.verdict:10} {r.what}")
    compared = [r.mad for r in rows if r.mad is not None and r.verdict == "ok"]
    over = [r for r in rows if r.verdict.startswith("OVER")]
    known = [r for r in rows if r.verdict == "known"]
    placeholders = [r for r in rows if r.verdict.startswith("placeholder")]
    no_reference = [r for r in rows if r.verdict == "no reference"]
    if compared:
        lines.append("-" * 150)
        lines.append(f"{len(compared)} renderings within the bound {MAD_BOUND}: MAD max {max(compared):.3f}, "
                     f"median {statistics.median(compared):.3f}, mean {statistics.fmean(compared):.3f}; "
                     f"over the bound: {len(over)}; known DCMTK faults or damaged on purpose: {len(known)}; "
                     f"placeholders (no image): {len(placeholders)}; DCMTK cannot read: {len(no_reference)}")
    return lines
