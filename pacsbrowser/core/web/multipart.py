"""A multipart/related body (WADO-RS) read as it streams: each part into a spool of its own, never
the whole body in memory.

python-multipart's MultipartParser does the parsing (boundaries, part headers, a part's data in
slices as they arrive); this module gives each part a `tempfile.SpooledTemporaryFile` that stays in
memory up to `spool_limit` bytes and moves to a temporary file beyond, and hands the finished part
to `on_part(headers, spool)`. Memory held: one chunk, plus at most `spool_limit` of the part under
way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

SPOOL_LIMIT = 16 * 1024 * 1024  # a part larger than this waits on disk, not in memory

PartCallback = Callable[[dict[str, str], IO[bytes]], Any]


class MultipartError(ValueError):
    """The body is not a multipart/related message we can read."""


def boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart Content-Type (MultipartError when it is not multipart)."""
    media, options = parse_options_header(content_type)
    if not media.startswith(b"multipart/"):
        raise MultipartError(f"expected a multipart answer, got {content_type or 'no Content-Type'}")
    boundary = options.get(b"boundary")
    if not boundary:
        raise MultipartError(f"the multipart answer names no boundary ({content_type})")
    return boundary


class MultipartReader:
    """Feed a multipart body chunk by chunk (`feed`), then `finish()`; `on_part` gets each part."""

    def __init__(self, content_type: str, on_part: PartCallback, *, spool_limit: int = SPOOL_LIMIT,
                 spool_dir: Path | None = None) -> None:
        self.on_part = on_part
        self.spool_limit = spool_limit
        self.spool_dir = spool_dir
        self.parts = 0
        self._headers: dict[str, str] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._spool: IO[bytes] | None = None
        self._ended = False
        self._parser = MultipartParser(boundary_of(content_type), {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        })

    # -- python-multipart's callbacks
    def _part_begin(self) -> None:
        self._headers = {}
        self._spool = tempfile.SpooledTemporaryFile(max_size=self.spool_limit, prefix=".tmp-wado-",
                                                    dir=None if self.spool_dir is None else str(self.spool_dir))

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        assert self._spool is not None
        self._spool.write(data[start:end])

    def _part_end(self) -> None:
        spool, self._spool = self._spool, None
        if spool is None:
            return
        try:
            spool.seek(0)
            self.parts += 1
            self.on_part(self._headers, spool)
        finally:
            spool.close()

    def _end(self) -> None:
        self._ended = True

    # -- feeding
    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise MultipartError(f"the multipart answer cannot be read: {exc}") from exc

    def finish(self) -> None:
        """After the last chunk: MultipartError when the body ended before its closing boundary."""
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise MultipartError(f"the multipart answer cannot be read: {exc}") from exc
        finally:
            self.close()
        if not self._ended:
            raise MultipartError(f"the multipart answer broke off after {self.parts} parts")

    def close(self) -> None:
        """Drop a part under way (its spool file goes with it)."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
