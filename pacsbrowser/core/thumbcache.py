"""Thumbnails on disk, so a study opens instantly the second time.

One PNG per (SOP Instance UID, size), under a directory the caller gives (the archive hands it
``<archive root>/thumbnails``)::

    <directory>/<shard>/<uid>/<size>-<fingerprint>.png

``<shard>`` is two hex digits of the UID's SHA-256 (no folder grows to a million entries);
``<uid>`` is the archive's own safe name for it (core.archive.paths.safe_name: the UID itself when
valid, ``x`` + a SHA-256 otherwise), so a crafted UID never leaves the directory. ``<fingerprint>`` is made of
the source file's size, mtime_ns and inode and of the renderer's version: an instance replaced in
the archive (a new file, renamed over the old one) or a change to the rendering is a cache miss by
itself, and the stale entry is removed when the new one is written. `invalidate(uid)` drops all
sizes of an instance at once.

What the Thumbnail says besides its pixels (placeholder label, window, frame...) travels in the
PNG's tEXt chunk as JSON. Files are written atomically (temporary file in the same folder, then a
rename), so a reader sees a whole PNG or none; a damaged entry is a miss and is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from .archive.paths import safe_name
from .imaging import RENDER_VERSION, Kind, Thumbnail, Window
from .png import decode_png, write_png

log = logging.getLogger(__name__)

__all__ = ["ThumbnailCache", "fingerprint", "thumbnail_from_png", "thumbnail_to_png_text"]

_TEXT_KEY = "pacsbrowser"


def fingerprint(source: str | os.PathLike[str]) -> str:
    """What identifies one version of a file: size, mtime_ns, inode, and the renderer's version.

    Raises FileNotFoundError (an OSError) when the file is gone.
    """
    st = os.stat(source)
    return f"{st.st_size:x}.{st.st_mtime_ns:x}.{st.st_ino:x}.r{RENDER_VERSION}"


def thumbnail_to_png_text(thumbnail: Thumbnail) -> dict[str, str]:
    meta: dict[str, Any] = {}
    for f in fields(thumbnail):
        if f.name == "pixels":
            continue
        value = getattr(thumbnail, f.name)
        if isinstance(value, Kind):
            value = value.value
        elif isinstance(value, Window):
            value = {w.name: getattr(value, w.name) for w in fields(value)}
        meta[f.name] = value
    # tEXt is Latin-1: keep the JSON ASCII (labels and details may hold any character)
    return {_TEXT_KEY: json.dumps(meta, ensure_ascii=True, default=str)}


def thumbnail_from_png(data: bytes) -> Thumbnail:
    """The Thumbnail stored in `data` (our own PNG). Raises ValueError if it is not one."""
    pixels, text = decode_png(data)
    try:
        meta = json.loads(text[_TEXT_KEY])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError("not a pacsbrowser thumbnail") from exc
    if not isinstance(meta, dict):
        raise ValueError("not a pacsbrowser thumbnail")
    known = {f.name for f in fields(Thumbnail)} - {"pixels"}
    attrs = {k: v for k, v in meta.items() if k in known}
    try:
        attrs["kind"] = Kind(attrs.get("kind", Kind.IMAGE.value))
        if attrs.get("window") is not None:
            attrs["window"] = Window(**attrs["window"])
        pixels.flags.writeable = False
        return Thumbnail(pixels=pixels, **attrs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"damaged thumbnail metadata: {exc}") from exc


class ThumbnailCache:
    """A directory of thumbnails keyed by SOP Instance UID, size and source fingerprint.

    Safe to use from several threads and processes at once: every write is a rename of a complete
    file, every read tolerates a file that disappears or is damaged.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"ThumbnailCache({str(self.directory)!r})"

    def instance_dir(self, sop_instance_uid: str) -> Path:
        if not sop_instance_uid:
            raise ValueError("a cached thumbnail needs a SOP Instance UID")
        shard = hashlib.sha256(sop_instance_uid.encode("utf-8", "surrogateescape")).hexdigest()[:2]
        return self.directory / shard / safe_name(sop_instance_uid)

    def path_for(self, sop_instance_uid: str, size: int, source_fingerprint: str) -> Path:
        return self.instance_dir(sop_instance_uid) / f"{int(size)}-{source_fingerprint}.png"

    def _entry(self, sop_instance_uid: str, size: int, source: str | os.PathLike[str],
               source_fingerprint: str | None) -> Path | None:
        """Where this version of `source` is cached at `size`; None when the source is gone."""
        try:
            return self.path_for(sop_instance_uid, size, source_fingerprint or fingerprint(source))
        except OSError:
            return None

    def get(self, sop_instance_uid: str, size: int, source: str | os.PathLike[str],
            *, source_fingerprint: str | None = None) -> Thumbnail | None:
        """The cached thumbnail of this version of `source`, or None (a miss)."""
        path = self._entry(sop_instance_uid, size, source, source_fingerprint)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            thumbnail = thumbnail_from_png(data)
        except ValueError:
            log.info("removing damaged cached thumbnail %s", path)
            _unlink(path)
            return None
        return thumbnail

    def put(self, sop_instance_uid: str, size: int, source: str | os.PathLike[str], thumbnail: Thumbnail,
            *, source_fingerprint: str | None = None) -> Path | None:
        """Store `thumbnail` for this version of `source`; older versions at this size go.

        Returns the file written, or None when the source is gone or the disk refuses (a cache
        that cannot write is only slower, never an error).
        """
        path = self._entry(sop_instance_uid, size, source, source_fingerprint)
        if path is None:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_png(path, thumbnail.pixels, thumbnail_to_png_text(thumbnail))
        except OSError as exc:
            log.warning("cannot write thumbnail cache %s: %s", path, exc)
            return None
        prefix = f"{int(size)}-"
        for other in _listdir(path.parent):
            if other.name.startswith(prefix) and other.name.endswith(".png") and other.name != path.name:
                _unlink(other)  # an older version of the file, or of the renderer
            elif other.name.startswith(".tmp-") and _age(other) > _STALE_TEMP_SECONDS:
                _unlink(other)  # left by a process that died while writing
        return path

    def invalidate(self, sop_instance_uid: str) -> int:
        """Drop every cached size of this instance; returns how many files went."""
        folder = self.instance_dir(sop_instance_uid)
        count = sum(1 for p in _listdir(folder) if p.suffix == ".png")
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def clear(self) -> None:
        """Drop the whole cache (the directory itself stays)."""
        for child in _listdir(self.directory):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                _unlink(child)

    def entries(self, sop_instance_uid: str) -> list[Path]:
        return sorted(p for p in _listdir(self.instance_dir(sop_instance_uid)) if p.suffix == ".png")


_STALE_TEMP_SECONDS = 600


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _listdir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
