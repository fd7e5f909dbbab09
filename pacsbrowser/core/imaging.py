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

The steps live apart: core.scaling (size and area averaging), core.windowing (the VOI window),
core.png (the PNG codec the thumbnail cache and `pacsbrowser thumbnail` write with).
"""

from __future__ import annotations

import enum
import logging
import math
import os
import struct
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
    pixel_array,
)
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from .scaling import downscale, fit_size, pixel_aspect, resample
from .sopclasses import is_image_class
from .windowing import Window, apply_window, auto_window, file_voi_lut, file_window

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
    "downscale",
    "fit_size",
    "placeholder",
    "render",
    "representative_frame",
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
    return bool(sop_class) and is_image_class(sop_class)


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


def representative_frame(frames: int) -> int:
    """The frame a multi-frame object is shown by: the middle one (0-based)."""
    return max(0, (frames - 1) // 2) if frames > 1 else 0




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
    height, width = (rows, columns) if size is None else fit_size(rows, columns, int(size), pixel_aspect(ds))
    common = dict(rows=rows, columns=columns, frames=frames, frame=frame, **attrs)

    if arr.ndim == 3 and arr.shape[-1] == 3:  # RGB, or YBR the decoder converted to RGB
        unit = resample(arr, height, width, lambda band: _color_to_unit(band, ds))
        return Thumbnail(pixels=_to_uint8(unit), **common)
    if arr.ndim != 2:
        raise _Unrenderable(Kind.UNSUPPORTED, "Unsupported image",
                            f"{samples} samples per pixel, photometric interpretation {photometric or 'missing'}")
    if photometric == "PALETTE COLOR":
        unit = resample(arr, height, width, lambda band: _palette_to_unit(band, ds))
        return Thumbnail(pixels=_to_uint8(unit), **common)
    if photometric not in ("MONOCHROME1", "MONOCHROME2", ""):
        raise _Unrenderable(Kind.UNSUPPORTED, "Unsupported image",
                            f"photometric interpretation {photometric} with one sample per pixel")

    # modality LUT band by band, scaled, then the VOI on the small image (DCMTK's order)
    small = resample(arr, height, width, lambda band: _modality_values(band, ds))
    voi_lut = None if given is not None or not prefer_voi_lut else file_voi_lut(ds, window_index)
    used: Window
    if voi_lut is not None:
        item, bits, used = voi_lut
        mapped = apply_voi(np.rint(small).astype(np.int64), ds, index=item)
        unit = mapped.astype(np.float64) / float(2**bits - 1)
    else:
        used = given or file_window(ds, window_index) or _auto_window_of(arr, ds)
        unit = apply_window(small, ds, used)
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
