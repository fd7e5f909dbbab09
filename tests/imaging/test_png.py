"""The PNG codec in core.png: our files read back, libpng's (DCMTK's) files read right."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from pacsbrowser.core.png import decode_png, encode_png, read_png, write_png

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 64), (17, 129), (2, 3, 3), (40, 31, 3)])
def test_round_trip(shape):
    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    text = {"pacsbrowser": '{"label": "x"}', "Comment": "caf\u00e9"}
    decoded, got_text = decode_png(encode_png(pixels, text))
    np.testing.assert_array_equal(decoded, pixels)
    assert got_text == text


def test_encoder_rejects_what_png_grey_or_rgb_cannot_hold():
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        encode_png(np.zeros((0, 4), np.uint8))


def test_decoder_rejects_damaged_files():
    good = encode_png(np.arange(64, dtype=np.uint8).reshape(8, 8))
    with pytest.raises(ValueError):
        decode_png(b"GIF89a" + good[6:])
    bad_crc = bytearray(good)
    bad_crc[30] ^= 0xFF  # inside IHDR
    with pytest.raises(ValueError):
        decode_png(bytes(bad_crc))
    with pytest.raises(ValueError):
        decode_png(good[: len(good) // 2])
    # a 16-bit PNG is not ours to read
    ihdr = struct.pack(">IIBBBBB", 2, 2, 16, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(ValueError):
        decode_png(good[:8] + chunk + good[33:])


def _read_pnm(path: Path) -> np.ndarray:
    data = path.read_bytes()
    parts = data.split(maxsplit=4)
    magic, width, height, maxval = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
    assert maxval == 255
    raw = np.frombuffer(parts[4], np.uint8)
    if magic == b"P5":
        return raw.reshape(height, width)
    return raw.reshape(height, width, 3)


@pytest.mark.parametrize("name, window", [("ct_two_windows", ["+Wi", "1"]), ("mono1", ["+Wi", "1"]),
                                          ("rgb", []), ("palette16", [])])
def test_libpng_files_from_dcmtk_decode_exactly(samples, workdir, name, window):
    """DCMTK writes PNG through libpng (adaptive filters: Sub, Up, Average, Paeth); the same image as
    a raw PGM/PPM is the truth."""
    source = samples[name].path
    png, pnm = workdir / "ref.png", workdir / "ref.pnm"
    for args, out in ((["+on", "-il"], png), (["+op"], pnm)):
        subprocess.run(["/usr/bin/dcmj2pnm", *args, *window, str(source), str(out)], check=True,
                       capture_output=True, timeout=60)
    pixels, text = read_png(png)
    np.testing.assert_array_equal(pixels, _read_pnm(pnm))
    filters = set(np.frombuffer(zlib.decompress(_idat(png.read_bytes())), np.uint8)
                  .reshape(pixels.shape[0], -1)[:, 0].tolist())
    assert filters - {0, 1, 2}, "libpng used only trivial filters: Average and Paeth untested"


def _idat(data: bytes) -> bytes:
    pos, out = 8, b""
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        if data[pos + 4:pos + 8] == b"IDAT":
            out += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return out


@pytest.mark.parametrize("shape", [(21, 34), (21, 34, 3), (1, 1), (128, 96, 3)])
def test_our_png_is_read_by_qt_as_the_window_will(shape):
    """Qt's own PNG reader (libpng inside QtGui) gets the same pixels back."""
    from PySide6.QtGui import QImage

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    image = QImage.fromData(encode_png(pixels, {"pacsbrowser": "{}"}))
    assert not image.isNull() and (image.height(), image.width()) == shape[:2]
    if len(shape) == 3:
        image = image.convertToFormat(QImage.Format.Format_RGB888)
    else:
        image = image.convertToFormat(QImage.Format.Format_Grayscale8)
    channels = 3 if len(shape) == 3 else 1
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    back = rows[:, : shape[1] * channels].reshape(shape)
    np.testing.assert_array_equal(back, pixels)


def test_write_png_is_atomic_and_leaves_no_temporary_file(workdir):
    target = workdir / "t.png"
    write_png(target, np.zeros((4, 4), np.uint8))
    write_png(target, np.full((4, 4), 9, np.uint8))  # replaces
    assert read_png(target)[0][0, 0] == 9
    assert sorted(p.name for p in workdir.iterdir()) == ["t.png"]
    assert (target.stat().st_mode & 0o777) == (0o666 & ~_umask())
    with pytest.raises(OSError):
        write_png(workdir / "missing-folder" / "t.png", np.zeros((2, 2), np.uint8))
    assert sorted(p.name for p in workdir.iterdir()) == ["t.png"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
