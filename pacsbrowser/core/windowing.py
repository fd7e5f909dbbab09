"""VOI windows (PS3.3 C.11.2.1.2, PS3.4 N.2.1.1): the file's Window Center/Width or VOI LUT, an
automatic window from the pixels, and a window applied through pydicom's apply_windowing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

__all__ = ["Window", "apply_window", "auto_window", "file_voi_lut", "file_window"]


@dataclass(frozen=True)
class Window:
    """A VOI window as DICOM defines it (PS3.3 C.11.2.1.2): LINEAR, LINEAR_EXACT or SIGMOID.

    `source`: "file" (Window Center/Width of the file), "auto" (computed from the pixels),
    "given" (asked for by the caller), "lut" (the file's VOI LUT Sequence; center and width then
    describe the LUT's input range and are for information only).
    """

    center: float
    width: float
    function: str = "LINEAR"
    source: str = "file"
    explanation: str = ""


def auto_window(values: np.ndarray, *, low_percentile: float = 0.5, high_percentile: float = 99.5,
                exclude: float | None = None) -> Window:
    """A robust LINEAR window for modality values with none in the file: from the `low` to the
    `high` percentile (a few hot or padding pixels do not flatten the image), min/max when those
    coincide. `exclude` (Pixel Padding Value) is left out of the statistics."""
    data = np.asarray(values, dtype=np.float64).ravel()
    if exclude is not None:
        kept = data[data != exclude]
        if kept.size:
            data = kept
    data = data[np.isfinite(data)]
    if not data.size:
        return Window(0.5, 1.0, "LINEAR", "auto")
    lo, hi = np.percentile(data, [low_percentile, high_percentile])
    if hi <= lo:
        lo, hi = float(data.min()), float(data.max())
    if hi <= lo:  # a flat image: any window, shown mid grey
        return Window(float(lo) + 0.5, 1.0, "LINEAR", "auto")
    # LINEAR maps c - 0.5 - (w - 1) / 2 to black and c - 0.5 + (w - 1) / 2 to white
    return Window(float(lo + hi) / 2 + 0.5, float(hi - lo) + 1.0, "LINEAR", "auto")


def _window_dataset(ds: Dataset, window: Window) -> Dataset:
    """A small data set carrying `window` for pydicom's apply_windowing, with the attributes that
    set its output range copied from `ds`."""
    voi = Dataset()
    voi.PhotometricInterpretation = "MONOCHROME2"
    voi.BitsStored = int(ds.get("BitsStored", 16) or 16)
    voi.PixelRepresentation = int(ds.get("PixelRepresentation", 0) or 0)
    voi.WindowCenter = window.center
    voi.WindowWidth = window.width
    voi.VOILUTFunction = window.function
    return voi


def apply_window(values: np.ndarray, ds: Dataset, window: Window) -> np.ndarray:
    """Modality values through a window, normalised to 0..1 (pydicom's apply_windowing maps to
    the range the stored bits allow; both ends of that range are found by windowing -inf, +inf)."""
    voi = _window_dataset(ds, window)
    with np.errstate(over="ignore"):
        out = apply_windowing(np.asarray(values, dtype=np.float64), voi)
        y_min, y_max = apply_windowing(np.array([-np.inf, np.inf]), voi)
    return (out - y_min) / (y_max - y_min)


def file_window(ds: Dataset, index: int) -> Window | None:
    """The file's `index`-th Window Center/Width (the last one when there are fewer), if usable."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    try:
        centers = _as_floats(ds["WindowCenter"].value)
        widths = _as_floats(ds["WindowWidth"].value)
        explanations = [str(v) for v in _as_list(ds.get("WindowCenterWidthExplanation", []))]
    except (TypeError, ValueError):
        return None
    if not centers or not widths:
        return None
    i = min(max(0, index), len(centers) - 1, len(widths) - 1)
    function = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    width = widths[i]
    if width <= 0 or (function == "LINEAR" and width < 1) or not math.isfinite(centers[i]):
        return None
    return Window(centers[i], width, function, "file", explanations[i] if i < len(explanations) else "")


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _as_floats(value: Any) -> list[float]:
    return [float(v) for v in _as_list(value)]


def file_voi_lut(ds: Dataset, index: int) -> tuple[int, int, Window] | None:
    """The index of the VOI LUT Sequence item to use, its bits per entry and a Window describing
    its input range, if the file has a usable VOI LUT."""
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    i = min(max(0, index), len(seq) - 1)
    item = seq[i]
    if "LUTDescriptor" not in item or "LUTData" not in item:
        return None
    try:
        entries, first, bits = (int(v) for v in item.LUTDescriptor)
    except (TypeError, ValueError):
        return None
    entries = entries or 65536
    if bits not in (8, *range(10, 17)):
        return None
    explanation = str(item.get("LUTExplanation", "") or "")
    return i, bits, Window(first + entries / 2, float(entries), "LUT", "lut", explanation)
