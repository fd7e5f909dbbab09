"""The streamed multipart/related reader: parts whole whatever the chunk size, a large part spooled to
disk rather than memory, a body cut short said in words."""

from __future__ import annotations

import pytest

from pacsbrowser.core.web.multipart import MultipartError, MultipartReader, boundary_of

CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary="b-1"'


def _body(parts: list[bytes]) -> bytes:
    return b"".join(b"--b-1\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n" for p in parts) + b"--b-1--\r\n"


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_parts_come_whole_whatever_the_chunks(chunk, tmp_path):
    parts = [b"A" * 10, bytes(range(256)) * 50 + b"\r\n--b-", b""]
    got = []
    reader = MultipartReader(CONTENT_TYPE, lambda headers, spool: got.append((headers, spool.read())),
                             spool_limit=1000, spool_dir=tmp_path)
    body = _body(parts)
    for start in range(0, len(body), chunk):
        reader.feed(body[start:start + chunk])
    reader.finish()
    assert [data for _, data in got] == parts
    assert all(headers["content-type"] == "application/dicom" for headers, _ in got)
    assert list(tmp_path.iterdir()) == []  # spool files are gone once their part was handed over


def test_a_large_part_waits_on_disk(tmp_path):
    rolled = []

    def on_part(headers, spool):
        rolled.append(getattr(spool, "_rolled", None))

    reader = MultipartReader(CONTENT_TYPE, on_part, spool_limit=1000, spool_dir=tmp_path)
    reader.feed(_body([b"x" * 500, b"y" * 5000]))
    reader.finish()
    assert rolled == [False, True]


def test_a_body_cut_short_or_not_multipart():
    reader = MultipartReader(CONTENT_TYPE, lambda h, s: None)
    reader.feed(_body([b"abc"])[:-12])
    with pytest.raises(MultipartError, match="broke off after"):
        reader.finish()
    with pytest.raises(MultipartError, match="expected a multipart answer"):
        boundary_of("application/dicom+json")
    with pytest.raises(MultipartError, match="no boundary"):
        boundary_of("multipart/related; type=application/dicom")
