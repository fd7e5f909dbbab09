"""From a DICOM file (or data set) to a display-ready uint8 array: thumbnails and previews.

No Qt here: the window turns `Thumbnail.pixels` into a QImage and draws a placeholder's `label`.

The display pipeline follows PS3.4 N.2 and the order DCMTK uses, our reference renderer::

    stored values --(pydicom decoder, one frame)--> modality LUT (rescale or LUT sequence)
      --> scale to the requested size (area averaging)  --> VOI (window or VOI LUT sequence)
      --> MONOCHROME1 inversion --> uint8

Scaling the modality values before the VOI is what `dcmj2pnm` does, and it is cheap: the frame is
converted to floats a band of rows at a time and narrowed at once, so a large radiograph never
exists as float64 in full. Colour images (RGB, YBR converted by the decoder, palette colour through
its LUT) are scaled as RGB. Each step uses pydicom's own function where there is one
(`pixel_array(index=)`, `apply_modality_lut`, `apply_windowing`, `apply_voi`, `apply_color_lut`,
YBR conversion inside the decoder); numpy does the rest.

`render()` never raises for what is in a file: objects without pixel data (SR, presentation
states, key object selections, encapsulated PDF, RT plans, waveforms...) become a placeholder
labelled with what they are, damaged or undecodable files a placeholder that says so.

A tiny PNG codec (zlib, no Pillow) is here too: the thumbnail cache and `pacsbrowser thumbnail`
write PNG, the cache reads its own files back.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import secrets
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
    pixel_array,
)
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SIZE",
    "FrameError",
    "MAX_SIZE",
    "RENDER_VERSION",
    "Kind",
    "Thumbnail",
    "Window",
    "auto_window",
    "decode_png",
    "downscale",
    "encode_png",
    "fit_size",
    "placeholder",
    "read_png",
    "render",
    "representative_frame",
    "write_png",
]

DEFAULT_SIZE = 128
MAX_SIZE = 4096
# Bump when a change to the pipeline changes the pixels: cached thumbnails become misses.
RENDER_VERSION = 1

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Elements larger than this stay in the file until used (LUTs are read on first access; pixel
# data is read frame by frame by pydicom's decoder straight from the file).
_DEFER_SIZE = 64 * 1024

PLACEHOLDER_GREY = 96
PLACEHOLDER_BORDER = 128


class Kind(str, enum.Enum):
    IMAGE = "image"
    NO_PIXELS = "no-pixels"  # SR, presentation state, KOS, PDF, RT plan, waveform...
    DAMAGED = "damaged"  # not DICOM, truncated, inconsistent attributes
    UNSUPPORTED = "unsupported"  # a transfer syntax or photometric interpretation we cannot decode
    MISSING = "missing"  # the file is gone (only the thumbnail service makes these)


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


@dataclass(frozen=True, eq=False)
class Thumbnail:
    """A display-ready image: `pixels` is uint8, (h, w) grey or (h, w, 3) RGB, read-only.

    A placeholder (`kind` is not IMAGE) has a plain grey square as pixels and a `label` the window
    draws on it ("Structured report", "Damaged file"...), with the reason in `detail`.
    """

    pixels: np.ndarray
    kind: Kind = Kind.IMAGE
    label: str = ""
    detail: str = ""
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    modality: str = ""
    photometric: str = ""  # as in the file
    transfer_syntax: str = ""
    rows: int = 0  # of the source image
    columns: int = 0
    frames: int = 0
    frame: int | None = None  # 0-based index of the frame shown
    window: Window | None = None  # grey images only

    @property
    def is_placeholder(self) -> bool:
        return self.kind is not Kind.IMAGE

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 3

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def __repr__(self) -> str:
        what = self.label or self.photometric
        return (f"Thumbnail({self.kind.value}, {what!r}, {self.width}x{self.height}"
                f"{'x3' if self.is_color else ''}, sop={self.sop_instance_uid!r})")


# --------------------------------------------------------------------------------------------
# Geometry


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


def _reduce(image: np.ndarray, height: int, width: int,
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
    out = _reduce(np.asarray(image), height, width, lambda band: band)
    return out.copy() if out is image else out


def _pixel_aspect(ds: Dataset) -> float:
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


# --------------------------------------------------------------------------------------------
# Placeholders


_NO_PIXEL_LABELS = {
    "SR": "Structured report",
    "PR": "Presentation state",
    "KO": "Key objects",
    "DOC": "Document",
    "RTPLAN": "RT plan",
    "RTSTRUCT": "RT structures",
    "RTRECORD": "RT record",
    "ECG": "Waveform",
    "HD": "Waveform",
    "AU": "Audio",
    "REG": "Registration",
    "FID": "Fiducials",
}


def placeholder(label: str, size: int = DEFAULT_SIZE, *, kind: Kind = Kind.NO_PIXELS, detail: str = "",
                **attrs: Any) -> Thumbnail:
    """A grey `size` x `size` square with a lighter border, for the window to write `label` on."""
    size = max(1, int(size))
    pixels = np.full((size, size), PLACEHOLDER_GREY, dtype=np.uint8)
    pixels[[0, -1], :] = PLACEHOLDER_BORDER
    pixels[:, [0, -1]] = PLACEHOLDER_BORDER
    pixels.flags.writeable = False
    return Thumbnail(pixels=pixels, kind=kind, label=label, detail=detail, **attrs)


def _sop_class(ds: Dataset) -> str:
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if not sop_class and hasattr(ds, "file_meta"):
        sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    return sop_class


def _should_have_pixels(ds: Dataset) -> bool:
    """An image object (by its Image Pixel attributes or its SOP class) that has no pixel data
    is damaged, typically cut short; an SR or a PDF is not."""
    if "Rows" in ds or "Columns" in ds:
        return True
    if len(ds) == 0:  # nothing after the File Meta Information
        return True
    sop_class = _sop_class(ds)
    return bool(sop_class) and "Image Storage" in UID(sop_class).name


def _no_pixels_label(ds: Dataset) -> str:
    if "EncapsulatedDocument" in ds:
        mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "")
        return {"application/pdf": "PDF document", "text/xml": "XML document",
                "model/stl": "3D model"}.get(mime.lower(), "Document")
    modality = str(ds.get("Modality", "") or "").upper()
    if modality in _NO_PIXEL_LABELS:
        return _NO_PIXEL_LABELS[modality]
    sop_class = _sop_class(ds)
    if sop_class:
        name = UID(sop_class).name
        if name and name != sop_class:
            return name.removesuffix(" Storage").removesuffix(" - For Presentation")
    return "No image"


# --------------------------------------------------------------------------------------------
# Windows


def representative_frame(frames: int) -> int:
    """The frame a multi-frame object is shown by: the middle one (0-based)."""
    return max(0, (frames - 1) // 2) if frames > 1 else 0


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


def _apply_window(values: np.ndarray, ds: Dataset, window: Window) -> np.ndarray:
    """Modality values through a window, normalised to 0..1 (pydicom's apply_windowing maps to
    the range the stored bits allow; both ends of that range are found by windowing -inf, +inf)."""
    voi = _window_dataset(ds, window)
    with np.errstate(over="ignore"):
        out = apply_windowing(np.asarray(values, dtype=np.float64), voi)
        y_min, y_max = apply_windowing(np.array([-np.inf, np.inf]), voi)
    return (out - y_min) / (y_max - y_min)


def _file_window(ds: Dataset, index: int) -> Window | None:
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


def _voi_lut(ds: Dataset, index: int) -> tuple[int, int, Window] | None:
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


# --------------------------------------------------------------------------------------------
# Rendering


class FrameError(ValueError):
    """A frame that the object does not have was asked for."""


class _Unrenderable(Exception):
    def __init__(self, kind: Kind, label: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.label, self.detail = kind, label, detail


def _read_header(path: Path) -> Dataset:
    try:
        return dcmread(path, defer_size=_DEFER_SIZE)
    except InvalidDicomError:
        pass
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, struct.error, KeyError, TypeError, IndexError) as exc:
        raise _Unrenderable(Kind.DAMAGED, "Damaged file", f"the file cannot be read: {exc}") from exc
    # no preamble/DICM prefix: an old or bare data set, or not DICOM at all
    try:
        ds = dcmread(path, defer_size=_DEFER_SIZE, force=True)
    except Exception as exc:  # noqa: BLE001 - anything a garbage file makes pydicom raise
        raise _Unrenderable(Kind.DAMAGED, "Not a DICOM file", f"not a DICOM file: {exc}") from exc
    if not any(k in ds for k in ("SOPClassUID", "Rows", *_PIXEL_KEYWORDS)):
        raise _Unrenderable(Kind.DAMAGED, "Not a DICOM file", "the file holds no DICOM data set")
    return ds


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value in (None, ""):
        if default is None:
            raise _Unrenderable(Kind.DAMAGED, "Damaged file", f"{keyword} is missing")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _Unrenderable(Kind.DAMAGED, "Damaged file", f"{keyword} is not a number: {value!r}") from exc


def _describe(ds: Dataset) -> dict[str, Any]:
    file_meta = getattr(ds, "file_meta", None)
    ts = file_meta.get("TransferSyntaxUID", "") if file_meta is not None else ""
    return {
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "") or ""),
        "sop_class_uid": str(ds.get("SOPClassUID", "") or ""),
        "modality": str(ds.get("Modality", "") or ""),
        "photometric": str(ds.get("PhotometricInterpretation", "") or ""),
        "transfer_syntax": str(ts or ""),
    }


def _decode_frame(source: Path | Dataset, ds: Dataset, index: int) -> np.ndarray:
    """One frame through pydicom's decoders (YBR_FULL/_422 come back as RGB, J2K's YBR_ICT/RCT
    too). From a path, only that frame is read from the file."""
    ts = _describe(ds)["transfer_syntax"]
    ts_name = UID(ts).name if ts else "unknown transfer syntax"
    try:
        if isinstance(source, Dataset) or ts == DeflatedExplicitVRLittleEndian:
            # a deflated file was inflated into memory by dcmread: decode from the data set
            return pixel_array(ds, index=index)
        try:
            return pixel_array(os.fspath(source), index=index)
        except (ValueError, AttributeError, KeyError, IndexError, EOFError, struct.error):
            # pydicom's frame-by-frame file reader is stricter than dcmread (odd item tags,
            # missing meta elements...): decode from the data set read by dcmread instead
            return pixel_array(ds, index=index)
    except NotImplementedError as exc:
        raise _Unrenderable(Kind.UNSUPPORTED, "Cannot decode", f"{ts_name}: {exc}") from exc
    except RuntimeError as exc:  # every plugin failed
        raise _Unrenderable(Kind.UNSUPPORTED, "Cannot decode",
                            f"{ts_name}: {_first_line(exc)}") from exc
    except (ValueError, EOFError, OSError, struct.error, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _Unrenderable(Kind.DAMAGED, "Damaged file", f"the pixel data cannot be read: {exc}") from exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3]) or type(exc).__name__


def _modality_values(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    if arr.dtype.kind == "f":  # float pixel data: already in real-world units
        return arr.astype(np.float64, copy=False)
    out = apply_modality_lut(arr, ds)
    return out


def _color_to_unit(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """RGB values (any bit depth) as floats in 0..1."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    bits = _int(ds, "BitsStored", arr.dtype.itemsize * 8)
    bits = max(1, min(bits, arr.dtype.itemsize * 8))
    return arr.astype(np.float64) / float(2**bits - 1)


def _palette_to_unit(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    rgb = apply_color_lut(arr, ds)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float64) / 255.0
    # 16-bit LUT entries (PS3.3 C.7.6.3.1.5): full range is 0..65535
    return rgb.astype(np.float64) / 65535.0


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    out = np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
    out.flags.writeable = False
    return out


def render(source: str | os.PathLike[str] | Dataset, size: int | None = DEFAULT_SIZE, *,
           frame: int | None = None, window: tuple[float, float] | Window | None = None,
           window_index: int = 0, prefer_voi_lut: bool = True) -> Thumbnail:
    """A display-ready image of `source` whose longer side is `size` pixels (None: full size).

    `frame`: 0-based frame of a multi-frame object (default: the middle one). `window`: a
    (center, width) or Window to use instead of the file's; otherwise the file's VOI LUT Sequence
    (`prefer_voi_lut`) or its `window_index`-th Window Center/Width, else an automatic window.

    Raises only for a missing file (FileNotFoundError) or bad arguments (ValueError; FrameError
    for a frame the object does not have): whatever is wrong in the
    file gives a placeholder.
    """
    if size is not None and not 1 <= int(size) <= MAX_SIZE:
        raise ValueError(f"size must be from 1 to {MAX_SIZE}, not {size}")
    placeholder_size = int(size) if size is not None else DEFAULT_SIZE
    given = _given_window(window)
    attrs: dict[str, Any] = {}
    try:
        if isinstance(source, Dataset):
            ds = source
            src: Path | Dataset = source
        else:
            src = Path(source)
            if not src.is_file():
                raise FileNotFoundError(f"no such file: {src}")
            ds = _read_header(src)
        attrs = _describe(ds)
        return _render(src, ds, size, frame, given, window_index, prefer_voi_lut, attrs)
    except _Unrenderable as exc:
        return placeholder(exc.label, placeholder_size, kind=exc.kind, detail=exc.detail, **attrs)
    except (FileNotFoundError, FrameError):
        raise
    except MemoryError as exc:
        return placeholder("Too large", placeholder_size, kind=Kind.UNSUPPORTED,
                           detail=f"not enough memory to decode the image: {exc}", **attrs)
    except Exception as exc:  # noqa: BLE001 - a file must never crash the caller
        log.debug("rendering %s failed", source, exc_info=True)
        return placeholder("Damaged file", placeholder_size, kind=Kind.DAMAGED,
                           detail=f"{type(exc).__name__}: {exc}", **attrs)


def _given_window(window: tuple[float, float] | Window | None) -> Window | None:
    if window is None:
        return None
    if isinstance(window, Window):
        return window
    center, width = window
    if not width >= 1:
        raise ValueError(f"a window width must be at least 1, not {width}")
    return Window(float(center), float(width), "LINEAR", "given")


def _render(src: Path | Dataset, ds: Dataset, size: int | None, frame: int | None, given: Window | None,
            window_index: int, prefer_voi_lut: bool, attrs: dict[str, Any]) -> Thumbnail:
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        if _should_have_pixels(ds):
            raise _Unrenderable(Kind.DAMAGED, "Damaged file",
                                "an image without pixel data: the file may be truncated")
        label = _no_pixels_label(ds)
        raise _Unrenderable(Kind.NO_PIXELS, label, "the object holds no image")
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames", 1)
    samples = _int(ds, "SamplesPerPixel", 1)
    photometric = attrs["photometric"].strip().upper()
    if rows < 1 or columns < 1 or frames < 1:
        raise _Unrenderable(Kind.DAMAGED, "Damaged file", f"image of {rows}x{columns}, {frames} frame(s)")
    if frame is None:
        frame = representative_frame(frames)
    elif not 0 <= frame < frames:
        raise FrameError(f"frame {frame} does not exist: the object has {frames} frame(s)")

    arr = _decode_frame(src, ds, frame)
    if frames > 1 and arr.ndim == (3 if samples == 1 else 4):  # a decoder that ignored index
        arr = arr[frame]
    height, width = (rows, columns) if size is None else fit_size(rows, columns, int(size), _pixel_aspect(ds))
    common = dict(rows=rows, columns=columns, frames=frames, frame=frame, **attrs)

    if arr.ndim == 3 and arr.shape[-1] == 3:  # RGB, or YBR the decoder converted to RGB
        unit = _reduce(arr, height, width, lambda band: _color_to_unit(band, ds))
        return Thumbnail(pixels=_to_uint8(unit), **common)
    if arr.ndim != 2:
        raise _Unrenderable(Kind.UNSUPPORTED, "Unsupported image",
                            f"{samples} samples per pixel, photometric interpretation {photometric or 'missing'}")
    if photometric == "PALETTE COLOR":
        unit = _reduce(arr, height, width, lambda band: _palette_to_unit(band, ds))
        return Thumbnail(pixels=_to_uint8(unit), **common)
    if photometric not in ("MONOCHROME1", "MONOCHROME2", ""):
        raise _Unrenderable(Kind.UNSUPPORTED, "Unsupported image",
                            f"photometric interpretation {photometric} with one sample per pixel")

    # modality LUT band by band, scaled, then the VOI on the small image (DCMTK's order)
    small = _reduce(arr, height, width, lambda band: _modality_values(band, ds))
    voi_lut = None if given is not None or not prefer_voi_lut else _voi_lut(ds, window_index)
    used: Window
    if voi_lut is not None:
        item, bits, used = voi_lut
        mapped = apply_voi(np.rint(small).astype(np.int64), ds, index=item)
        unit = mapped.astype(np.float64) / float(2**bits - 1)
    else:
        used = given or _file_window(ds, window_index) or _auto_window_of(arr, ds)
        unit = _apply_window(small, ds, used)
    del arr
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return Thumbnail(pixels=_to_uint8(unit), window=used, **common)


_AUTO_WINDOW_SAMPLES = 1 << 20


def _auto_window_of(arr: np.ndarray, ds: Dataset) -> Window:
    """The automatic window from the full-resolution modality values (every k-th pixel of a
    large image: a million values are plenty for two percentiles)."""
    step = max(1, math.ceil(math.sqrt(arr.size / _AUTO_WINDOW_SAMPLES)))
    values = _modality_values(arr[::step, ::step], ds)
    return auto_window(values, exclude=_padding(ds))


def _padding(ds: Dataset) -> float | None:
    """Pixel Padding Value in modality units (it is given as a stored value)."""
    if "PixelPaddingValue" not in ds or "ModalityLUTSequence" in ds:
        return None
    try:
        stored = float(ds.PixelPaddingValue)
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        return None
    return stored * slope + intercept


# --------------------------------------------------------------------------------------------
# PNG (PS: no Pillow in the project; zlib does the compression)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, text: dict[str, str] | None = None, *, level: int = 6) -> bytes:
    """8-bit grey (h, w) or RGB (h, w, 3) PNG bytes; `text` goes into tEXt chunks (Latin-1)."""
    arr = np.ascontiguousarray(pixels)
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, not {arr.dtype}")
    if arr.ndim == 2:
        color_type, channels = 0, 1
    elif arr.ndim == 3 and arr.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"PNG pixels must be (h, w) or (h, w, 3), not {arr.shape}")
    height, width = arr.shape[:2]
    if height < 1 or width < 1:
        raise ValueError("a PNG needs at least one row and column")
    rows = arr.reshape(height, width * channels)
    # filter type 1 (Sub) on every row: vectorised, and smaller than no filter on smooth images
    sub = rows.copy()
    sub[:, channels:] = rows[:, channels:] - rows[:, :-channels]  # uint8 arithmetic wraps mod 256
    raw = np.concatenate([np.ones((height, 1), np.uint8), sub], axis=1).tobytes()
    out = [_PNG_SIGNATURE,
           _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))]
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace")))
    out.append(_chunk(b"IDAT", zlib.compress(raw, level)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def decode_png(data: bytes) -> tuple[np.ndarray, dict[str, str]]:
    """Pixels and tEXt of an 8-bit grey or RGB, non-interlaced PNG (ours, or DCMTK's with -il).

    Raises ValueError for anything else or a damaged file.
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(_PNG_SIGNATURE)
    header = None
    idat: list[bytes] = []
    text: dict[str, str] = {}
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ValueError("truncated PNG chunk")
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in PNG chunk {kind!r}")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"IEND":
            break
    else:
        raise ValueError("PNG without IEND chunk")
    if header is None:
        raise ValueError("PNG without IHDR chunk")
    width, height, depth, color_type, _, _, interlace = header
    channels = {0: 1, 2: 3}.get(color_type)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {color_type}, interlace {interlace}")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ValueError(f"damaged PNG data: {exc}") from exc
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG data length does not match its size")
    lines = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        ftype, line = lines[y, 0], lines[y, 1:].astype(np.int32)
        if ftype == 0:
            cur = line
        elif ftype == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) & 0xFF
        elif ftype == 2:  # Up
            cur = (line + prev) & 0xFF
        elif ftype in (3, 4):  # Average, Paeth: each byte depends on the one to its left
            cur = line.copy()
            up = prev
            for x in range(stride):
                left = int(cur[x - channels]) if x >= channels else 0
                if ftype == 3:
                    predictor = (left + int(up[x])) >> 1
                else:
                    upper_left = int(up[x - channels]) if x >= channels else 0
                    p = left + int(up[x]) - upper_left
                    pa, pb, pc = abs(p - left), abs(p - int(up[x])), abs(p - upper_left)
                    predictor = left if pa <= pb and pa <= pc else (int(up[x]) if pb <= pc else upper_left)
                cur[x] = (int(cur[x]) + predictor) & 0xFF
        else:
            raise ValueError(f"unknown PNG filter type {ftype}")
        out[y] = cur
        prev = cur.astype(np.int32)
    pixels = out.reshape(height, width) if channels == 1 else out.reshape(height, width, 3)
    return pixels, text


def read_png(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, str]]:
    return decode_png(Path(path).read_bytes())


def write_png(path: str | os.PathLike[str], pixels: np.ndarray, text: dict[str, str] | None = None) -> Path:
    """Write a PNG atomically: a temporary file in the same folder, then a rename over `path`.

    The file gets the usual permissions (0666 less the umask), unlike a mkstemp file.
    """
    path = Path(path)
    data = encode_png(pixels, text)
    for _ in range(100):  # a name clash needs another process with the same pid and token
        tmp = path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(6)}.png")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover
        raise FileExistsError(f"no free temporary name next to {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
