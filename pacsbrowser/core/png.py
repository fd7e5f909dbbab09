"""A small PNG codec (zlib; no Pillow in the project): the thumbnail cache and `pacsbrowser
thumbnail` write 8-bit grey or RGB PNG, the cache reads its own files back (and DCMTK's, in tests)."""

from __future__ import annotations

import os
import secrets
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["decode_png", "encode_png", "read_png", "write_png"]

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
