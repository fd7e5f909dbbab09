"""Geometry of a rendered image: its size on screen, and area-averaging resampling that never
holds a large frame as float64 in full."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from pydicom.dataset import Dataset

__all__ = ["downscale", "fit_size", "pixel_aspect", "resample"]


def fit_size(rows: int, columns: int, size: int, aspect: float = 1.0) -> tuple[int, int]:
    """(height, width) of an image of `rows` x `columns` scaled so its longer side is `size`.

    `aspect` is the height/width ratio of one pixel (row spacing / column spacing). The shorter
    side is rounded down, as DCMTK does, and is at least 1.
    """
    if rows < 1 or columns < 1:
        raise ValueError(f"an image needs at least one row and column, not {rows}x{columns}")
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    height = rows * aspect
    width = float(columns)
    if width >= height:
        return max(1, int(math.floor(height * size / width + 1e-9))), size
    return size, max(1, int(math.floor(width * size / height + 1e-9)))


def _resample_axis(src: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Area averaging along one axis, exact for any ratio: output pixel j is the mean of the
    input over [j, j+1) * n_in / n_out. The running integral of a piecewise-constant row is
    piecewise linear, so each mean is a difference of two interpolated integrals: O(n), and no
    BLAS (whose spinning threads would fight the worker processes for the cores)."""
    n_in = src.shape[axis]
    if n_in == n_out:
        return src
    a = np.moveaxis(src, axis, 0)
    integral = np.empty((n_in + 1, *a.shape[1:]), dtype=np.float64)
    integral[0] = 0.0
    np.cumsum(a, axis=0, dtype=np.float64, out=integral[1:])
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    k = np.minimum(np.floor(edges).astype(np.intp), n_in - 1)
    frac = (edges - k).reshape(-1, *([1] * (a.ndim - 1)))
    at_edges = integral[k] + frac * a[k]
    out = (at_edges[1:] - at_edges[:-1]) * (n_out / n_in)
    return np.moveaxis(out, 0, axis)


# Rows are converted to floats and narrowed a band at a time: a 4000 x 5000 mammogram never exists
# as float64 (160 MB) in a worker, only its stored values and a band of this many values (4 MB).
_BAND_VALUES = 1 << 19


def resample(image: np.ndarray, height: int, width: int,
            to_float: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`to_float` of `image`, resampled to (height, width) by area averaging: a band of rows at a
    time narrowed to `width` columns, then the narrow image to `height` rows. Area averaging is
    separable, so the order of the axes does not change the result."""
    if height < 1 or width < 1:
        raise ValueError("the output needs at least one row and column")
    row_values = max(1, int(np.prod(image.shape[1:])))
    band = max(1, _BAND_VALUES // row_values)
    parts = [_resample_axis(np.asarray(to_float(image[start:start + band]), dtype=np.float64), width, 1)
             for start in range(0, image.shape[0], band)]
    narrow = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return _resample_axis(narrow, height, 0)


def downscale(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` (h, w) or (h, w, c) resampled to (height, width) by area averaging, as float64.

    Exact for any ratio (each output pixel averages the input area it covers, like DCMTK's
    default scaling); enlarging works too (each output pixel then takes the input pixel under
    it, blended at the seams).
    """
    out = resample(np.asarray(image), height, width, lambda band: band)
    return out.copy() if out is image else out


def pixel_aspect(ds: Dataset) -> float:
    """Height/width of one pixel: Pixel Aspect Ratio, else Pixel Spacing; 1 when unknown."""
    try:
        if "PixelAspectRatio" in ds:
            vertical, horizontal = (float(v) for v in ds.PixelAspectRatio)
            if vertical > 0 and horizontal > 0:
                return vertical / horizontal
        if "PixelSpacing" in ds:
            row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
            if row_spacing > 0 and column_spacing > 0:
                return row_spacing / column_spacing
    except (TypeError, ValueError):
        pass
    return 1.0
