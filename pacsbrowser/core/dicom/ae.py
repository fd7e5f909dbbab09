"""Building pynetdicom application entities and associations, and turning failures into typed errors.

Synchronous: call only from worker threads (see core.executor).

pynetdicom logs a failed connection and swallows the exception, so a refused port, a TLS
verification failure and a timeout all look alike afterwards. `ObservedSocket` keeps the exception
(and the first bytes the peer sent) so that `open_association` can say precisely what went wrong.
It also sets TCP_NODELAY, which pynetdicom never does (see FIELD-NOTES: Nagle doubles C-STORE times),
TCP keepalive and a finite socket timeout after connect (core.dicom.links: a link that dies mid-PDU
must not block the DUL thread for good), and reports every byte read or written to the association's
LinkActivity (core.dicom.activity), which the idle watchdogs read.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from pynetdicom import _config as pynetdicom_config
from pynetdicom import evt
from pynetdicom.ae import ApplicationEntity
from pynetdicom.association import Association
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ
from pynetdicom.pdu_primitives import A_P_ABORT
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import T_CONNECT, AddressInformation, AssociationSocket

from ..archive.paths import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from ..errors import (
    AssociationAborted,
    AssociationRejected,
    ConnectionFailed,
    DICOMNetworkError,
    ServiceNotSupported,
    Timeout,
    TLSCause,
    TLSError,
)
from ..executor import start_detached
from ..records import Timeouts, TLSConfiguration
from . import bulkreceive
from .activity import activity_of
from .links import counted_send, end_association, link_failure, link_timed_out, link_timeout, tune_socket
from .responsive import keep_responses_for_callers, make_responsive, settle_reactor, unbind_log_handlers

log = logging.getLogger(__name__)

# pynetdicom logs identifiers (patient names in C-FIND identifiers, for instance) at INFO/DEBUG level.
# Keep it quiet unless a debug switch turns it back on (pacsbrowser.core.logs.enable_debug).
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
# pynetdicom also formats every C-FIND identifier for its log whether or not the log is on, and in
# doing so decodes the response's text with pydicom's lenient decoder (mojibake and warnings for a
# missing or wrong (0008,0005)) before identifiers.decode_response sees the raw bytes. It would also
# put patient names in the log. Off, process-wide.
pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False

_RECV_CHUNK = 1 << 20
_FIND_MODELS = {"1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.2.1"}  # Patient, Study Root C-FIND


class ObservedSocket(AssociationSocket):
    """An AssociationSocket that sets TCP_NODELAY and keepalive, keeps a finite timeout after
    connect, counts the bytes it moves (activity_of) and remembers why it failed."""

    failure: BaseException | None = None
    first_bytes: bytes = b""

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        sock = super()._create_socket(address)
        tune_socket(sock)
        return sock

    def connect(self, primitive: T_CONNECT) -> None:
        # Same steps as AssociationSocket.connect, keeping the exception instead of only logging it.
        assert self.socket is not None
        try:
            if self.tls_args:
                context, server_hostname = self.tls_args
                self.socket = context.wrap_socket(self.socket, server_side=False, server_hostname=server_hostname)
            self.socket.settimeout(self.assoc.connection_timeout)
            self.socket.connect(primitive.address_info.as_tuple)
            # pynetdicom goes back to blocking without a timeout here: one frozen link would then
            # hold the DUL thread (and everything waiting on it) for good. See core.dicom.links.
            self.socket.settimeout(link_timeout(self.assoc.dimse_timeout, self.assoc.network_timeout))
            self.assoc.requestor.address_info = AddressInformation.from_tuple(self.socket.getsockname())
            self._is_connected = True
            evt.trigger(self.assoc, evt.EVT_CONN_OPEN, {"address": primitive.address_info.as_tuple})
            primitive.result = "Evt2"
            self.provider_queue.put(primitive)
        except OSError as exc:
            self.failure = exc
            if self.socket:
                self._shutdown_socket()
                self.socket = None
            primitive.result = "Evt17"
            self.provider_queue.put(primitive)
        finally:
            self._ready.set()

    def recv(self, nr_bytes: int) -> bytearray:
        # Read in large chunks (pynetdicom reads 4 KiB at a time) and keep what a failing peer said.
        assert self.socket is not None
        buffer = bytearray()
        activity = activity_of(self.assoc)
        try:
            while len(buffer) < nr_bytes:
                chunk = self.socket.recv(min(_RECV_CHUNK, nr_bytes - len(buffer)))
                if not chunk:
                    break
                buffer += chunk
                activity.received(len(chunk))
        except OSError as exc:
            if self.failure is None:
                self.failure = exc
            raise
        finally:
            if len(self.first_bytes) < 8:
                self.first_bytes += bytes(buffer[: 8 - len(self.first_bytes)])
        return buffer

    def send(self, bytestream: bytes) -> None:
        failure = counted_send(self, bytestream, activity_of(self.assoc))
        if failure is not None and self.failure is None:
            self.failure = failure


class PacsAE(ApplicationEntity):
    """An AE whose requestor sockets are ObservedSockets and whose associations wait for events
    instead of polling (responsive.make_responsive: called here, before their threads start) and
    receive C-STOREs on the lean path (bulkreceive.enable: a C-GET's sub-operations)."""

    responsive = True  # set per association request by open_association
    on_association: Callable[[Association], None] | None = None  # told of each association it requests

    def _create_socket(self, assoc, address, tls_args):
        if self.responsive:
            bulkreceive.enable(make_responsive(assoc))
        else:  # a C-FIND's: pynetdicom's polling, without its per-message log formatting
            unbind_log_handlers(assoc)
        if self.on_association is not None:
            self.on_association(assoc)
        sock = ObservedSocket(assoc, address=address)
        sock.tls_args = tls_args
        return sock


def make_ae(calling_ae: str, timeouts: Timeouts, max_pdu: int) -> PacsAE:
    ae = PacsAE(ae_title=calling_ae)
    ae.connection_timeout = timeouts.connect
    ae.acse_timeout = timeouts.acse
    ae.dimse_timeout = timeouts.dimse
    ae.network_timeout = timeouts.network
    ae.maximum_pdu_size = max_pdu
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION
    return ae


def client_ssl_context(tls: TLSConfiguration, host: str, port: int) -> ssl.SSLContext:
    """An SSLContext for a client connection, or TLSError(LOCAL_FILES) naming the unusable file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.minimum_version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
    )
    if tls.verify_peer:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            if tls.ca_certificate:
                context.load_verify_locations(cafile=str(tls.ca_certificate))
            else:
                context.load_default_certs()
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(TLSCause.LOCAL_FILES, host, port, f"CA certificate {tls.ca_certificate}: {exc}") from exc
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.certificate:
        try:
            context.load_cert_chain(certfile=str(tls.certificate), keyfile=str(tls.key) if tls.key else None)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(
                TLSCause.LOCAL_FILES, host, port, f"client certificate {tls.certificate} / key {tls.key}: {exc}"
            ) from exc
    return context


@dataclass
class _Observed:
    """What happened on the wire while associating."""

    abort_source: int | None = None
    abort_reason: int | None = None
    rejection: tuple[int, int, int] | None = None

    def on_pdu_received(self, event: Any) -> None:
        pdu = event.pdu if hasattr(event, "pdu") else None
        if isinstance(pdu, A_ABORT_RQ):
            self.abort_source, self.abort_reason = pdu.source, pdu.reason_diagnostic
        elif isinstance(pdu, A_ASSOCIATE_RJ):
            # Kept from the PDU itself: when the peer rejects and closes at once, pynetdicom's ACSE
            # may see the closed transport before the rejection and report an abort instead.
            self.rejection = (int(pdu.result or 0), int(pdu.source or 0), int(pdu.reason_diagnostic or 0))


_ABORT_SOURCE = {0: "the PACS", 1: "reserved", 2: "the network layer of the PACS"}


def open_association(
    ae: PacsAE,
    host: str,
    port: int,
    called_ae: str,
    contexts: Sequence[PresentationContext],
    *,
    tls: TLSConfiguration | None,
    timeouts: Timeouts,
    max_pdu: int,
    evt_handlers: Iterable[tuple] = (),
    ext_neg: Sequence[Any] | None = None,
):
    """Request an association; return it established, or raise the DICOMNetworkError that says why."""
    tls_args = None
    if tls is not None:
        server_name = tls.server_name or host
        tls_args = (client_ssl_context(tls, host, port), server_name)
    observed = _Observed()
    handlers = [(evt.EVT_PDU_RECV, observed.on_pdu_received), *evt_handlers]
    # C-FIND keeps pynetdicom's polling (see responsive.py, "C-FIND and the window"), unless its
    # responses are read on the lean path (core.dicom.bulkreceive: PACSBROWSER_LEAN_FIND, default on).
    ae.responsive = (bulkreceive.ENABLED and bulkreceive.lean_find()) or not all(str(cx.abstract_syntax) in _FIND_MODELS for cx in contexts)
    started = time.monotonic()
    try:
        assoc = ae.associate(
            host,
            port,
            contexts=list(contexts),
            ae_title=called_ae,
            max_pdu=max_pdu,
            tls_args=tls_args,
            evt_handlers=handlers,
            ext_neg=list(ext_neg) if ext_neg else None,
        )
    except (OSError, socket.gaierror) as exc:  # name resolution and binding failures raise here
        raise ConnectionFailed(host, port, _os_reason(exc), detail=repr(exc)) from exc
    if assoc.is_established:
        keep_responses_for_callers(assoc)
        return assoc
    elapsed = time.monotonic() - started
    sock: ObservedSocket | None = assoc.dul.socket if isinstance(assoc.dul.socket, ObservedSocket) else None
    raise _failure(assoc, sock, observed, host, port, tls, timeouts, elapsed)


def _failure(assoc, sock, observed, host, port, tls, timeouts, elapsed) -> DICOMNetworkError:
    failure = sock.failure if sock else None
    first = sock.first_bytes if sock else b""
    primitive = assoc.acceptor.primitive
    if primitive is not None and primitive.result == 0x00 and not assoc.accepted_contexts:
        return ServiceNotSupported(host, port, _context_names(assoc.rejected_contexts),
                                   detail=_context_detail(assoc.rejected_contexts))
    if assoc.is_rejected and assoc.acceptor.primitive is not None:
        rsp = assoc.acceptor.primitive
        return AssociationRejected(int(rsp.result), int(rsp.result_source), int(rsp.diagnostic))
    if observed.rejection is not None:
        return AssociationRejected(*observed.rejection)
    if isinstance(failure, ssl.SSLError) or (tls is not None and isinstance(failure, (ConnectionResetError, BrokenPipeError))):
        return classify_tls_error(failure, tls, host, port)
    if isinstance(failure, (TimeoutError, socket.timeout)):
        what = "connecting" + (" and negotiating TLS" if tls else "")
        return Timeout(f"{what} to {host}:{port}", timeouts.connect, detail=repr(failure))
    if failure is not None and not getattr(sock, "_is_connected", False):
        return ConnectionFailed(host, port, _os_reason(failure), detail=repr(failure))
    if observed.abort_source is not None:
        who = _ABORT_SOURCE.get(observed.abort_source, "the PACS")
        return AssociationAborted(
            f"{host}:{port} aborted the association request ({who})",
            detail=f"A-ABORT source={observed.abort_source} reason={observed.abort_reason}",
        )
    if tls is None and first[:1] in (b"\x15", b"\x16") and first[1:2] == b"\x03":
        return TLSError(TLSCause.TLS_SERVER_PLAIN_CLIENT, host, port, detail=f"first bytes from peer: {first.hex()}")
    if failure is not None and tls is not None:
        return classify_tls_error(failure, tls, host, port)
    if not first and elapsed >= timeouts.acse * 0.9:
        return Timeout(f"waiting for {host}:{port} to answer the association request", timeouts.acse)
    if not first:
        # A TLS server resets a plain client without a word; ask the port whether it speaks TLS.
        if tls is None and speaks_tls(host, port, timeouts.connect):
            return TLSError(TLSCause.TLS_SERVER_PLAIN_CLIENT, host, port,
                            detail="the server closed the plain connection and answers a TLS handshake")
        return ConnectionFailed(host, port, "the server closed the connection without answering",
                                detail=repr(failure) if failure else "")
    return AssociationAborted(
        f"{host}:{port} sent something that is not a DICOM association answer",
        detail=f"first bytes from peer: {first.hex()}",
    )


def _context_names(contexts) -> str:
    names = sorted({getattr(cx.abstract_syntax, "name", str(cx.abstract_syntax)) for cx in contexts})
    return ", ".join(names) or "the requested services"


def _context_detail(contexts) -> str:
    return "; ".join(
        f"{getattr(cx.abstract_syntax, 'name', cx.abstract_syntax)}: result {cx.result} ({cx.status})"
        for cx in contexts
    )


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port, or a firewall refuses)"
    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({exc.strerror or exc})"
    if isinstance(exc, OSError) and exc.errno is not None:
        import errno

        words = {
            errno.EHOSTUNREACH: "no route to the host",
            errno.ENETUNREACH: "the network is unreachable",
            errno.ECONNRESET: "the connection was reset by the server",
            errno.EADDRNOTAVAIL: "the address is not available",
        }.get(exc.errno)
        if words:
            return words
        return exc.strerror or str(exc)
    return str(exc) or exc.__class__.__name__


# OpenSSL X509 verify codes (x509_vfy.h)
_VERIFY_CAUSES = {
    2: TLSCause.UNKNOWN_CA,  # unable to get issuer certificate
    9: TLSCause.NOT_YET_VALID,
    10: TLSCause.EXPIRED,
    18: TLSCause.SELF_SIGNED,  # depth zero self-signed
    19: TLSCause.UNKNOWN_CA,  # self-signed certificate in chain
    20: TLSCause.UNKNOWN_CA,  # unable to get local issuer certificate
    21: TLSCause.UNKNOWN_CA,  # unable to verify the first certificate
    62: TLSCause.HOSTNAME_MISMATCH,
    64: TLSCause.HOSTNAME_MISMATCH,  # IP address mismatch
}


def classify_tls_error(exc: BaseException, tls: TLSConfiguration | None, host: str, port: int) -> TLSError:
    """Name the cause of a TLS failure from what OpenSSL said."""
    detail = f"{exc.__class__.__name__}: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        cause = _VERIFY_CAUSES.get(exc.verify_code, TLSCause.OTHER)
        return TLSError(cause, host, port, detail=f"{detail} (verify code {exc.verify_code}: {exc.verify_message})")
    reason = (getattr(exc, "reason", None) or "").upper()
    have_cert = bool(tls and tls.certificate)
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
                  "UNKNOWN_PROTOCOL", "RECORD_TOO_LARGE", "UNEXPECTED_RECORD"):
        return TLSError(TLSCause.NOT_TLS_SERVER, host, port, detail)
    if reason in ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE") or (
        reason == "SSLV3_ALERT_HANDSHAKE_FAILURE" and not have_cert
    ):
        return TLSError(TLSCause.CLIENT_CERT_REQUIRED if not have_cert else TLSCause.CLIENT_CERT_REFUSED, host, port, detail)
    if reason in ("SSLV3_ALERT_BAD_CERTIFICATE", "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                  "SSLV3_ALERT_CERTIFICATE_EXPIRED", "SSLV3_ALERT_CERTIFICATE_REVOKED", "TLSV1_ALERT_ACCESS_DENIED",
                  "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "TLSV1_ALERT_DECRYPT_ERROR"):
        return TLSError(TLSCause.CLIENT_CERT_REFUSED, host, port, detail)
    if reason in ("UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "TLSV1_ALERT_PROTOCOL_VERSION",
                  "NO_SHARED_CIPHER", "SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_CIPHERS_AVAILABLE"):
        return TLSError(TLSCause.PROTOCOL, host, port, detail)
    if isinstance(exc, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)) or reason == "UNEXPECTED_EOF_WHILE_READING":
        # The peer hung up mid-handshake: a plain DICOM server reading our ClientHello does that, and
        # so does a TLS server refusing our client certificate (or its absence). Ask the port.
        if not speaks_tls(host, port, 5.0):
            cause = TLSCause.NOT_TLS_SERVER
        else:
            cause = TLSCause.CLIENT_CERT_REFUSED if have_cert else TLSCause.CLIENT_CERT_REQUIRED
        return TLSError(cause, host, port, detail + " (the server closed the connection during the handshake)")
    return TLSError(TLSCause.OTHER, host, port, detail)


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether the port answers a TLS ClientHello with TLS (a ServerHello or a TLS alert).

    Used only to explain a failure: no certificate is checked and nothing is sent after the handshake.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with context.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLCertVerificationError:
        return True
    except ssl.SSLError as exc:
        reason = (exc.reason or "").upper()
        return "ALERT" in reason and "WRONG_VERSION" not in reason
    except OSError:
        return False


def interrupt(assoc: Association) -> None:
    """Abort `assoc` from another thread and wake a send_c_store() waiting on it; returns at once
    (safe on the event loop), the threads are ended on a worker (links.end_association).

    A local abort does not wake a thread waiting for a DIMSE response: it would wait out the
    whole DIMSE timeout. An empty item on the DIMSE message queue is what pynetdicom itself reads
    as "no response", and send_c_store() then returns at once. The abort also wakes the
    association's reactor, which takes (and drops) one queued item per turn until it sees the
    abort: so several are queued, ahead of the abort. Left-over items die with the association."""
    queue = getattr(getattr(assoc, "dimse", None), "msg_queue", None)
    if queue is not None:
        for _ in range(4):
            queue.put((None, None))
    try:
        if not (assoc.is_aborted or assoc.is_released):
            assoc.abort(block=False)
    except Exception:  # noqa: BLE001 - already gone
        pass
    dul = getattr(assoc, "dul", None)
    if (isinstance(dul, threading.Thread) and dul.is_alive()) or assoc.is_alive():
        start_detached(lambda: end_association(assoc), name="abort")


def abandon_request(assoc: Association) -> None:
    """Give up an association still being requested (its wait cancelled): the A-ABORT goes out, so
    the PACS frees the slot now, not after its own timeout, and the requesting thread waiting for
    the A-ASSOCIATE answer wakes at once. Returns at once (safe on the event loop)."""
    if not assoc.is_established:
        try:
            assoc.dul.to_user_queue.put(A_P_ABORT())  # what the DUL hands up when the link drops
        except Exception:  # noqa: BLE001 - no DUL yet: the abort below is enough
            pass
    interrupt(assoc)


def verification_context() -> list[PresentationContext]:
    from pynetdicom import build_context
    from pynetdicom.sop_class import Verification

    return [build_context(Verification)]


def certificate_summary(cert: dict | None, der: bytes | None) -> dict[str, str]:
    """Subject, issuer, validity and SHA-256 fingerprint of a peer certificate, in words."""
    import hashlib

    def name(rdns) -> str:
        return ", ".join(f"{k}={v}" for rdn in rdns or () for (k, v) in rdn)

    out: dict[str, str] = {}
    if cert:
        out["subject"] = name(cert.get("subject"))
        out["issuer"] = name(cert.get("issuer"))
        out["valid_from"] = cert.get("notBefore", "")
        out["valid_until"] = cert.get("notAfter", "")
    if der:
        digest = hashlib.sha256(der).hexdigest().upper()
        out["sha256"] = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return out


__all__ = [
    "ObservedSocket",
    "PacsAE",
    "abandon_request",
    "link_failure",
    "link_timed_out",
    "certificate_summary",
    "classify_tls_error",
    "client_ssl_context",
    "interrupt",
    "settle_reactor",
    "make_ae",
    "open_association",
    "verification_context",
]

