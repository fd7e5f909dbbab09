"""STOW-RS: sending files, folders and datasets to a DICOMweb server, with the StoreService
interface (core/store.py): the same scan of what was given, the same StoreResult per file, the same
StoreProgress and StoreSummary.

    storage = WebStoreService(profile)
    summary = await storage.store([folder], on_progress=show)

Files are read lazily (headers first, each file when its batch is sent) and checked like a C-STORE
send (dicomfiles.check_file: a truncated or damaged file is reported SKIPPED, the rest is sent).
They go in batches (`batch_size` files, at most `batch_bytes` a request), each one POST of a
multipart/related body streamed from the files (Content-Length known beforehand, nothing held in
memory but the file being read), up to `parallel` batches at once. The server's answer says per
instance what became of it: ReferencedSOPSequence (stored; WarningReason: stored with a warning)
and FailedSOPSequence (FailureReason, a C-STORE status, said in words).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from ..dicomfiles import StoreItem, Unsendable, check_file, short_error
from ..errors import DICOMNetworkError, status_words
from ..executor import run_blocking
from ..records import ServerProfile, StoreOutcome, StoreResult
from ..store import ProgressCallback, Source, StoreRun, StoreSummary, scan_for_sending
from .qido import answer_dataset
from .session import DICOM_JSON, WebSession

log = logging.getLogger(__name__)

FAILED_SOP_SEQUENCE = "FailedSOPSequence"
REFERENCED_SOP_SEQUENCE = "ReferencedSOPSequence"


@dataclass
class _Part:
    item: StoreItem
    head: bytes  # the part's header (boundary, Content-Type)
    body: bytes | None  # a dataset encoded here (None: read from the file when sent)
    length: int


class WebStoreService:
    """STOW-RS to the DICOMweb server of `profile`. `pool` (DIMSE) is accepted and ignored."""

    def __init__(self, profile: ServerProfile, *, parallel: int | None = None, pool: Any = None,
                 progress_interval: float = 0.1, batch_size: int = 50, batch_bytes: int = 64 * 1024 * 1024,
                 session: WebSession | None = None, **_dimse_only: Any) -> None:
        if profile.web is None:
            raise ValueError(f"profile {profile.name!r} is not a DICOMweb profile")
        if parallel is not None and parallel < 1:
            raise ValueError("parallel must be at least 1")
        if batch_size < 1 or batch_bytes < 1:
            raise ValueError("a batch holds at least one file")
        self.profile = profile
        self.parallel = parallel or 2
        self.progress_interval = progress_interval
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.session = session

    def __repr__(self) -> str:
        return f"<WebStoreService {self.profile.web.base_url if self.profile.web else '?'} x{self.parallel}>"

    async def store(self, sources: Source | Iterable[Source], *,
                    on_progress: ProgressCallback | None = None) -> StoreSummary:
        """Send a file, a folder (walked recursively), a dataset, or any mix. Every file's result;
        raises the DICOMNetworkError when the server could not be reached at all (nothing sent)."""
        if isinstance(sources, (str, bytes, os.PathLike, Dataset)):
            sources = [sources]
        run = StoreRun(on_progress, self.progress_interval)
        own_session = self.session is None
        session = self.session or WebSession(self.profile)
        requests = 0
        try:
            items = await scan_for_sending(list(sources), run)
            run.total = len(items) + len(run.results)
            run.bytes_total = run.bytes_done + sum(item.size for item in items)
            run.report()
            batches = deque(self._batches(items))
            errors: list[DICOMNetworkError] = []

            async def worker() -> None:
                nonlocal requests
                while batches:
                    batch = batches.popleft()
                    if errors and not run.connected:  # the server cannot be reached: do not try on
                        for item in batch:
                            run.add(item.result(StoreOutcome.FAILED, f"not sent: {errors[-1]}"))
                        continue
                    requests += 1
                    results, error = await run_blocking(_send_batch, session, batch, name="stow")
                    if error is not None:
                        errors.append(error)
                        run.error = run.failure = error
                    else:
                        run.connected = True
                    for result in results:
                        run.add(result)

            async with asyncio.TaskGroup() as tasks:
                for _ in range(min(self.parallel, max(1, len(batches)))):
                    tasks.create_task(worker())
            run.report(finished=True)
            if items and not run.connected and errors:
                raise errors[-1]
            return StoreSummary(tuple(run.results), time.perf_counter() - run.started, requests, error=run.failure)
        finally:
            run.close()
            if own_session:
                session.close()

    def _batches(self, items: list[StoreItem]) -> Iterator[list[StoreItem]]:
        batch: list[StoreItem] = []
        size = 0
        for item in items:
            if batch and (len(batch) >= self.batch_size or size + item.size > self.batch_bytes):
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += item.size
        if batch:
            yield batch


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _send_batch(session: WebSession, batch: list[StoreItem]) -> tuple[list[StoreResult], DICOMNetworkError | None]:
    """One STOW-RS POST (a worker thread): every item's result, and the network error if any."""
    results: list[StoreResult] = []
    parts: list[_Part] = []
    boundary = f"pacsbrowser-{uuid.uuid4().hex}"
    for item in batch:
        item.attempts += 1
        try:
            check_file(item)
            encoded = _encode(item.dataset) if item.dataset is not None else None
        except Unsendable as exc:
            results.append(item.result(StoreOutcome.SKIPPED, str(exc)))
            continue
        except (OSError, ValueError, TypeError) as exc:
            results.append(item.result(StoreOutcome.SKIPPED, f"cannot be encoded: {short_error(exc)}"))
            continue
        head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
        length = len(encoded) if encoded is not None else (item.path.stat().st_size if item.path else 0)
        parts.append(_Part(item, head, encoded, length))
    if not parts:
        return results, None
    closing = f"\r\n--{boundary}--\r\n".encode("ascii")
    total = sum(len(p.head) + p.length + 2 for p in parts) - 2 + len(closing)

    def body() -> Iterator[bytes]:
        for number, part in enumerate(parts):
            yield (b"\r\n" if number else b"") + part.head
            if part.body is not None:
                yield part.body
                continue
            assert part.item.path is not None
            with open(part.item.path, "rb") as handle:
                sent = 0
                while sent < part.length:
                    chunk = handle.read(min(1 << 20, part.length - sent))
                    if not chunk:
                        raise OSError(f"{part.item.path} became shorter while it was sent")
                    sent += len(chunk)
                    yield chunk
        yield closing

    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
               "Content-Length": str(total), "Accept": DICOM_JSON}
    try:
        response = _post(session, headers, body())
    except DICOMNetworkError as error:
        results += [p.item.result(StoreOutcome.FAILED, f"not sent: {error}") for p in parts]
        return results, error
    return results + _read_answer(response, [p.item for p in parts]), None


def _post(session: WebSession, headers: dict[str, str], content: Iterator[bytes]) -> httpx.Response:
    """The POST. An error status with a DICOM JSON body (409 when every instance failed, or 400 as
    Orthanc answers when some did) still carries the per-instance answer: it is read as one."""
    from .failures import status_error, transport_error

    url = session.url("stow", "studies")
    try:
        response = session.client.post(url, headers=headers, content=content)
    except httpx.HTTPError as exc:
        raise transport_error(exc, session.profile, "STOW-RS send") from exc
    if response.status_code >= 400 and not _has_answer(response):
        raise status_error(response, "STOW-RS send", session.profile)
    return response


def _has_answer(response: httpx.Response) -> bool:
    if response.status_code not in (400, 409) or not response.content.strip().startswith((b"{", b"[")):
        return False  # (Orthanc sends its 400 answer without a Content-Type)
    try:
        data = response.json()
    except ValueError:
        return False
    data = data[0] if isinstance(data, list) and data else data
    return isinstance(data, dict) and bool({"00081198", "00081199"} & set(data))


def _read_answer(response: httpx.Response, items: list[StoreItem]) -> list[StoreResult]:
    """Each item's result from the STOW-RS answer (PS3.18 10.5.3)."""
    answer: Dataset | None = None
    try:
        data = response.json() if response.content.strip() else {}
        if isinstance(data, list):
            data = data[0] if data else {}
        answer = answer_dataset(data) if data else None
    except ValueError:
        answer = None
    stored: dict[str, int | None] = {}
    failed: dict[str, int | None] = {}
    if answer is not None:
        for item in answer.get(REFERENCED_SOP_SEQUENCE, []) or []:
            stored[str(item.get("ReferencedSOPInstanceUID", ""))] = _int(item.get("WarningReason"))
        for item in answer.get(FAILED_SOP_SEQUENCE, []) or []:
            failed[str(item.get("ReferencedSOPInstanceUID", ""))] = _int(item.get("FailureReason"))
    results = []
    status = response.status_code
    for item in items:
        uid = item.sop_instance_uid
        if uid in failed:
            reason = failed[uid]
            if reason is None:
                results.append(item.result(StoreOutcome.FAILED, "the server refused it (no reason given)"))
            else:
                _, words = status_words(reason, "C-STORE")
                results.append(item.result(StoreOutcome.FAILED, f"the server refused it: {words} (0x{reason:04X})",
                                           reason, transfer_syntax=item.transfer_syntax))
        elif uid in stored:
            warning = stored[uid]
            if warning:
                _, words = status_words(warning, "C-STORE")
                results.append(item.result(StoreOutcome.WARNING, f"stored with a warning: {words} (0x{warning:04X})",
                                           warning, transfer_syntax=item.transfer_syntax))
            else:
                results.append(item.result(StoreOutcome.SUCCESS, "", 0, transfer_syntax=item.transfer_syntax))
        elif status == 200 and answer is None:  # a server that answers "all stored" without a body
            results.append(item.result(StoreOutcome.SUCCESS, "", 0, transfer_syntax=item.transfer_syntax))
        else:
            results.append(item.result(StoreOutcome.FAILED, f"the server's answer (HTTP {status}) does not "
                                                           "say it stored it"))
    return results


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


__all__ = ["WebStoreService"]
