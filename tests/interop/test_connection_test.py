"""The profile's step-by-step connection test against real peers."""

from __future__ import annotations

import asyncio

from pacsbrowser.core.diagnostics import ConnectionTest, Outcome
from pacsbrowser.core.records import RetrieveMethod, ServerProfile, Timeouts, TLSConfiguration


def run(profile: ServerProfile):
    async def collect():
        return [step async for step in ConnectionTest(profile).run()]

    return {step.name: step for step in asyncio.run(collect())}


def test_every_step_passes_on_plain_orthanc_with_move_reminder(orthanc, move_port):
    profile = ServerProfile(name="lab", host="127.0.0.1", port=orthanc.port, called_ae=orthanc.aet,
                            retrieve_method=RetrieveMethod.MOVE, listener_port=move_port)
    steps = run(profile)
    assert [s.outcome for s in steps.values()] == [Outcome.OK, Outcome.OK, Outcome.SKIPPED, Outcome.OK, Outcome.OK,
                                                   Outcome.OK, Outcome.INFO]
    assert "TLS is off" in steps["TLS handshake"].summary
    assert f"127.0.0.1:{move_port}" in steps["C-MOVE set-up"].summary
    assert "PACSBROWSER" in steps["C-MOVE set-up"].summary


def test_tls_step_shows_the_server_certificate(orthanc_tls, certs):
    tls = TLSConfiguration(certificate=certs.client_cert, key=certs.client_key, ca_certificate=certs.ca_cert)
    profile = ServerProfile(name="tls", host="127.0.0.1", port=orthanc_tls.port, called_ae=orthanc_tls.aet, tls=tls)
    steps = run(profile)
    handshake = steps["TLS handshake"]
    assert handshake.outcome is Outcome.OK
    assert handshake.facts["protocol"].startswith("TLSv1.")
    assert "localhost" in handshake.facts["subject"]
    assert handshake.facts["issuer"] != handshake.facts["subject"]
    assert len(handshake.facts["sha256"].split(":")) == 32
    assert handshake.facts["valid_until"]
    assert steps["C-ECHO"].outcome is Outcome.OK and steps["C-FIND"].outcome is Outcome.OK


def test_expired_certificate_fails_the_tls_step_and_still_shows_it(orthanc_expired_tls, certs):
    tls = TLSConfiguration(certificate=certs.client_cert, key=certs.client_key, ca_certificate=certs.ca_cert)
    profile = ServerProfile(name="old", host="127.0.0.1", port=orthanc_expired_tls.port,
                            called_ae=orthanc_expired_tls.aet, tls=tls)
    steps = run(profile)
    handshake = steps["TLS handshake"]
    assert handshake.outcome is Outcome.FAILED
    assert "expired" in handshake.summary
    assert "2021" in handshake.facts["valid_until"]
    assert "Association" not in steps  # skipped, reported as one skipped step
    assert any(s.outcome is Outcome.SKIPPED and "Association" in name for name, s in steps.items())


def test_rejected_association_is_its_own_failing_step(dcmqrscp):
    profile = ServerProfile(name="wrong", host="127.0.0.1", port=dcmqrscp.port, called_ae="WRONGAE")
    steps = run(profile)
    assert steps["TCP connection"].outcome is Outcome.OK
    assert steps["Association"].outcome is Outcome.FAILED
    assert "called AE title not recognised" in steps["Association"].summary


def test_closed_port_fails_at_tcp(unused_port):
    profile = ServerProfile(name="closed", host="127.0.0.1", port=unused_port, called_ae="X",
                            timeouts=Timeouts.uniform(2))
    steps = run(profile)
    assert steps["TCP connection"].outcome is Outcome.FAILED
    assert "refused" in steps["TCP connection"].summary


def test_dcmqrscp_passes_echo_and_find(dcmqrscp):
    profile = ServerProfile(name="dcmtk", host="127.0.0.1", port=dcmqrscp.port, called_ae=dcmqrscp.aet)
    steps = run(profile)
    assert steps["C-ECHO"].outcome is Outcome.OK
    assert steps["C-FIND"].outcome is Outcome.OK, steps["C-FIND"].summary
