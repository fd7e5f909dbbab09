"""Helpers of the network-hardening tests: what of our client is still running, bounded waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider

from pacsbrowser.core import executor


def client_threads() -> list[str]:
    """Names of the threads of our client still alive: core worker threads, and the reactor and
    DUL threads of every association we requested (our SCP's own are judged by its slots)."""
    names = [t.name for t in executor.active_threads()]
    for thread in threading.enumerate():
        assoc = thread if isinstance(thread, Association) else getattr(thread, "assoc", None) \
            if isinstance(thread, DULServiceProvider) else None
        if assoc is not None and thread.is_alive() and getattr(assoc, "is_requestor", False):
            names.append(f"{thread.__class__.__name__}:{thread.name}")
    return names


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float | None:
    """Seconds it took `predicate()` to hold, or None when it did not within `timeout`."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(step)


def no_client_threads(timeout: float = 8.0) -> list[str]:
    """Wait (bounded) for our client's threads to end; what is still alive then."""
    wait_until(lambda: not client_threads(), timeout)
    return client_threads()


def big_file(path: Path, megabytes: int, uid_tag: int = 1155) -> Path:
    """One uncompressed CT of about `megabytes` MB (the send must outgrow the kernel's buffers)."""
    side = int((megabytes * 1_000_000 / 2) ** 0.5)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"2.25.{uid_tag}901"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"2.25.{uid_tag}902", f"2.25.{uid_tag}903"
    ds.PatientID, ds.PatientName, ds.Modality = "LINKS", "LINKS^BIG", "CT"
    ds.set_pixel_data(np.zeros((side, side), dtype=np.uint16), "MONOCHROME2", 12, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return path
