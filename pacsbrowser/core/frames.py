"""Frames for an image viewer: each file read and decompressed once into a bounded cache of data
sets, then any frame rendered with any window by `imaging.render` (the display pipeline runs again
on that one frame only: about 10 ms for 512 x 512).

    cache = DecodedCache()
    thumbnail, info = render_frame(cache, FrameKey(uid, frame=0, window=None, size=512), path)

Blocking and thread-safe: run it on worker threads (two threads asking for the same file wait for
one read). No Qt here; the window turns the pixels into an image and writes `info` over it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .imaging import FrameError, Kind, Thumbnail, Window, placeholder, render

log = logging.getLogger(__name__)

__all__ = ["DecodedCache", "FrameKey", "ImageInfo", "read_info", "render_frame"]

DECODED_BYTES = 512 * 1024 * 1024  # data sets kept decoded (a 300-slice CT is ~160 MB)
DECOMPRESS_LIMIT = 256 * 1024 * 1024  # larger compressed objects are decoded frame by frame


@dataclass(frozen=True)
class FrameKey:
    """What to render: one frame of one instance, with a window (None: the file's own or
    automatic) at a size (the longer side, in pixels)."""

    sop_instance_uid: str
    frame: int
    window: Window | None
    size: int


@dataclass(frozen=True)
class ImageInfo:
    """What a viewer writes over the image. Patient data is for the viewer's eyes only: it is
    kept out of repr (and so out of logs)."""

    patient_name: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)
    birth_date: str = field(default="", repr=False)
    sex: str = ""
    study_date: str = ""
    study_description: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = ""
    instance_number: str = ""
    windows: tuple[Window, ...] = ()  # the file's Window Center/Width values, as presets


class DecodedCache:
    """Data sets read and decompressed once, least recently used dropped beyond `max_bytes`.
    Thread-safe; two threads asking for the same file wait for one read."""

    def __init__(self, max_bytes: int = DECODED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Dataset | None, ImageInfo, int]] = OrderedDict()
        self._loading: dict[str, threading.Event] = {}
        self._bytes = 0

    def get(self, path: Path) -> tuple[Dataset | None, ImageInfo]:
        key = str(path)
        while True:
            with self._lock:
                item = self._items.get(key)
                if item is not None:
                    self._items.move_to_end(key)
                    return item[0], item[1]
                event = self._loading.get(key)
                if event is None:
                    event = self._loading[key] = threading.Event()
                    break
            event.wait(30)
        try:
            ds, info = _load(path)
            size = _dataset_bytes(ds)
            with self._lock:
                self._items[key] = (ds, info, size)
                self._bytes += size
                while self._bytes > self.max_bytes and len(self._items) > 1:
                    _, (_, _, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped
            return ds, info
        finally:
            with self._lock:
                self._loading.pop(key, None)
            event.set()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def _load(path: Path) -> tuple[Dataset | None, ImageInfo]:
    """The data set, decompressed when not too large; None when pydicom cannot read it (the
    render from the path then says why)."""
    try:
        ds = dcmread(path)
    except Exception:  # noqa: BLE001 - render() turns the same file into a placeholder with the reason
        return None, ImageInfo()
    try:
        syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        if syntax is not None and syntax.is_compressed and "PixelData" in ds and _expanded_bytes(ds) <= DECOMPRESS_LIMIT:
            ds.decompress(generate_instance_uid=False)
    except Exception:  # left compressed: render() decodes per frame, or says what is wrong
        log.debug("decompressing %s failed", path, exc_info=True)
    return ds, _info(ds)


def _expanded_bytes(ds: Dataset) -> int:
    try:
        return (int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames", 1) or 1)
                * int(ds.get("SamplesPerPixel", 1) or 1) * max(1, int(ds.get("BitsAllocated", 8)) // 8))
    except (TypeError, ValueError, AttributeError):
        return DECOMPRESS_LIMIT + 1


def _dataset_bytes(ds: Dataset | None) -> int:
    if ds is None:
        return 1024
    try:
        return len(ds.PixelData) + 64 * 1024 if "PixelData" in ds else 64 * 1024
    except Exception:  # noqa: BLE001 - a damaged element: count the header only
        return 64 * 1024


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:  # noqa: BLE001 - a damaged element shows as empty
        return ""
    if value is None:
        return ""
    return str(value).strip()


def _person(ds: Dataset, keyword: str) -> str:
    text = _text(ds, keyword).split("=")[0]
    parts = text.split("^")
    if len(parts) > 1:
        return f"{parts[0].upper()}, {' '.join(p for p in parts[1:] if p)}".strip(", ")
    return text


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _windows(ds: Dataset) -> tuple[Window, ...]:
    try:
        centers, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
        if centers is None or widths is None:
            return ()
        centers = list(centers) if isinstance(centers, MultiValue) else [centers]
        widths = list(widths) if isinstance(widths, MultiValue) else [widths]
        explanations = ds.get("WindowCenterWidthExplanation", [])
        explanations = list(explanations) if isinstance(explanations, MultiValue) else [explanations]
        function = _text(ds, "VOILUTFunction").upper() or "LINEAR"
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            function = "LINEAR"
        out = []
        for i, (c, w) in enumerate(zip(centers, widths)):
            if float(w) >= 1:
                note = str(explanations[i]) if i < len(explanations) and explanations[i] else ""
                out.append(Window(float(c), float(w), function, "file", note))
        return tuple(out)
    except (TypeError, ValueError):
        return ()


def _info(ds: Dataset) -> ImageInfo:
    return ImageInfo(
        patient_name=_person(ds, "PatientName"), patient_id=_text(ds, "PatientID"),
        birth_date=_date(_text(ds, "PatientBirthDate")), sex=_text(ds, "PatientSex"),
        study_date=_date(_text(ds, "StudyDate")), study_description=_text(ds, "StudyDescription"),
        series_number=_text(ds, "SeriesNumber"), series_description=_text(ds, "SeriesDescription"),
        modality=_text(ds, "Modality"), instance_number=_text(ds, "InstanceNumber"), windows=_windows(ds))


def read_info(path: Path) -> ImageInfo:
    """What the header of the file at `path` says (no pixel data read); empty when unreadable."""
    try:
        return _info(dcmread(path, stop_before_pixels=True))
    except Exception:  # noqa: BLE001 - a damaged file says nothing
        return ImageInfo()


def render_frame(cache: DecodedCache, key: FrameKey, path: Path) -> tuple[Thumbnail, ImageInfo]:
    """One frame of the file at `path` as `key` asks, and what to write over it. Blocking (run it
    on a worker thread); never raises for what is in the file: a placeholder says what is wrong."""
    ds, info = cache.get(path)
    source: Dataset | Path = ds if ds is not None else path
    try:
        thumbnail = render(source, key.size, frame=key.frame, window=key.window)
    except FrameError:
        thumbnail = render(source, key.size, window=key.window)
    except FileNotFoundError as exc:
        thumbnail = placeholder("Missing file", kind=Kind.MISSING, detail=str(exc))
    return thumbnail, info
