"""HTTPS with basic authentication and with a client certificate, against Orthanc's DICOMweb; a
wrong password, an unknown CA and a wrong URL each say what is wrong in their own words."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.diagnostics import ConnectionTest, Outcome
from pacsbrowser.core.errors import ConnectionFailed, TLSCause, TLSError
from pacsbrowser.core.records import QueryKeys, TLSConfiguration, WebAuth
from pacsbrowser.core.services import query_service, verify
from pacsbrowser.core.web import AuthenticationFailed, NotFoundAtURL
from tests.lab.client import run

from .conftest import PASSWORD, USER, web_profile

pytestmark = pytest.mark.timeout(120)


def _steps(profile):
    async def collect():
        return [step async for step in ConnectionTest(profile).run()]

    return {step.name: step for step in run(collect())}


def _secure(peer, certs, **endpoint):
    endpoint.setdefault("auth", WebAuth.BASIC)
    endpoint.setdefault("username", USER)
    endpoint.setdefault("secret", PASSWORD)
    return web_profile(peer, tls=TLSConfiguration(ca_certificate=certs.ca_cert), **endpoint)


def test_https_with_basic_authentication(web_orthanc_secure, certs):
    profile = _secure(web_orthanc_secure, certs)
    seconds = run(verify(profile))
    print(f"QIDO round trip over HTTPS with basic auth: {seconds * 1000:.1f} ms")
    steps = _steps(profile)
    assert [s.outcome for s in steps.values()] == [Outcome.OK] * 5, steps
    assert list(steps) == ["Name resolution", "TCP connection", "TLS handshake", "HTTP", "QIDO-RS"]
    assert "TLSv1" in steps["TLS handshake"].summary and steps["TLS handshake"].facts["sha256"]
    assert run(query_service(profile).find(QueryKeys.studies()).collect()) == []


def test_the_password_saved_in_the_keyring_or_its_fallback_is_used(web_orthanc_secure, certs):
    store = ProfileStore()
    store.save([_secure(web_orthanc_secure, certs)])
    loaded = store.get("lab dicomweb")
    assert loaded.web.secret is None and PASSWORD not in store.path.read_text()
    assert run(verify(loaded)) > 0


def test_a_wrong_password(web_orthanc_secure, certs):
    profile = _secure(web_orthanc_secure, certs, secret="wrong")
    with pytest.raises(AuthenticationFailed) as caught:
        run(verify(profile))
    message = str(caught.value)
    print(message)
    assert "401" in message and f"did not accept user {USER!r} with this password" in message
    step = _steps(profile)["HTTP"]
    assert step.outcome is Outcome.FAILED and "with this password" in step.summary
    no_auth = _secure(web_orthanc_secure, certs, auth=WebAuth.NONE, username="", secret=None)
    with pytest.raises(AuthenticationFailed, match="asks for a user and password"):
        run(verify(no_auth))


def test_an_unknown_ca(web_orthanc_secure, certs):
    profile = replace(_secure(web_orthanc_secure, certs), tls=TLSConfiguration(ca_certificate=certs.other_ca_cert))
    with pytest.raises(TLSError) as caught:
        run(verify(profile))
    print(caught.value)
    assert caught.value.cause is TLSCause.UNKNOWN_CA
    assert "signed by an authority we do not trust" in str(caught.value)
    step = _steps(profile)["TLS handshake"]
    assert step.outcome is Outcome.FAILED and step.summary == TLSCause.UNKNOWN_CA.value
    assert step.facts["issuer"], "the certificate is shown all the same"


def test_a_wrong_url(web_orthanc_secure, certs):
    wrong_root = web_orthanc_secure.url.replace("/dicom-web", "/dicomweb")
    profile = _secure(web_orthanc_secure, certs, url=wrong_root)
    with pytest.raises(NotFoundAtURL) as caught:
        run(verify(profile))
    print(caught.value)
    assert "404" in str(caught.value) and "check the DICOMweb root" in str(caught.value)
    assert _steps(profile)["HTTP"].outcome is Outcome.FAILED
    nothing_there = _secure(web_orthanc_secure, certs, url="https://127.0.0.1:9/dicom-web")
    with pytest.raises(ConnectionFailed, match="connection refused"):
        run(verify(nothing_there))
    plain = web_profile(web_orthanc_secure, url=web_orthanc_secure.url.replace("https:", "http:"),
                        auth=WebAuth.BASIC, username=USER, secret=PASSWORD)
    with pytest.raises(ConnectionFailed, match="closed the connection"):
        run(verify(plain))


def test_the_three_mistakes_read_differently(web_orthanc_secure, certs):
    messages = set()
    for profile in (_secure(web_orthanc_secure, certs, secret="wrong"),
                    replace(_secure(web_orthanc_secure, certs), tls=TLSConfiguration(ca_certificate=certs.other_ca_cert)),
                    _secure(web_orthanc_secure, certs, url=web_orthanc_secure.url + "-wrong")):
        with pytest.raises(Exception) as caught:
            run(verify(profile))
        messages.add(str(caught.value).split(":")[-1])
    assert len(messages) == 3


def test_https_with_a_client_certificate(web_orthanc_mtls, certs):
    tls = TLSConfiguration(ca_certificate=certs.ca_cert, certificate=certs.client_cert, key=certs.client_key)
    profile = web_profile(web_orthanc_mtls, tls=tls)
    assert run(verify(profile)) > 0
    steps = _steps(profile)
    assert all(s.outcome is Outcome.OK for s in steps.values()), steps
    without = web_profile(web_orthanc_mtls, tls=TLSConfiguration(ca_certificate=certs.ca_cert))
    with pytest.raises(TLSError) as caught:
        run(verify(without))
    print(caught.value)
    assert caught.value.cause is TLSCause.CLIENT_CERT_REQUIRED
    stranger = web_profile(web_orthanc_mtls, tls=TLSConfiguration(
        ca_certificate=certs.ca_cert, certificate=certs.other_client_cert, key=certs.other_client_key))
    with pytest.raises(TLSError) as caught:
        run(verify(stranger))
    assert caught.value.cause is TLSCause.CLIENT_CERT_REFUSED


def test_send_and_retrieve_over_https_with_basic_auth(web_orthanc_secure, certs, lab_data, archive):
    """STOW-RS then WADO-RS through TLS and basic authentication, the study then removed again."""
    from pacsbrowser.core.services import retrieve_service, store_service

    profile = _secure(web_orthanc_secure, certs)
    study = lab_data.studies_of("LAB0004")[0]
    files = [i.path for i in lab_data.instances_of_study(study.uid)]
    try:
        sent = run(store_service(profile).store(files))
        assert sent.complete and len(sent.stored) == len(files)
        got = run(retrieve_service(profile, archive).get_study(study.uid).wait())
        assert got.complete and got.received == len(files)
        assert {row.sop_instance_uid for row in archive.instances(study_uid=study.uid)} == {
            i.sop_instance_uid for i in lab_data.instances_of_study(study.uid)}
    finally:
        web_orthanc_secure.delete_uid(study.uid)
