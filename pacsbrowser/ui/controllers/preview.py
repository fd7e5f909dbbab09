"""Frames for the preview, rendered off the GUI thread by core.imaging.render.

Each instance is read and decompressed once, on a worker thread, into a data set kept in a
bounded cache; window/level changes and frame steps then only re-run the display pipeline on that
one frame (numpy, about 10 ms for 512 x 512). Requests are "latest wins": while one frame renders,
newer requests replace the waiting one, so a fast wheel or drag never queues work. Neighbours of
the frame shown are rendered ahead with the same window (`prefetch`), into a small cache of
finished images, which makes scrolling through a series fluid.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ...core import executor
from ...core.imaging import FrameError, Kind, Thumbnail, Window, placeholder, render
from ..images import to_qimage

log = logging.getLogger(__name__)

DECODED_BYTES = 512 * 1024 * 1024  # data sets kept decoded (a 300-slice CT is ~160 MB)
RENDERED_BYTES = 96 * 1024 * 1024  # finished frames kept for scrolling back and forth
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
class Overlay:
    """What the preview writes over the image (patient data is for the viewer's eyes only)."""

    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_description: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = ""
    instance_number: str = ""
    windows: tuple[Window, ...] = ()  # the file's Window Center/Width values, as presets


@dataclass
class Frame:
    key: FrameKey
    thumbnail: Thumbnail
    overlay: Overlay
    image: QImage | None = field(default=None, repr=False)  # None for a placeholder

    @property
    def nbytes(self) -> int:
        return int(self.thumbnail.pixels.nbytes)


# --------------------------------------------------------------------------------------------
# Worker side


class DecodedCache:
    """Data sets read and decompressed once, least recently used dropped beyond `max_bytes`.
    Thread-safe; two threads asking for the same file wait for one read."""

    def __init__(self, max_bytes: int = DECODED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Dataset | None, Overlay, int]] = OrderedDict()
        self._loading: dict[str, threading.Event] = {}
        self._bytes = 0

    def get(self, path: Path) -> tuple[Dataset | None, Overlay]:
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
            ds, overlay = _load(path)
            size = _dataset_bytes(ds)
            with self._lock:
                self._items[key] = (ds, overlay, size)
                self._bytes += size
                while self._bytes > self.max_bytes and len(self._items) > 1:
                    _, (_, _, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped
            return ds, overlay
        finally:
            with self._lock:
                self._loading.pop(key, None)
            event.set()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def _load(path: Path) -> tuple[Dataset | None, Overlay]:
    """The data set, decompressed when not too large; None when pydicom cannot read it (the
    render from the path then says why)."""
    try:
        ds = dcmread(path)
    except Exception:  # noqa: BLE001 - render() turns the same file into a placeholder with the reason
        return None, Overlay()
    try:
        syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        if syntax is not None and syntax.is_compressed and "PixelData" in ds and _expanded_bytes(ds) <= DECOMPRESS_LIMIT:
            ds.decompress(generate_instance_uid=False)
    except Exception:  # noqa: BLE001 - left compressed: render() decodes per frame, or says what is wrong
        log.debug("decompressing %s failed", path, exc_info=True)
    return ds, _overlay(ds)


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


def _overlay(ds: Dataset) -> Overlay:
    return Overlay(
        patient_name=_person(ds, "PatientName"), patient_id=_text(ds, "PatientID"),
        birth_date=_date(_text(ds, "PatientBirthDate")), sex=_text(ds, "PatientSex"),
        study_date=_date(_text(ds, "StudyDate")), study_description=_text(ds, "StudyDescription"),
        series_number=_text(ds, "SeriesNumber"), series_description=_text(ds, "SeriesDescription"),
        modality=_text(ds, "Modality"), instance_number=_text(ds, "InstanceNumber"), windows=_windows(ds))


def render_frame(cache: DecodedCache, key: FrameKey, path: Path) -> Frame:
    """One frame for the preview (worker thread): never raises for what is in the file."""
    ds, overlay = cache.get(path)
    source: Dataset | Path = ds if ds is not None else path
    try:
        thumbnail = render(source, key.size, frame=key.frame, window=key.window)
    except FrameError:
        thumbnail = render(source, key.size, window=key.window)
    except FileNotFoundError as exc:
        thumbnail = placeholder("Missing file", kind=Kind.MISSING, detail=str(exc))
    image = None if thumbnail.is_placeholder else to_qimage(thumbnail.pixels)
    return Frame(key, thumbnail, overlay, image)


# --------------------------------------------------------------------------------------------
# GUI side


class PreviewRenderer(QObject):
    """Renders frames on worker threads: `request` (latest wins) and `prefetch` (ahead of use)."""

    rendered = Signal(object)  # Frame

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.decoded = DecodedCache()
        self._frames: OrderedDict[FrameKey, Frame] = OrderedDict()
        self._frame_bytes = 0
        self._next: tuple[FrameKey, Path] | None = None
        self._ahead: deque[tuple[FrameKey, Path]] = deque()
        self._render_task: asyncio.Task | None = None
        self._prefetch_task: asyncio.Task | None = None
        self._closed = False
        self.renders = 0  # frames rendered (for tests and figures)

    def cached(self, key: FrameKey) -> Frame | None:
        frame = self._frames.get(key)
        if frame is not None:
            self._frames.move_to_end(key)
        return frame

    def request(self, key: FrameKey, path: Path) -> None:
        """Render `key` soon; a request still waiting is replaced. A frame already rendered is
        emitted at once."""
        if self._closed:
            return
        frame = self.cached(key)
        if frame is not None:
            self._next = None
            self.rendered.emit(frame)
            return
        self._next = (key, path)
        if self._render_task is None or self._render_task.done():
            self._render_task = asyncio.ensure_future(self._render_loop())

    def prefetch(self, items: list[tuple[FrameKey, Path]]) -> None:
        """Render these ahead, in order, instead of what was asked before."""
        if self._closed:
            return
        self._ahead = deque(item for item in items if item[0] not in self._frames)
        if self._ahead and (self._prefetch_task is None or self._prefetch_task.done()):
            self._prefetch_task = asyncio.ensure_future(self._prefetch_loop())

    async def _render_loop(self) -> None:
        while self._next is not None and not self._closed:
            key, path = self._next
            self._next = None
            frame = self.cached(key) or await self._render(key, path)
            self.rendered.emit(frame)

    async def _prefetch_loop(self) -> None:
        while self._ahead and not self._closed:
            key, path = self._ahead.popleft()
            if key not in self._frames:
                await self._render(key, path)

    async def _render(self, key: FrameKey, path: Path) -> Frame:
        frame = await executor.run_blocking(render_frame, self.decoded, key, path, name="preview-render")
        self.renders += 1
        self._keep(frame)
        return frame

    def _keep(self, frame: Frame) -> None:
        old = self._frames.pop(frame.key, None)
        if old is not None:
            self._frame_bytes -= old.nbytes
        self._frames[frame.key] = frame
        self._frame_bytes += frame.nbytes
        while self._frame_bytes > RENDERED_BYTES and len(self._frames) > 1:
            _, dropped = self._frames.popitem(last=False)
            self._frame_bytes -= dropped.nbytes

    async def shutdown(self) -> None:
        self._closed = True
        self._next = None
        self._ahead.clear()
        tasks = [t for t in (self._render_task, self._prefetch_task) if t is not None and not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)  # each step is one frame: they end soon
        self._frames.clear()
        self.decoded.clear()
