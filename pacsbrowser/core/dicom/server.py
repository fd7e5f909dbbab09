"""Our SCP on pynetdicom: presentation contexts, TLS, sockets and the server, with its roles.

Synchronous: `DicomServer.start()` and `shutdown()` block briefly and run on worker threads (the
async face is core.server). pynetdicom runs one thread per association; the handlers run on it:
- storage (always): C-ECHO, and C-STORE into the archive (core.dicom.receive, shared with the C-GET);
- query/retrieve (`ServerSettings.query_retrieve`): C-FIND (core.dicom.serve_find), C-GET and
  C-MOVE to `ServerSettings.destinations` (core.dicom.serve_retrieve), Patient and Study Root.

What pynetdicom does not do, done here:
- TCP_NODELAY and TCP keepalive on accepted sockets (FIELD-NOTES: Nagle adds ~40 ms per message in
  two parts), and a finite socket timeout after accept and the TLS handshake (core.dicom.links: a
  link frozen mid-PDU must not hold an association slot for good);
- every byte read or written counted, per association and for the whole server
  (core.dicom.activity: `DicomServer.link_activity` is what a C-MOVE's idle watch reads);
- the TLS handshake on the connection's own thread with the ACSE timeout, not in the accept loop
  (pynetdicom's `get_request` handshakes there, so one silent client would stall every other);
- socket reads in large chunks (pynetdicom reads 4 KiB at a time), and C-STOREs received on the
  lean path (core.dicom.bulkreceive) once the association is established.
- private and newer storage SOP classes accepted and stored like the known ones (core.dicom.anyclass).
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts, StoragePresentationContexts, build_context, evt
from pynetdicom.ae import ApplicationEntity
from pynetdicom.fsm import InvalidEventError, StateMachine
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from .. import validation
from ..archive import Archive
from ..archive.paths import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from ..errors import ListenerError
from ..records import DEFAULT_MAX_PDU, Timeouts, TLSConfiguration
from . import ae as _ae  # noqa: F401 - importing it quiets pynetdicom's log (it prints identifiers)
from . import bulkreceive
from .activity import LinkActivity, activity_of
from .anyclass import accept_any_storage
from .limits import ABORT_INVALID_PARAMETER, MAX_COMMAND_SET, CommandSetBound, pdu_limit
from .links import abort_and_shut, counted_send, end_association, link_timeout, tune_socket
from .receive import IndexedHandler, ReceiveHandler, StoreStats
from .responsive import make_responsive
from .serve_find import FIND_MODELS, RETRIEVE_MODELS, FindHandler
from .serve_retrieve import GetHandler, MoveHandler, ServingAE
from .syntaxes import ACCEPTED_FOR_STORAGE

log = logging.getLogger(__name__)

# What we accept, in our order of preference when a peer proposes several in one context.
STORAGE_TRANSFER_SYNTAXES: list[str | UID] = list(ACCEPTED_FOR_STORAGE)

_RECV_CHUNK = 1 << 20
_PDU_HEADER = 6
_PDU_TYPES = frozenset(range(0x01, 0x08))
_READ_SLICE = 0.25  # seconds: how often a waiting read looks at the idle bound and at kill
_MIN_WAITING_LIMIT = 16  # connections waiting for their A-ASSOCIATE-RQ (or twice max_associations)
_DEFAULT_IDLE = 60.0  # seconds without a byte mid-PDU when the association has no timeouts


def storage_contexts(query_retrieve: bool = False) -> list[PresentationContext]:
    """Every storage SOP class pynetdicom knows (the current ones, and the retired ones old
    modalities still send), with every transfer syntax above; and Verification. (Any other
    storage-like class a caller proposes is added per association: core.dicom.anyclass.) With
    `query_retrieve`, the Patient and Study Root FIND, GET and MOVE models too, and the storage
    contexts accept the roles a C-GET caller proposes (it is the storage SCP for its sub-operations)."""
    classes: dict[str, None] = {}
    for cx in (*AllStoragePresentationContexts, *StoragePresentationContexts):
        classes.setdefault(str(cx.abstract_syntax))
    contexts = [build_context(uid, STORAGE_TRANSFER_SYNTAXES) for uid in classes]
    if query_retrieve:
        for cx in contexts:
            cx.scu_role, cx.scp_role = True, True
        contexts += [build_context(model) for model in (*FIND_MODELS, *RETRIEVE_MODELS)]
    contexts.append(build_context(Verification))
    return contexts


def server_ssl_context(tls: TLSConfiguration, host: str, port: int) -> ssl.SSLContext:
    """The SSLContext of our server: `certificate`/`key` are ours (required); with `verify_peer`
    on, callers must show a certificate `ca_certificate` signed (verification without a CA is
    refused: it would accept any client). With it off, callers show no certificate."""
    try:
        validation.server_tls(tls)
    except validation.InvalidInput as exc:
        raise ListenerError(host, port, exc.rule) from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if tls.minimum_version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(tls.certificate), keyfile=str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise ListenerError(host, port, f"the TLS certificate {tls.certificate} or key {tls.key} cannot be used",
                            detail=repr(exc)) from exc
    if tls.verify_peer:
        assert tls.ca_certificate is not None  # validation.server_tls
        try:
            context.load_verify_locations(cafile=str(tls.ca_certificate))
        except (OSError, ssl.SSLError) as exc:
            raise ListenerError(host, port, f"the CA certificate {tls.ca_certificate} cannot be used",
                                detail=repr(exc)) from exc
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


class _AcceptorSocket(AssociationSocket):
    """The socket of one accepted connection, hardened against what a peer may send or not send.

    pynetdicom's DUL reads a PDU as recv(6) for the header, then recv(length) for the body, each
    blocking until every byte is in; a peer may announce any length up to 4 GiB. Here:
    - reads come in large chunks (pynetdicom's own read 4 KiB at a time);
    - a PDU longer than we accept (`pdu_limit`) is refused after its header: A-ABORT (invalid PDU
      parameter value), connection closed, nothing more read, so a peer cannot make us buffer
      gigabytes; so is a DIMSE command set whose fragments go on past `limits.MAX_COMMAND_SET`;
    - a read that gets no byte for the network timeout gives up (a dead link, or a peer that starts
      a PDU and never finishes it), and so does a read while the association is being killed or the
      connection was hung up (`hang_up`): pynetdicom's abort then always ends both threads;
    What comes back short, pynetdicom treats as the connection closed (Evt17).
    """

    _reading_body = False  # the next recv() reads the body of the PDU whose header was just read
    _body_type = 0
    _command_bound: CommandSetBound | None = None  # the command fragments seen (limits.CommandSetBound)
    _refused = False  # a PDU was refused: nothing more is read
    _hung_up = False

    def recv(self, nr_bytes: int) -> bytearray:
        reading_body, self._reading_body = self._reading_body, False
        if self._refused or self.socket is None:
            return bytearray()
        data = self._read(nr_bytes)
        if len(data) < nr_bytes:
            return data
        if reading_body:
            if self._body_type == 0x04 and not self._command_set_fits(data):
                return data[:-1]  # pynetdicom takes a short PDU as the connection closed
        elif nr_bytes == _PDU_HEADER:
            pdu_type, _, length = struct.unpack(">BBL", data)
            if pdu_type in _PDU_TYPES:  # pynetdicom reads no body for an unknown type
                limit = self.pdu_limit(pdu_type)
                if limit is not None and length > limit:
                    self._refuse(f"a PDU of type 0x{pdu_type:02X} and {length} bytes, more than the {limit} "
                                 "we accept")
                else:
                    self._reading_body, self._body_type = True, pdu_type
        return data

    def _command_set_fits(self, body: bytes | bytearray) -> bool:
        """Whether the command fragments of this P-DATA-TF body keep the command set within
        `limits.MAX_COMMAND_SET`; refused (A-ABORT) when not."""
        bound = self._command_bound
        if bound is None:
            bound = self._command_bound = CommandSetBound()
        if bound.fits(body):
            return True
        self._refuse(f"a DIMSE command set of more than {MAX_COMMAND_SET} bytes")
        return False

    def pdu_limit(self, pdu_type: int) -> int | None:
        """The longest PDU body of `pdu_type` we read (core.dicom.limits)."""
        return pdu_limit(pdu_type, int(self.assoc.acceptor.maximum_length or 0))

    def _activities(self) -> tuple[LinkActivity, LinkActivity | None]:
        """Where the bytes this socket moves are counted: the association's and the server's."""
        assoc = self.assoc
        return activity_of(assoc), getattr(getattr(assoc, "_server", None), "link_activity", None)

    def send(self, bytestream: bytes) -> None:
        counted_send(self, bytestream, *self._activities())

    def hang_up(self) -> None:
        """End the connection from another thread: what is being read comes back short."""
        self._hung_up = True
        sock = self.socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _stopping(self) -> bool:
        assoc = self.assoc
        return self._hung_up or bool(getattr(assoc, "_kill", False)) or bool(getattr(assoc.dul, "_kill_thread", False))

    def _read(self, nr_bytes: int) -> bytearray:
        sock = self.socket
        assert sock is not None
        mine, server = self._activities()
        buffer = bytearray()
        idle_limit = self.assoc.network_timeout or self.assoc.acse_timeout or _DEFAULT_IDLE
        last_byte = time.monotonic()
        while len(buffer) < nr_bytes:
            if self._stopping():
                break
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                try:
                    readable, _, _ = select.select([sock], [], [], _READ_SLICE)
                except (OSError, ValueError):  # closed under us
                    break
                if not readable:
                    if time.monotonic() - last_byte > idle_limit:
                        log.warning("no data from %s for %g s in the middle of a PDU: connection closed",
                                    self._peer(), idle_limit)
                        break
                    continue
            try:
                chunk = sock.recv(min(_RECV_CHUNK, nr_bytes - len(buffer)))
            except (ssl.SSLWantReadError, InterruptedError):
                continue
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            last_byte = time.monotonic()
            mine.received(len(chunk))
            if server is not None:
                server.received(len(chunk))
        return buffer

    def _refuse(self, what: str) -> None:
        self._refused = True
        log.warning("%s sent %s: association aborted", self._peer(), what)
        self._hung_up = True
        abort_and_shut(self.socket, ABORT_INVALID_PARAMETER)

    def _peer(self) -> str:
        return _peer_of(self.assoc.dul)


class _GuardedStateMachine(StateMachine):
    """The DUL state machine of an accepted connection, whose failures end the connection quietly
    instead of killing the DUL thread with a traceback.

    pynetdicom raises out of its DUL thread (1) when an action fails, e.g. P-DATA whose command
    set cannot be decoded (DT-2), after asking the thread to stop, and (2) for an event its state
    has no transition for, e.g. a response queued for sending after the peer has gone (Sta1). Here
    (1) sends the peer an A-ABORT and (2) just stops the thread; either way the association thread
    then sees the DUL gone and closes the connection.

    A connection that ends before its A-ASSOCIATE-RQ came (idle state Sta1 again: closed, reset,
    aborted, refused, ARTIM expired) wakes the association thread at once; it would otherwise wait
    for a request until the ACSE timeout, holding its thread."""

    _woken = False

    def transition(self, state: str) -> None:
        super().transition(state)
        if state == "Sta1":
            self._wake_waiting()

    def _wake_waiting(self) -> None:
        dul = self.dul
        if not self._woken and dul.assoc.requestor.primitive is None and dul.to_user_queue.empty():
            self._woken = True
            dul.to_user_queue.put(cast(Any, None))  # pynetdicom reads it as the ACSE timeout

    def do_action(self, event: str) -> None:
        state = self.current_state
        try:
            super().do_action(event)
        except InvalidEventError:
            log.debug("DUL event %s in state %s from %s: the connection has ended", event, state, _peer_of(self.dul))
            self.dul.kill_dul()
            self._wake_waiting()
        except Exception as exc:  # noqa: BLE001 - whatever a peer's bytes made pynetdicom raise
            log.warning("%s sent what cannot be processed (%s in state %s: %s): association aborted",
                        _peer_of(self.dul), event, state, exc.__class__.__name__)
            self.dul.kill_dul()
            self._wake_waiting()
            abort = A_ABORT_RQ()
            abort.source, abort.reason_diagnostic = 0x02, 0x00  # service provider, reason not specified
            sock = self.dul.socket
            if sock is not None and sock.socket is not None:
                try:
                    sock.socket.sendall(abort.encode())
                except OSError:
                    pass


def _peer_of(dul: Any) -> str:
    info = dul.assoc.requestor.address_info
    return f"{info.address}:{info.port}" if info is not None else "a peer"


class _RequestHandler(RequestHandler):
    """One per connection, on its own short-lived thread: socket options, TLS handshake, then the
    association thread."""

    def handle(self) -> None:
        sock = self.request
        tune_socket(sock)
        # Never blocking without a bound (pynetdicom's accepted sockets have no timeout): a read or
        # write that moves nothing for this long ends the association and frees its slot.
        stall = link_timeout(self.ae.dimse_timeout, self.ae.network_timeout)
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.settimeout(self.ae.acse_timeout or 30)
                sock.do_handshake()
                sock.settimeout(stall)
            except (OSError, ssl.SSLError) as exc:
                log.info("TLS handshake with %s failed: %s", self.client_address[0], exc)
                try:
                    sock.close()
                except OSError:
                    pass
                return
        else:
            sock.settimeout(stall)
        super().handle()

    def _create_association(self) -> Any:
        # pynetdicom's RequestHandler._create_association, with our socket class.
        from pynetdicom._globals import MODE_ACCEPTOR
        from pynetdicom.association import Association

        assoc = bulkreceive.enable(make_responsive(Association(self.ae, MODE_ACCEPTOR)))
        assoc.dul.state_machine.__class__ = _GuardedStateMachine
        assoc._server = self.server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        assoc.set_socket(_AcceptorSocket(assoc, client_socket=self.request))
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        # The server's contexts themselves, in a list of the association's own: negotiation only
        # reads them (pynetdicom's negotiate_as_acceptor builds new contexts for its results, and
        # accept_any_storage below adds to a new list). pynetdicom deep-copies them here: 185
        # contexts and 2,948 transfer syntaxes, 29 ms of CPU on an idle machine and 35-85 ms under
        # load, between a peer's connection and the reading of its A-ASSOCIATE-RQ, on every
        # association (the first instance of every C-MOVE to us, every sender).
        assoc.acceptor.supported_contexts = list(self.server.contexts)
        # private and newer storage classes too, with the roles our storage contexts allow
        accept_any_storage(assoc, STORAGE_TRANSFER_SYNTAXES, roles=any(cx.scp_role for cx in self.server.contexts))
        assoc.requestor.address_info = self.remote
        cast(_Server, self.server).track(assoc)
        for event in self.server._handlers:
            bound = self.server._handlers[event]
            if event.is_intervention and isinstance(bound, tuple) and bound:
                assoc.bind(event, *bound)
            elif isinstance(event, evt.NotificationEvent) and isinstance(bound, list):
                for handler in bound:
                    assoc.bind(event, handler[0], handler[1])
        return assoc


class _Server(ThreadedAssociationServer):
    """pynetdicom's threaded server that keeps at most `waiting_limit` connections waiting for their
    A-ASSOCIATE-RQ: a flood of connections that never speak costs two threads each until the ACSE
    timeout, so beyond the limit the oldest silent one is hung up. Association slots
    (`maximum_associations`) count only connections that asked for an association
    (serve_retrieve.ServingAE), so silent ones never lock real peers out."""

    daemon_threads = True
    link_activity: LinkActivity  # every byte any of its associations moved (set by DicomServer.start)
    waiting_limit = 32

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._waiting: list[Any] = []
        self._waiting_lock = threading.Lock()
        self.hung_up = 0  # connections hung up for a newer one
        super().__init__(*args, **kwargs)

    def _prune_locked(self) -> None:
        self._waiting = [a for a in self._waiting if a.requestor.primitive is None
                         and not (a.ident is not None and not a.is_alive())]

    def hang_up_waiting(self) -> int:
        """Close every connection still waiting to ask for an association (the server stopping:
        they have nothing to finish); how many."""
        with self._waiting_lock:
            self._prune_locked()
            waiting, self._waiting = self._waiting, []
        for assoc in waiting:
            assoc.dul.socket.hang_up()
        return len(waiting)

    def track(self, assoc: Any) -> None:
        """A new connection's association (its thread not started yet)."""
        with self._waiting_lock:
            self._prune_locked()
            while len(self._waiting) >= self.waiting_limit:
                oldest = self._waiting.pop(0)
                self.hung_up += 1
                log.warning("%d connections are waiting to ask for an association: the oldest, from %s, is closed",
                            self.waiting_limit + 1, oldest.requestor.address)
                oldest.dul.socket.hang_up()
            self._waiting.append(assoc)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client_socket, address = self.socket.accept()
        if self.ssl_context:
            # The handshake happens on the connection's thread (_RequestHandler.handle).
            client_socket = self.ssl_context.wrap_socket(client_socket, server_side=True,
                                                         do_handshake_on_connect=False)
        return client_socket, address


def _bind_error(host: str, port: int, exc: BaseException) -> ListenerError:
    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        return ListenerError(host, port, "the port is already in use by another program",
                             detail=repr(exc), hint="choose another port, or stop the program using it")
    if code in (errno.EACCES, errno.EPERM):
        hint = "use a port from 1024 up, such as 11112, DICOM's usual" if 0 < port < 1024 else ""
        reason = ("ports below 1024 need administrator privileges" if 0 < port < 1024
                  else "permission denied")
        return ListenerError(host, port, reason, detail=repr(exc), hint=hint)
    if code == errno.EADDRNOTAVAIL:
        return ListenerError(host, port, "this computer has no such address", detail=repr(exc))
    if isinstance(exc, socket.gaierror):
        return ListenerError(host, port, f"the address cannot be resolved ({exc.strerror or exc})", detail=repr(exc))
    return ListenerError(host, port, getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__,
                         detail=repr(exc))


@dataclass(frozen=True)
class ServerSettings:
    """Where and how our SCP listens (core.server.ArchiveServer builds one, checked).
    `allowed_calling_aes`: when not empty, other calling AE titles are rejected. `query_retrieve`:
    serve the archive (C-FIND, C-GET, C-MOVE) besides storing into it; `destinations`: the C-MOVE
    destinations, (AE title, host, port). `batched`: reply once the bytes are written, fsync and
    rename in groups after (core.archive.committer): only for a listener whose senders keep the
    data (the one a C-MOVE job starts for itself)."""

    host: str
    port: int
    ae_title: str
    tls: TLSConfiguration | None = None
    allowed_calling_aes: tuple[str, ...] = ()
    max_associations: int = 10
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_pdu: int = DEFAULT_MAX_PDU
    require_called_ae: bool = False
    query_retrieve: bool = False
    destinations: tuple[tuple[str, str, int], ...] = ()
    batched: bool = False


class DicomServer:
    """A running SCP (pynetdicom server thread plus one thread per association)."""

    def __init__(self, settings: ServerSettings, archive: Archive, *,
                 on_indexed: IndexedHandler | None = None) -> None:
        self.settings = settings
        self.host, self.port, self.ae_title = settings.host, settings.port, settings.ae_title
        self.archive = archive
        self.tls = settings.tls
        self.allowed_calling_aes = [a.strip() for a in settings.allowed_calling_aes]
        self.max_associations = settings.max_associations
        self.timeouts = settings.timeouts
        self.max_pdu = settings.max_pdu
        self.require_called_ae = settings.require_called_ae
        self.stats = StoreStats()
        self.handler = ReceiveHandler(archive, on_indexed=on_indexed, stats=self.stats, batched=settings.batched)
        self._ae: ApplicationEntity | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.link_activity = LinkActivity()  # bytes moved by any association of this server

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            return self.host, self.port
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> tuple[str, int]:
        """Bind and start serving; the address bound. Raises ListenerError."""
        if self._server is not None:
            raise RuntimeError("the server is running already")
        ssl_context = server_ssl_context(self.tls, self.host, self.port) if self.tls is not None else None
        ae = ServingAE(ae_title=self.ae_title)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION
        ae.maximum_associations = self.max_associations
        ae.maximum_pdu_size = self.max_pdu
        ae.acse_timeout = self.timeouts.acse
        ae.dimse_timeout = self.timeouts.dimse
        ae.network_timeout = self.timeouts.network
        ae.require_calling_aet = self.allowed_calling_aes
        ae.require_called_aet = self.require_called_ae
        handlers: list[Any] = [  # pynetdicom's (event, handler) pairs
            (evt.EVT_C_STORE, self.handler),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        if self.settings.query_retrieve:
            destinations = {ae_title: (host, port) for ae_title, host, port in self.settings.destinations}
            handlers += [
                (evt.EVT_C_FIND, FindHandler(self.archive, self.ae_title)),
                (evt.EVT_C_GET, GetHandler(self.archive)),
                (evt.EVT_C_MOVE, MoveHandler(self.archive, destinations)),
            ]
        try:
            server = cast(_Server, ae.make_server(
                (self.host, self.port),
                contexts=storage_contexts(self.settings.query_retrieve),
                ssl_context=ssl_context,
                evt_handlers=handlers,
                server_class=_Server,
                request_handler=_RequestHandler,
            ))
        except (OSError, OverflowError) as exc:
            raise _bind_error(self.host, self.port, exc) from exc
        server.link_activity = self.link_activity
        server.waiting_limit = max(_MIN_WAITING_LIMIT, 2 * self.max_associations)
        ae._servers.append(server)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"pacsbrowser-scp-{server.server_address[1]}", daemon=True)
        thread.start()
        self._ae, self._server, self._thread = ae, server, thread
        log.info("%s %s listening on %s:%d%s", "Query/Retrieve and Storage SCP" if self.settings.query_retrieve
                 else "Storage SCP", self.ae_title, *self.address[:2], " (TLS)" if ssl_context else "")
        return self.address

    def _on_accepted(self, event: Any) -> None:
        self.stats.add(associations=1)
        log.info("association from %s (%s:%s)", event.assoc.requestor.ae_title, event.assoc.requestor.address,
                 event.assoc.requestor.port)

    def _on_rejected(self, event: Any) -> None:
        self.stats.add(rejected=1)
        log.warning("association from %s (%s) rejected", str(event.assoc.requestor.ae_title or "").strip(),
                    event.assoc.requestor.address)

    def active_associations(self) -> list[Any]:
        return list(self._server.active_associations) if self._server is not None else []

    def shutdown(self, grace: float = 5.0, join_timeout: float = 10.0) -> None:
        """Stop accepting; let running associations finish for `grace` seconds, abort the rest;
        wait (bounded) for their threads."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()  # stops serve_forever, closes the listening socket
        if thread is not None:
            thread.join(join_timeout)
        server.hang_up_waiting()  # connections that never asked for an association get no grace
        deadline = time.monotonic() + grace
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.02)
        remaining = server.active_associations
        for assoc in remaining:
            log.warning("aborting the association from %s: the listener is stopping", assoc.requestor.ae_title)
            assoc.abort(block=False)
        deadline = time.monotonic() + join_timeout
        for assoc in remaining:  # their threads end even on a frozen link (core.dicom.links)
            end_association(assoc, join=max(0.0, deadline - time.monotonic()))
        self._ae = None


__all__ = [
    "STORAGE_TRANSFER_SYNTAXES",
    "DicomServer",
    "ServerSettings",
    "StoreStats",
    "server_ssl_context",
    "storage_contexts",
]
