"""The connection test of a DICOMweb profile, step by step, in the records of core/diagnostics.py.

Steps: name resolution, TCP connection, TLS handshake (protocol, cipher, the server's certificate;
https only), HTTP (the status of the smallest QIDO request, with 401, 403 and 404 said in words),
QIDO-RS (its answer read: a study-level query for a study no server holds, which must come back
empty). A failing step says why and the steps after it are skipped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx

from ..diagnostics import (
    ConnectionTest,
    Outcome,
    Step,
    _resolution_step,
    _skipped,
    _tcp_connect,
    _tls_step,
)
from ..errors import DICOMNetworkError
from ..executor import run_blocking
from ..records import RetryPolicy, ServerProfile, TLSConfiguration
from .errors import UnexpectedAnswer
from .failures import status_error, transport_error
from .session import DICOM_JSON, WebSession, query_string


def probe_params() -> list[tuple[str, str]]:
    return [("StudyInstanceUID", ConnectionTest.PROBE_UID), ("includefield", "StudyInstanceUID"), ("limit", "1")]


def _probe(session: WebSession) -> tuple[httpx.Response, float]:
    """The smallest QIDO request, its answer whatever its status (transport failures raised typed)."""
    url = f"{session.url('qido', 'studies')}?{query_string(probe_params())}"
    started = time.perf_counter()
    try:
        response = session.client.get(url, headers={"Accept": DICOM_JSON})
    except httpx.HTTPError as exc:
        raise transport_error(exc, session.profile, "the test query") from exc
    return response, time.perf_counter() - started


def _read_probe(session: WebSession, response: httpx.Response) -> int:
    """How many studies the probe found (0 expected); UnexpectedAnswer when it is not QIDO's JSON."""
    if response.status_code == 204 or not response.content.strip():
        return 0
    try:
        data = response.json()
    except ValueError as exc:
        raise UnexpectedAnswer("the answer to a QIDO-RS query is not JSON: is this the DICOMweb root?",
                               f"{response.headers.get('content-type', '?')}: {exc}") from exc
    if not isinstance(data, list):
        raise UnexpectedAnswer("the answer to a QIDO-RS query is not a list of studies: is this the DICOMweb root?")
    return len(data)


async def web_echo(profile: ServerProfile) -> float:
    """The echo of DICOMweb: the smallest QIDO request; its round trip in seconds (typed errors)."""
    with WebSession(profile) as session:
        response, seconds = await run_blocking(_probe, session, name="qido-echo")
        if response.status_code >= 400:
            raise status_error(response, "QIDO-RS query", profile)
        await run_blocking(_read_probe, session, response, name="qido-echo")
        return seconds


class WebConnectionTest:
    """`run()` yields each Step as soon as it is known (the interface of core.diagnostics.ConnectionTest)."""

    def __init__(self, profile: ServerProfile) -> None:
        if profile.web is None:
            raise ValueError(f"profile {profile.name!r} is not a DICOMweb profile")
        self.profile = replace(profile, retry=RetryPolicy(max_retries=0))

    async def run(self) -> AsyncIterator[Step]:
        p = self.profile
        assert p.web is not None
        step, address = await _resolution_step(p)
        yield step
        if address is None:
            yield _skipped("TCP connection", "TLS handshake", "HTTP", "QIDO-RS")
            return
        try:
            seconds = await run_blocking(_tcp_connect, address, p.port, p.timeouts.connect, name="tcp")
        except (TimeoutError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {p.timeouts.connect:g} s (a firewall may drop it)"
            elif isinstance(exc, ConnectionRefusedError):
                reason = "connection refused: nothing listens on that port"
            else:
                reason = exc.strerror or str(exc)
            yield Step("TCP connection", Outcome.FAILED, f"{address}:{p.port}: {reason}", detail=repr(exc))
            yield _skipped("TLS handshake", "HTTP", "QIDO-RS")
            return
        yield Step("TCP connection", Outcome.OK, f"connected to {address}:{p.port} in {seconds * 1000:.1f} ms",
                   seconds=seconds)

        if not p.web.https:
            yield Step("TLS handshake", Outcome.SKIPPED, "the URL is http://: no TLS (passwords and images "
                                                         "cross the network readable)")
        else:
            tls_profile = p if p.tls is not None else replace(p, tls=TLSConfiguration())
            step = await _tls_step(tls_profile, address)
            yield step
            if step.outcome is Outcome.FAILED:
                yield _skipped("HTTP", "QIDO-RS")
                return

        try:
            session = WebSession(p)
        except DICOMNetworkError as exc:
            yield Step("HTTP", Outcome.FAILED, str(exc), detail=exc.detail)
            yield _skipped("QIDO-RS")
            return
        with session:
            try:
                response, seconds = await run_blocking(_probe, session, name="qido-probe")
            except DICOMNetworkError as exc:
                yield Step("HTTP", Outcome.FAILED, str(exc), detail=exc.detail)
                yield _skipped("QIDO-RS")
                return
            server = response.headers.get("server", "")
            facts = {"status": str(response.status_code), "server": server, "url": str(response.request.url)}
            if response.status_code >= 400:
                error = status_error(response, "the test query", p)
                yield Step("HTTP", Outcome.FAILED, str(error), detail=error.detail, facts=facts)
                yield _skipped("QIDO-RS")
                return
            yield Step("HTTP", Outcome.OK, f"HTTP {response.status_code} {response.reason_phrase}"
                       + (f" from {server}" if server else "") + f" in {seconds * 1000:.1f} ms",
                       seconds=seconds, facts=facts)
            try:
                found = await run_blocking(_read_probe, session, response, name="qido-probe")
            except DICOMNetworkError as exc:
                yield Step("QIDO-RS", Outcome.FAILED, str(exc), detail=exc.detail)
                return
            yield Step("QIDO-RS", Outcome.OK if found == 0 else Outcome.WARNING,
                       "a study-level query is answered" if found == 0 else
                       f"a query for a study no server holds found {found}: the server may ignore query keys")
