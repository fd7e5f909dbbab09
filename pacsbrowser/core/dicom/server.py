"""Our SCP on pynetdicom: presentation contexts, TLS, sockets and the server, with its roles.

Synchronous: `DicomServer.start()` and `shutdown()` block briefly and run on worker threads (the
async face is core.server). pynetdicom runs one thread per association; the handlers run on it:
- storage (always): C-ECHO, and C-STORE into the archive (core.dicom.receive, shared with the C-GET);
- query/retrieve (`ServerSettings.query_retrieve`): C-FIND (core.dicom.serve_find), C-GET and
  C-MOVE to `ServerSettings.destinations` (core.dicom.serve_retrieve), Patient and Study Root.

What pynetdicom does not do, done here:
- TCP_NODELAY on accepted sockets (FIELD-NOTES: Nagle adds ~40 ms per message in two parts);
- the TLS handshake on the connection's own thread with the ACSE timeout, not in the accept loop
  (pynetdicom's `get_request` handshakes there, so one silent client would stall every other);
- socket reads in large chunks (pynetdicom reads 4 KiB at a time).
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
import time
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts, StoragePresentationContexts, build_context, evt
from pynetdicom.ae import ApplicationEntity
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from ..archive import Archive
from ..errors import ListenerError
from ..records import DEFAULT_MAX_PDU, Timeouts, TLSConfiguration
from . import ae as _ae  # noqa: F401 - importing it quiets pynetdicom's log (it prints identifiers)
from .receive import IndexedHandler, ReceiveHandler, StoreStats
from .responsive import make_responsive
from .serve_find import FIND_MODELS, RETRIEVE_MODELS, FindHandler
from .serve_retrieve import GetHandler, MoveHandler, ServingAE
from .syntaxes import ACCEPTED_FOR_STORAGE

log = logging.getLogger(__name__)

# What we accept, in our order of preference when a peer proposes several in one context.
STORAGE_TRANSFER_SYNTAXES: list[str | UID] = list(ACCEPTED_FOR_STORAGE)

_RECV_CHUNK = 1 << 20


def storage_contexts(query_retrieve: bool = False) -> list[PresentationContext]:
    """Every storage SOP class pynetdicom knows (the current ones, and the retired ones old
    modalities still send), with every transfer syntax above; and Verification. With
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
    """The SSLContext of our server: `certificate`/`key` are ours (required); when
    `ca_certificate` is given and `verify_peer` is on, callers must show a certificate it signed."""
    if tls.certificate is None or tls.key is None:
        raise ListenerError(host, port, "a TLS listener needs its certificate and private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if tls.minimum_version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(tls.certificate), keyfile=str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise ListenerError(host, port, f"the TLS certificate {tls.certificate} or key {tls.key} cannot be used",
                            detail=repr(exc)) from exc
    if tls.ca_certificate is not None and tls.verify_peer:
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
    """Reads in large chunks (pynetdicom's own reads 4 KiB at a time)."""

    def recv(self, nr_bytes: int) -> bytearray:
        assert self.socket is not None
        buffer = bytearray()
        while len(buffer) < nr_bytes:
            chunk = self.socket.recv(min(_RECV_CHUNK, nr_bytes - len(buffer)))
            if not chunk:
                break
            buffer += chunk
        return buffer


class _RequestHandler(RequestHandler):
    """One per connection, on its own short-lived thread: socket options, TLS handshake, then the
    association thread."""

    def handle(self) -> None:
        sock = self.request
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.settimeout(self.ae.acse_timeout or 30)
                sock.do_handshake()
                sock.settimeout(None)
            except (OSError, ssl.SSLError) as exc:
                log.info("TLS handshake with %s failed: %s", self.client_address[0], exc)
                try:
                    sock.close()
                except OSError:
                    pass
                return
        super().handle()

    def _create_association(self) -> Any:
        # pynetdicom's RequestHandler._create_association, with our socket class.
        from pynetdicom._globals import MODE_ACCEPTOR
        from pynetdicom.association import Association

        assoc = make_responsive(Association(self.ae, MODE_ACCEPTOR))
        assoc._server = self.server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        assoc.set_socket(_AcceptorSocket(assoc, client_socket=self.request))
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        assoc.acceptor.supported_contexts = deepcopy(self.server.contexts)
        assoc.requestor.address_info = self.remote
        for event in self.server._handlers:
            bound = self.server._handlers[event]
            if event.is_intervention and isinstance(bound, tuple) and bound:
                assoc.bind(event, *bound)
            elif isinstance(event, evt.NotificationEvent) and isinstance(bound, list):
                for handler in bound:
                    assoc.bind(event, handler[0], handler[1])
        return assoc


class _Server(ThreadedAssociationServer):
    daemon_threads = True

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
        deadline = time.monotonic() + grace
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.02)
        remaining = server.active_associations
        for assoc in remaining:
            log.warning("aborting the association from %s: the listener is stopping", assoc.requestor.ae_title)
            assoc.abort()
        deadline = time.monotonic() + join_timeout
        for assoc in remaining:
            assoc.join(max(0.0, deadline - time.monotonic()))
            dul = getattr(assoc, "dul", None)
            if dul is not None and dul.is_alive():
                dul.join(max(0.0, deadline - time.monotonic()))
        self._ae = None


__all__ = [
    "STORAGE_TRANSFER_SYNTAXES",
    "DicomServer",
    "ServerSettings",
    "StoreStats",
    "server_ssl_context",
    "storage_contexts",
]
