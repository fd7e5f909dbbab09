"""An in-process pynetdicom SCP on 127.0.0.1 that misbehaves on request (fault injection).

    with FaultSCP("slow", datasets=studies, delay=0.2) as scp:
        ... query scp.host, scp.port, scp.ae_title ...
        assert scp.cancels == 1

Modes
    "ok"             behave: Verification, C-FIND (Patient/Study Root), C-STORE.
    "reject"         reject every association with ``reject=(result, source, reason)``
                     (default (1, 1, 1): rejected-permanent, service user, no reason given).
    "silent"         a plain TCP listener that accepts connections and never says a word.
    "abort_after_n"  A-ABORT after ``abort_after`` C-FIND pending responses (0: before the
                     first; with fewer matches, after the last one instead of the final
                     status), or when C-STORE request number ``abort_after + 1`` arrives (the
                     first ``abort_after`` stores succeed).
    "slow"           wait ``delay`` seconds before each C-FIND response (pending or final) and
                     before each C-STORE status; honours C-CANCEL, recording when it was seen.

C-FIND answers come from ``datasets`` (pydicom Datasets). With ``match=True`` (default) a dataset
answers when its QueryRetrieveLevel (if it has one) equals the request's and every non-empty
key of the request matches (UID lists, date/time ranges, ``*``/``?`` wildcards, else equality;
case-sensitive unless ``case_insensitive=True``); the response holds the requested keys.
With ``match=False`` every dataset is returned as it is.

Character sets of C-FIND responses: ``find_charset`` is what (0008,0005) says: KEEP (default:
the dataset's own value), None (leave it out) or a term such as "ISO_IR 100" (even a wrong
one). ``find_encoding`` is how text is actually encoded: None = the dataset's own character
set, or a term such as "ISO_IR 192" / "ISO_IR 100" / "GB18030". So
``find_charset=None, find_encoding="ISO_IR 192"`` sends UTF-8 bytes without saying so.

C-STORE keeps the received datasets in ``received`` (and writes ``<SOPInstanceUID>.dcm`` files to
``store_dir`` if given). ``store_status`` sets the status returned (default 0x0000).

Everything that happens is recorded in ``events`` as ``(monotonic time, kind, details)``;
``wait_for(predicate, timeout)`` waits on it without sleeping.
"""

from __future__ import annotations

import fnmatch
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.valuerep import PersonName
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

__all__ = ["FaultSCP", "KEEP", "MODES", "study_dataset"]

LOOPBACK = "127.0.0.1"
MODES = ("ok", "reject", "silent", "abort_after_n", "slow")


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()

_TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC"}


class FaultSCP:
    """See the module docstring. Start with ``start()`` or ``with``; stop with ``shutdown()``."""

    def __init__(
        self,
        mode: str = "ok",
        *,
        ae_title: str = "FAULTSCP",
        port: int = 0,
        datasets: Iterable[Dataset] = (),
        match: bool = True,
        case_insensitive: bool = False,
        find_charset: Any = KEEP,
        find_encoding: str | None = None,
        reject: tuple[int, int, int] = (1, 1, 1),
        abort_after: int = 1,
        delay: float = 0.2,
        store_dir: Path | None = None,
        store_status: int = 0x0000,
        store_transfer_syntaxes: Sequence[str] | None = None,
        require_called_aet: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        acse_timeout: float = 5.0,
        dimse_timeout: float = 10.0,
        network_timeout: float = 10.0,
        maximum_pdu_size: int = 16382,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.ae_title = ae_title
        self.host = LOOPBACK
        self._requested_port = port
        self.port = port
        self.datasets = list(datasets)
        self.match = match
        self.case_insensitive = case_insensitive
        self.find_charset = find_charset
        self.find_encoding = find_encoding
        self.reject = reject
        self.abort_after = abort_after
        self.delay = delay
        self.store_dir = Path(store_dir) if store_dir else None
        self.store_status = store_status
        self.store_transfer_syntaxes = (
            list(store_transfer_syntaxes) if store_transfer_syntaxes else ALL_TRANSFER_SYNTAXES
        )
        self.require_called_aet = require_called_aet
        self.ssl_context = ssl_context
        self.acse_timeout = acse_timeout
        self.dimse_timeout = dimse_timeout
        self.network_timeout = network_timeout
        self.maximum_pdu_size = maximum_pdu_size

        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.received: list[Dataset] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ae: AE | None = None
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self._assocs: list[Any] = []
        self._store_count = 0
        # silent mode
        self._listener: socket.socket | None = None
        self._silent_thread: threading.Thread | None = None
        self._silent_conns: list[socket.socket] = []

    # ---------------------------------------------------------------- recording
    def _record(self, kind: str, **details: Any) -> None:
        with self._cond:
            self.events.append((time.monotonic(), kind, details))
            self._cond.notify_all()

    def events_of(self, kind: str) -> list[tuple[float, str, dict[str, Any]]]:
        with self._cond:
            return [e for e in self.events if e[1] == kind]

    def count(self, kind: str) -> int:
        return len(self.events_of(kind))

    def wait_for(self, predicate: Callable[["FaultSCP"], bool], timeout: float = 5.0) -> bool:
        """Wait (bounded) until ``predicate(self)`` is true; returns whether it became true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def associations(self) -> list[dict[str, Any]]:
        """One dict per association request: calling/called AE, address, port."""
        return [e[2] for e in self.events_of("requested")]

    @property
    def connections(self) -> int:
        """TCP connections accepted (every mode)."""
        return self.count("connection")

    @property
    def find_requests(self) -> list[Dataset]:
        return [e[2]["identifier"] for e in self.events_of("find")]

    @property
    def response_times(self) -> list[float]:
        """time.monotonic() of each C-FIND response handed to pynetdicom (pending and final)."""
        return [e[0] for e in self.events_of("find-response")]

    @property
    def cancels(self) -> int:
        """How many C-FIND operations saw a C-CANCEL."""
        return self.count("cancel")

    @property
    def cancelled(self) -> bool:
        return self.cancels > 0

    @property
    def aborts_sent(self) -> int:
        return self.count("abort-sent")

    @property
    def aborts_received(self) -> int:
        return self.count("aborted")

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "FaultSCP":
        if self.mode == "silent":
            self._start_silent()
        else:
            self._start_pynetdicom()
        return self

    def _start_pynetdicom(self) -> None:
        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = self.acse_timeout
        ae.dimse_timeout = self.dimse_timeout
        ae.network_timeout = self.network_timeout
        ae.maximum_pdu_size = self.maximum_pdu_size
        ae.require_called_aet = self.require_called_aet
        ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        for cx in StoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, self.store_transfer_syntaxes)
        handlers = [
            (evt.EVT_CONN_OPEN, self._on_conn_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_simple("accepted")),
            (evt.EVT_REJECTED, self._on_simple("rejected")),
            (evt.EVT_RELEASED, self._on_simple("released")),
            (evt.EVT_ABORTED, self._on_simple("aborted")),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_STORE, self._on_store),
        ]
        self._ae = ae
        # ae.start_server(block=False) would poll for shutdown every 0.5 s; serve at 0.02 s
        server = ae.make_server(
            (LOOPBACK, self._requested_port), evt_handlers=handlers,
            ssl_context=self.ssl_context, server_class=ThreadedAssociationServer,
        )
        ae._servers.append(server)  # so that ae.shutdown() stops it
        self._server = server
        self._server_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02},
            name=f"FaultSCP-{self.mode}-{server.server_address[1]}", daemon=True,
        )
        self._server_thread.start()
        self.port = server.server_address[1]

    def _start_silent(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self._requested_port))
        listener.listen(16)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._silent_thread = threading.Thread(
            target=self._silent_loop, name=f"FaultSCP-silent-{self.port}", daemon=True
        )
        self._silent_thread.start()

    def _silent_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([listener], [], [], 0.02)
            except (OSError, ValueError):
                return
            if not readable:
                continue
            try:
                conn, peer = listener.accept()
            except OSError:
                return
            self._silent_conns.append(conn)  # held open, never read, never answered
            self._record("connection", address=peer[0], port=peer[1])

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving: abort live associations, close sockets, join threads (bounded)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        # Associations that are already over (rejected, released, aborted) finish by themselves
        # once the peer closes; aborting one in state Sta13 makes pynetdicom's DUL thread raise.
        settle = time.monotonic() + min(1.0, timeout)
        for assoc in list(self._assocs):
            if assoc.is_rejected or assoc.is_released or assoc.is_aborted:
                assoc.join(max(0.0, settle - time.monotonic()))
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join(max(0.0, deadline - time.monotonic()))
            self._server_thread = None
        for assoc in list(self._assocs):
            assoc.join(max(0.0, deadline - time.monotonic()))
        self._assocs.clear()
        if self._silent_thread is not None:
            self._silent_thread.join(max(0.0, deadline - time.monotonic()))
            self._silent_thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for conn in self._silent_conns:
            try:
                conn.close()
            except OSError:
                pass
        self._silent_conns.clear()

    def __enter__(self) -> "FaultSCP":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"FaultSCP({self.mode!r}, {self.ae_title}@{self.host}:{self.port})"

    # ---------------------------------------------------------------- handlers
    def _on_simple(self, kind: str) -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            self._record(kind)

        return handler

    def _on_conn_open(self, event: Any) -> None:
        self._assocs.append(event.assoc)
        # pynetdicom leaves Nagle on: ~40 ms per message against a delayed ACK
        try:
            event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (AttributeError, OSError):
            pass
        self._record("connection", address=event.address[0], port=event.address[1])

    def _on_requested(self, event: Any) -> None:
        rq = event.assoc.requestor
        self._record("requested", calling_aet=rq.primitive.calling_ae_title,
                     called_aet=rq.primitive.called_ae_title, address=rq.address, port=rq.port)
        if self.mode == "reject":
            event.assoc.acse.send_reject(*self.reject)
            self._record("rejected-by-scp", result=self.reject[0], source=self.reject[1],
                         reason=self.reject[2])
            event.assoc.kill()

    def _on_echo(self, event: Any) -> int:
        self._record("echo")
        if self.mode == "slow":
            self._pause(event)
        return 0x0000

    def _pause(self, event: Any | None, check_cancel: bool = False) -> bool:
        """Wait ``delay`` (interrupted by shutdown); True if a C-CANCEL arrived meanwhile."""
        deadline = time.monotonic() + self.delay
        while True:
            if check_cancel and event is not None and event.is_cancelled:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                return bool(check_cancel and event is not None and event.is_cancelled)
            self._stop.wait(min(remaining, 0.005))

    def _on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        identifier = event.identifier
        self._record("find", identifier=identifier, model=str(event.request.AffectedSOPClassUID))
        answers = [self._response(ds, identifier) for ds in self._matches(identifier)]
        sent = 0
        for answer in [*answers, None]:  # None: the final status, after the same abort and pause
            if self.mode == "abort_after_n" and sent >= self.abort_after:
                self._record("abort-sent", after=sent)
                event.assoc.abort()
                return
            cancelled = self.mode == "slow" and self._pause(event, check_cancel=True)
            if answer is None and not cancelled:
                break
            if cancelled or event.is_cancelled:
                self._record("cancel", after=sent)
                self._record("find-response", status=0xFE00)
                yield 0xFE00, None
                return
            if self._stop.is_set():
                return
            self._record("find-response", status=0xFF00)
            sent += 1
            yield 0xFF00, answer
        self._record("find-response", status=0x0000)
        # a generator's end gives pynetdicom's final Success response

    def _on_store(self, event: Any) -> int:
        with self._cond:
            self._store_count += 1
            number = self._store_count
        if self.mode == "abort_after_n" and number > self.abort_after:
            self._record("abort-sent", after=number - 1)
            event.assoc.abort()
            return 0xA700  # not sent: the association is gone
        ds = event.dataset
        ds.file_meta = FileMetaDataset(event.file_meta)
        if self.store_dir is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            ds.save_as(self.store_dir / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
        with self._cond:
            self.received.append(ds)
        self._record("store", sop_instance_uid=str(ds.SOPInstanceUID),
                     sop_class_uid=str(ds.SOPClassUID),
                     transfer_syntax=str(event.context.transfer_syntax))
        if self.mode == "slow":
            self._pause(event)
        return self.store_status

    # ---------------------------------------------------------------- C-FIND helpers
    def _matches(self, identifier: Dataset) -> list[Dataset]:
        if not self.match:
            return list(self.datasets)
        level = identifier.get("QueryRetrieveLevel", "")
        return [
            ds for ds in self.datasets
            if (not ds.get("QueryRetrieveLevel") or ds.QueryRetrieveLevel == level)
            and self._ds_matches(ds, identifier)
        ]

    def _ds_matches(self, ds: Dataset, identifier: Dataset) -> bool:
        for elem in identifier:
            if elem.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet") or elem.VR == "SQ":
                continue
            wanted = elem.value
            if _is_empty(wanted):
                continue
            if elem.tag not in ds:
                return False
            if not _matches_value(elem.VR, wanted, ds[elem.tag].value, self.case_insensitive):
                return False
        return True

    def _response(self, ds: Dataset, identifier: Dataset) -> Dataset:
        if self.match:
            answer = Dataset()
            for elem in identifier:
                if elem.keyword == "SpecificCharacterSet":
                    continue
                if elem.tag in ds:
                    answer.add(ds[elem.tag])
                else:
                    answer.add_new(elem.tag, elem.VR, elem.value)
            if "QueryRetrieveLevel" in identifier:
                answer.QueryRetrieveLevel = identifier.QueryRetrieveLevel
            own = ds.get("SpecificCharacterSet")
            if own:
                answer.SpecificCharacterSet = own
        else:
            answer = ds
        return self._apply_charset(answer)

    def _apply_charset(self, ds: Dataset) -> Dataset:
        own = ds.get("SpecificCharacterSet")
        label = own if self.find_charset is KEEP else self.find_charset
        encoding = self.find_encoding or own
        if label == own and encoding == own:
            return ds
        out = Dataset()
        terms = _terms(encoding)
        for elem in ds:
            if elem.keyword == "SpecificCharacterSet":
                continue
            if elem.VR in _TEXT_VRS and isinstance(elem.value, str | PersonName):
                out.add_new(elem.tag, elem.VR, _encode(elem.VR, elem.value, terms))
            else:
                out.add(elem)
        if label:
            out.SpecificCharacterSet = label
        return out


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | bytes | PersonName):
        return str(value) == "" if not isinstance(value, bytes) else value == b""
    try:
        return len(value) == 0
    except TypeError:
        return False


def _terms(value: Any) -> list[str]:
    if not value:
        return ["ISO_IR 6"]
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _encode(vr: str, value: Any, terms: list[str]) -> bytes:
    codecs = convert_encodings(terms)  # DICOM terms -> Python codec names
    if vr == "PN":
        return PersonName(str(value)).encode(codecs)
    return encode_string(str(value), codecs)


def _matches_value(vr: str, wanted: Any, have: Any, case_insensitive: bool) -> bool:
    if vr == "UI":
        wanted_uids = [str(u) for u in (wanted if not isinstance(wanted, str)
                                        else wanted.split("\\"))]
        have_uids = [str(u) for u in (have if isinstance(have, list | tuple) else [have])]
        return any(u in wanted_uids for u in have_uids)
    wanted_s = str(wanted)
    have_values = have if isinstance(have, list | tuple) else [have]
    for value in have_values:
        value_s = str(value)
        if vr in ("DA", "TM", "DT") and "-" in wanted_s:
            first, _, last = wanted_s.partition("-")
            if (not first or value_s >= first) and (not last or value_s <= last):
                return True
            continue
        if case_insensitive:
            wanted_cmp, value_cmp = wanted_s.upper(), value_s.upper()
        else:
            wanted_cmp, value_cmp = wanted_s, value_s
        if "*" in wanted_cmp or "?" in wanted_cmp:
            if fnmatch.fnmatchcase(value_cmp, wanted_cmp.replace("[", "[[]")):
                return True
        elif value_cmp == wanted_cmp:
            return True
    return False


def study_dataset(**values: Any) -> Dataset:
    """A convenience: ``study_dataset(PatientName="X", StudyInstanceUID=...)`` at STUDY level."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for key, value in values.items():
        setattr(ds, key, value)
    return ds

