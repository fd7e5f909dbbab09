"""numpy display arrays (core.imaging's uint8 grey or RGB) to QImage."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def to_qimage(pixels: np.ndarray) -> QImage:
    """A QImage owning a copy of `pixels`: (h, w) uint8 grey or (h, w, 3) uint8 RGB."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif arr.ndim == 3 and arr.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
    else:
        raise ValueError(f"cannot show an array of shape {arr.shape}")
    height, width = arr.shape[:2]
    return QImage(arr.data, width, height, arr.strides[0], fmt).copy()
