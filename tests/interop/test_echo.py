"""Echo against real peers, and each failure with its own error and words (issue: Foundation)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from pacsbrowser.core.client import DICOMClient, VerificationService
from pacsbrowser.core.errors import AssociationRejected, ConnectionFailed, Timeout, TLSCause, TLSError
from pacsbrowser.core.records import NO_RETRY, Timeouts, TLSConfiguration


def echo(host, port, called_ae, tls=None, timeout=5.0) -> float:
    client = DICOMClient(host, port, called_ae=called_ae, tls=tls, retry_policy=NO_RETRY,
                         timeouts=Timeouts.uniform(timeout))

    async def run() -> float:
        async with client:
            return await VerificationService(client).verify()

    return asyncio.run(run())


def round_trip(rtt: float, what: str) -> float:
    """An echo's round trip: positive, printed, and within the 5 s timeout (no tighter: a shared machine)."""
    print(f"\necho round trip to {what}: {rtt * 1000:.1f} ms")
    assert 0 < rtt < 5.0
    return rtt


def client_tls(certs, **changes) -> TLSConfiguration:
    tls = TLSConfiguration(certificate=certs.client_cert, key=certs.client_key, ca_certificate=certs.ca_cert)
    return replace(tls, **changes)


def test_echo_orthanc(orthanc):
    round_trip(echo(orthanc.host, orthanc.port, orthanc.aet), "orthanc")


def test_echo_dcmqrscp(dcmqrscp):
    round_trip(echo(dcmqrscp.host, dcmqrscp.port, dcmqrscp.aet), "dcmqrscp")


def test_echo_tls_orthanc_with_client_certificate(orthanc_tls, certs):
    round_trip(echo(orthanc_tls.host, orthanc_tls.port, orthanc_tls.aet, tls=client_tls(certs)), "orthanc_tls")


def test_closed_port_fails_fast(unused_port):
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match="connection refused"):
        echo("127.0.0.1", unused_port, "ANY", timeout=30.0)
    elapsed = time.monotonic() - started
    print(f"\nrefused after {elapsed * 1000:.0f} ms")
    assert elapsed < 10.0  # at once, not after the 30 s timeout


def test_silent_listener_times_out_within_the_timeout(fault_scp):
    silent = fault_scp(mode="silent")
    started = time.monotonic()
    with pytest.raises(Timeout) as info:
        echo("127.0.0.1", silent.port, "ANY", timeout=1.0)
    elapsed = time.monotonic() - started
    print(f"\ntimed out after {elapsed * 1000:.0f} ms (timeout 1 s)")
    assert 0.8 < elapsed < 10.0, elapsed
    assert "association" in str(info.value)


def test_wrong_called_ae_on_dcmqrscp_is_rejected_with_reason_words(dcmqrscp):
    with pytest.raises(AssociationRejected) as info:
        echo(dcmqrscp.host, dcmqrscp.port, "NOT-THE-AE")
    error = info.value
    assert (error.result, error.source, error.reason) == (1, 1, 7)
    assert "called AE title not recognised" in str(error)


def test_tls_client_on_the_plain_port(orthanc, certs):
    with pytest.raises(TLSError) as info:
        echo(orthanc.host, orthanc.port, orthanc.aet, tls=client_tls(certs))
    assert info.value.cause is TLSCause.NOT_TLS_SERVER, info.value.detail


def test_plain_client_on_the_tls_port(orthanc_tls):
    with pytest.raises(TLSError) as info:
        echo(orthanc_tls.host, orthanc_tls.port, orthanc_tls.aet)
    assert info.value.cause is TLSCause.TLS_SERVER_PLAIN_CLIENT, info.value.detail
    assert "turn TLS on" in str(info.value)


def test_unknown_ca(orthanc_tls, certs):
    with pytest.raises(TLSError) as info:
        echo(orthanc_tls.host, orthanc_tls.port, orthanc_tls.aet, tls=client_tls(certs, ca_certificate=certs.other_ca_cert))
    assert info.value.cause is TLSCause.UNKNOWN_CA, info.value.detail


def test_hostname_mismatch(orthanc_tls, certs):
    with pytest.raises(TLSError) as info:
        echo(orthanc_tls.host, orthanc_tls.port, orthanc_tls.aet, tls=client_tls(certs, server_name="pacs.elsewhere.test"))
    assert info.value.cause is TLSCause.HOSTNAME_MISMATCH, info.value.detail


def test_no_client_certificate(orthanc_tls, certs):
    tls = TLSConfiguration(ca_certificate=certs.ca_cert)
    with pytest.raises(TLSError) as info:
        echo(orthanc_tls.host, orthanc_tls.port, orthanc_tls.aet, tls=tls)
    assert info.value.cause is TLSCause.CLIENT_CERT_REQUIRED, info.value.detail


def test_expired_server_certificate(orthanc_expired_tls, certs):
    with pytest.raises(TLSError) as info:
        echo(orthanc_expired_tls.host, orthanc_expired_tls.port, orthanc_expired_tls.aet, tls=client_tls(certs))
    assert info.value.cause is TLSCause.EXPIRED, info.value.detail


def test_unreadable_client_key_is_named(orthanc_tls, certs, tmp_path):
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(TLSError) as info:
        echo(orthanc_tls.host, orthanc_tls.port, orthanc_tls.aet, tls=client_tls(certs, key=bad))
    assert info.value.cause is TLSCause.LOCAL_FILES
    assert str(bad) in info.value.detail


def test_client_certificate_from_another_ca_is_refused(orthanc_tls, certs):
    tls = client_tls(certs, certificate=certs.other_client_cert, key=certs.other_client_key)
    with pytest.raises(TLSError) as info:
        echo(orthanc_tls.host, orthanc_tls.port, orthanc_tls.aet, tls=tls)
    assert info.value.cause is TLSCause.CLIENT_CERT_REFUSED, info.value.detail


def test_server_certificate_for_another_host(orthanc_wronghost_tls, certs):
    peer = orthanc_wronghost_tls
    with pytest.raises(TLSError) as info:
        echo(peer.host, peer.port, peer.aet, tls=client_tls(certs))
    assert info.value.cause is TLSCause.HOSTNAME_MISMATCH, info.value.detail


def test_server_certificate_not_yet_valid(orthanc_notyetvalid_tls, certs):
    peer = orthanc_notyetvalid_tls
    with pytest.raises(TLSError) as info:
        echo(peer.host, peer.port, peer.aet, tls=client_tls(certs))
    assert info.value.cause is TLSCause.NOT_YET_VALID, info.value.detail


def test_no_verify_accepts_a_bad_server_certificate(orthanc_wronghost_tls, certs):
    peer = orthanc_wronghost_tls
    assert echo(peer.host, peer.port, peer.aet, tls=client_tls(certs, verify_peer=False)) > 0
