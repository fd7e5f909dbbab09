"""One WADO-RS request read as it streams into the archive (blocking: a core worker thread).

The multipart/related body is parsed chunk by chunk (multipart.py); each whole part (a DICOM
file) is handed to a second thread that writes it into the archive (Archive.store) while the
next parts are read, at most WRITE_AHEAD of them waiting, so the network is read while the archive
fsyncs. Progress goes back to the loop through `post`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import IO

from ..archive import Archive
from ..archive.part10 import split_part10
from ..executor import start_detached
from .multipart import MultipartReader
from .session import WebSession

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
CHUNK = 256 * 1024


class Stopped(Exception):
    """The job was cancelled: the worker stops reading."""


WRITE_AHEAD = 8  # whole parts waiting for the archive while the next ones are read


def fetch(session: WebSession, url: str, archive: Archive, stop: threading.Event,
           post: Callable[..., None], on_bytes: Callable[[int], None], on_instance: Callable[[bool], None],
           on_failed: Callable[[str], None], skip: set[str] | None, source_ae: str) -> None:
    """One WADO-RS GET read as it streams (this worker thread), each DICOM part written into the
    archive by a second thread meanwhile (at most WRITE_AHEAD parts wait: the network is read while
    the archive fsyncs). Parts read before a cancel are still written; a write that fails (a full
    disk) stops the reading and is raised here."""
    pending: queue.Queue[bytes | None] = queue.Queue(maxsize=WRITE_AHEAD)
    failure: list[BaseException] = []

    def write(data: bytes) -> None:
        try:
            syntax, offset, meta = split_part10(data)
            sop_class, sop_uid = meta.get(0x0002, ""), meta.get(0x0003, "")
            if skip is not None and sop_uid in skip:
                post(on_instance, False)
                return
            archive.store(data[offset:], syntax, sop_class_uid=sop_class, sop_instance_uid=sop_uid,
                          source_ae=source_ae)
        except (ValueError, KeyError) as exc:  # MalformedDataset is a ValueError
            post(on_failed, f"a part could not be stored: {exc}")
            return
        post(on_instance, True)

    def writer() -> None:
        while True:
            data = pending.get()
            if data is None:
                return
            if failure:
                continue  # drain: the reader stops at its next part
            try:
                write(data)
            except BaseException as exc:  # noqa: BLE001 - raised by the reading thread
                failure.append(exc)

    def on_part(headers: dict[str, str], spool: IO[bytes]) -> None:
        if failure:
            raise failure[0]
        pending.put(spool.read())

    thread = start_detached(writer, name="wado-write")
    try:
        with session.stream("GET", url, "WADO-RS retrieve", headers={"Accept": ACCEPT}) as response:
            reader = MultipartReader(response.headers.get("content-type", ""), on_part, spool_dir=archive.root)
            try:
                for chunk in response.iter_bytes(CHUNK):
                    if stop.is_set():
                        raise Stopped()
                    reader.feed(chunk)
                    post(on_bytes, len(chunk))
                reader.finish()
            finally:
                reader.close()
    finally:
        pending.put(None)
        thread.join()
    if failure:
        raise failure[0]
