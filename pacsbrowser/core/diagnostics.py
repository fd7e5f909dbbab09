"""A server profile's connection test, step by step, each step's result in words.

    async for step in ConnectionTest(profile).run():
        print(step.name, step.outcome, step.summary)

Steps: name resolution, TCP connect, TLS handshake (protocol, cipher, the server certificate), DICOM
association, C-ECHO round trip, a minimal C-FIND, and for C-MOVE profiles what the PACS must know
about us. A failing step says why and the steps that depend on it are skipped.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from enum import Enum

from .client import DICOMClient, VerificationService
from .dicom.ae import classify_tls_error, client_ssl_context
from .errors import DICOMNetworkError, TLSError
from .executor import run_blocking
from .records import RetrieveMethod, RetryPolicy, ServerProfile


class Outcome(str, Enum):
    OK = "ok"
    FAILED = "failed"
    WARNING = "warning"
    SKIPPED = "skipped"
    INFO = "info"


@dataclass(frozen=True)
class Step:
    name: str
    outcome: Outcome
    summary: str
    detail: str = ""
    seconds: float | None = None
    facts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerCertificate:
    subject: str
    issuer: str
    valid_from: str
    valid_until: str
    sha256: str
    subject_alt_names: str = ""


def _name(rdns) -> str:
    return ", ".join(f"{key}={value}" for rdn in rdns or () for (key, value) in rdn)


def describe_certificate(der: bytes) -> ServerCertificate:
    """Subject, issuer, validity and fingerprint of a DER certificate (no verification)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    decoded: dict = {}
    try:
        pem = ssl.DER_cert_to_PEM_cert(der)
        fd, path = tempfile.mkstemp(suffix=".pem")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(pem)
            decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]  # CPython's own decoder
        finally:
            os.unlink(path)
    except Exception:  # noqa: BLE001 - the fingerprint alone still identifies the certificate
        decoded = {}
    sans = ", ".join(f"{kind}:{value}" for kind, value in decoded.get("subjectAltName", ()))
    return ServerCertificate(
        subject=_name(decoded.get("subject")) or "(unreadable)",
        issuer=_name(decoded.get("issuer")) or "(unreadable)",
        valid_from=decoded.get("notBefore", ""),
        valid_until=decoded.get("notAfter", ""),
        sha256=fingerprint,
        subject_alt_names=sans,
    )


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _tcp_connect(address: str, port: int, timeout: float) -> float:
    started = time.perf_counter()
    with socket.create_connection((address, port), timeout=timeout):
        return time.perf_counter() - started


def _tls_handshake(profile: ServerProfile, address: str) -> tuple[dict[str, str], ServerCertificate | None, BaseException | None]:
    """Handshake once as configured; on failure, once more without verification to show the certificate."""
    tls = profile.tls
    assert tls is not None
    server_name = tls.server_name or profile.host
    timeout = profile.timeouts.connect
    error: BaseException | None = None
    facts: dict[str, str] = {}
    der: bytes | None = None
    context = client_ssl_context(tls, profile.host, profile.port)
    try:
        with socket.create_connection((address, profile.port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=server_name) as sock:
                facts = {"protocol": sock.version() or "", "cipher": (sock.cipher() or ("",))[0]}
                der = sock.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        error = exc
        lenient = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        lenient.check_hostname = False
        lenient.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((address, profile.port), timeout=timeout) as raw:
                with lenient.wrap_socket(raw, server_hostname=server_name) as sock:
                    der = sock.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError):
            der = None
    return facts, (describe_certificate(der) if der else None), error


class ConnectionTest:
    """Runs the steps for one profile. `run()` yields each Step as soon as it is known."""

    #: Study Instance UID that no PACS holds: the minimal C-FIND must succeed with no match.
    PROBE_UID = "1.2.826.0.1.3680043.10.1472.999999999.1"

    def __init__(self, profile: ServerProfile) -> None:
        # A test tries once: retrying would hide the very failure the user wants to see.
        self.profile = replace(profile, retry=RetryPolicy(max_retries=0))

    async def run(self) -> AsyncIterator[Step]:
        p = self.profile
        if p.is_web:  # a DICOMweb profile has its own steps (HTTP, QIDO-RS instead of association, C-ECHO)
            from .web.diagnostics import WebConnectionTest

            async for step in WebConnectionTest(p).run():
                yield step
            return
        step, address = await _resolution_step(p)
        yield step
        if address is None:
            yield _skipped("TCP connection", "TLS handshake", "Association", "C-ECHO", "C-FIND")
            return

        try:
            seconds = await run_blocking(_tcp_connect, address, p.port, p.timeouts.connect, name="tcp")
        except (TimeoutError, socket.timeout):
            yield Step("TCP connection", Outcome.FAILED,
                       f"no answer from {address}:{p.port} within {p.timeouts.connect:g} s (a firewall may drop it)")
            yield _skipped("TLS handshake", "Association", "C-ECHO", "C-FIND")
            return
        except OSError as exc:
            reason = "connection refused: nothing listens on that port" if isinstance(exc, ConnectionRefusedError) \
                else (exc.strerror or str(exc))
            yield Step("TCP connection", Outcome.FAILED, f"{address}:{p.port}: {reason}", detail=repr(exc))
            yield _skipped("TLS handshake", "Association", "C-ECHO", "C-FIND")
            return
        yield Step("TCP connection", Outcome.OK, f"connected to {address}:{p.port} in {seconds * 1000:.1f} ms",
                   seconds=seconds)

        if p.tls is None:
            yield Step("TLS handshake", Outcome.SKIPPED, "TLS is off for this profile")
        else:
            step = await _tls_step(p, address)
            yield step
            if step.outcome is Outcome.FAILED:
                yield _skipped("Association", "C-ECHO", "C-FIND")
                return

        client = DICOMClient.from_profile(p)
        step_started = time.perf_counter()
        try:
            await client.associate()
        except DICOMNetworkError as exc:
            yield Step("Association", Outcome.FAILED, str(exc), detail=exc.detail)
            yield _skipped("C-ECHO", "C-FIND")
            return
        local = client.association.requestor.address
        yield Step("Association", Outcome.OK,
                   f"accepted by {p.called_ae} (we are {p.calling_ae}, from {local})",
                   seconds=time.perf_counter() - step_started, facts={"local_address": str(local)})
        try:
            echo = await VerificationService(client).echo()
            yield Step("C-ECHO", Outcome.OK, f"round trip {echo.round_trip * 1000:.1f} ms", seconds=echo.round_trip)
        except DICOMNetworkError as exc:
            yield Step("C-ECHO", Outcome.FAILED, str(exc), detail=exc.detail)
        finally:
            await client.release()

        async for step in self._find_step():
            yield step

        if p.retrieve_method is RetrieveMethod.MOVE:
            destination = p.move_destination or p.calling_ae
            yield Step("C-MOVE set-up", Outcome.INFO,
                       f"the PACS must know AE {destination} at {local}:{p.listener_port} as a move destination",
                       facts={"ae": destination, "host": str(local), "port": str(p.listener_port)})

    async def _find_step(self) -> AsyncIterator[Step]:
        from .dicom.probe import minimal_find  # the one C-FIND the test needs, independent of the query UI

        p = self.profile
        client = DICOMClient.from_profile(p)
        started = time.perf_counter()
        try:
            status = await minimal_find(client, self.PROBE_UID)
        except DICOMNetworkError as exc:
            yield Step("C-FIND", Outcome.FAILED, str(exc), detail=exc.detail)
            return
        yield Step("C-FIND", Outcome.OK, f"a study-level query is answered (status 0x{status:04X})",
                   seconds=time.perf_counter() - started)


async def _resolution_step(p: ServerProfile) -> tuple[Step, str | None]:
    """The name resolution step, and the first address (None when the name does not resolve)."""
    started = time.perf_counter()
    try:
        addresses = await run_blocking(_resolve, p.host, p.port, name="resolve")
    except OSError as exc:
        return Step("Name resolution", Outcome.FAILED, f"{p.host} cannot be resolved: {exc.strerror or exc}",
                    detail=repr(exc)), None
    return Step("Name resolution", Outcome.OK, f"{p.host} is {', '.join(addresses)}",
                seconds=time.perf_counter() - started), addresses[0]


async def _tls_step(p: ServerProfile, address: str) -> Step:
    """The TLS handshake step with `p.tls` (not None): protocol, cipher and the server's certificate."""
    assert p.tls is not None
    started = time.perf_counter()
    try:
        facts, certificate, error = await run_blocking(_tls_handshake, p, address, name="tls")
    except TLSError as exc:  # our own files are unusable
        return Step("TLS handshake", Outcome.FAILED, str(exc), detail=exc.detail)
    cert_facts = _certificate_facts(certificate)
    if error is not None:
        tls_error = classify_tls_error(error, p.tls, p.host, p.port)
        return Step("TLS handshake", Outcome.FAILED, tls_error.cause.value, detail=tls_error.detail,
                    facts=cert_facts)
    return Step("TLS handshake", Outcome.OK,
                f"{facts.get('protocol')}, {facts.get('cipher')}; certificate of "
                f"{_common_name(cert_facts.get('subject', '?'))} issued by "
                f"{_common_name(cert_facts.get('issuer', '?'))}, valid until {cert_facts.get('valid_until', '?')}",
                seconds=time.perf_counter() - started, facts={**facts, **cert_facts})


def _skipped(*names: str) -> Step:
    # Only the first skipped name is reported as a step; the rest are implied. Kept as one step so a
    # failure reads "X failed; the rest was not tried".
    return Step(", ".join(names), Outcome.SKIPPED, "not tried: an earlier step failed")


def _common_name(name: str) -> str:
    """'commonName=x' out of a distinguished name in words, or the whole name."""
    for part in name.split(", "):
        if part.startswith("commonName="):
            return part.split("=", 1)[1]
    return name


def _certificate_facts(certificate: ServerCertificate | None) -> dict[str, str]:
    if certificate is None:
        return {}
    return {
        "subject": certificate.subject,
        "issuer": certificate.issuer,
        "valid_from": certificate.valid_from,
        "valid_until": certificate.valid_until,
        "sha256": certificate.sha256,
        "subject_alt_names": certificate.subject_alt_names,
    }
