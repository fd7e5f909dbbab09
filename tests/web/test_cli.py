"""`pacsbrowser echo|find|get|store` with --url (DICOMweb) and the TLS and authentication flags;
`move` says DICOMweb has no C-MOVE."""

from __future__ import annotations

import json
import shutil

import pytest

from pacsbrowser.cli import main
from pacsbrowser.core.archive import Archive
from pacsbrowser.core.config import ProfileStore
from pacsbrowser.core.records import DICOMwebEndpoint, ServerProfile, TLSConfiguration, WebAuth

from .conftest import PASSWORD, USER

pytestmark = pytest.mark.timeout(180)


def test_echo_and_find_with_url(capsys, web_orthanc, lab_data):
    assert main(["echo", "--url", web_orthanc.url, "--count", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"QIDO-RS echo to {web_orthanc.url} succeeded: round trip") and "best of 3" in out
    assert main(["find", "--url", web_orthanc.url, "--level", "study", "--patient-name", "smith", "--json"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["PatientID"] for r in rows} == {"LAB0001", "LAB0002"} and "5 studies" in err
    assert main(["find", "--url", web_orthanc.url, "--level", "patient", "--patient-name", "山田", "--verbose"]) == 0
    out, err = capsys.readouterr()
    assert "Yamada" in out and "1 patient" in out and "(QIDO-RS)" in err


def test_get_with_url_then_nothing_more(capsys, web_orthanc, lab_data, workdir):
    study = lab_data.studies_of("LAB0004")[0]
    argv = ["get", "--url", web_orthanc.url, "--study-uid", study.uid, "--out", str(workdir / "arc")]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert f"WADO-RS from {web_orthanc.url}" in err and f"WADO-RS: {study.instance_count} instances" in out
    assert main(argv) == 0
    assert "WADO-RS: 0 instances, 0 bytes" in capsys.readouterr().out
    with Archive(workdir / "arc") as archive:
        assert len(archive.instances(study_uid=study.uid)) == study.instance_count


def test_move_with_url_says_there_is_no_c_move(capsys, web_orthanc, workdir):
    status = main(["move", "--url", web_orthanc.url, "--study-uid", "1.2.3", "--out", str(workdir / "arc")])
    err = capsys.readouterr().err
    assert status == 1 and "DICOMweb has no C-MOVE" in err and "pacsbrowser get" in err


def test_store_with_url(capsys, fresh_web_orthanc, lab_data, workdir):
    folder = workdir / "send"
    folder.mkdir()
    for n, instance in enumerate(lab_data.instances[:5]):
        shutil.copy(instance.path, folder / f"{n}.dcm")
    assert main(["store", "--url", fresh_web_orthanc.url, str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Stored 5 of 5 files" in out and "STOW-RS request" in out
    assert fresh_web_orthanc.instance_count() == 5


def test_https_basic_auth_flags_and_a_saved_profile(capsys, web_orthanc_secure, certs, workdir):
    token = workdir / "password"
    token.write_text(PASSWORD + "\n")
    flags = ["--url", web_orthanc_secure.url, "--auth", "basic", "--user", USER, "--tls-ca", str(certs.ca_cert)]
    assert main(["echo", *flags, "--token-file", str(token)]) == 0
    capsys.readouterr()
    token.write_text("wrong\n")
    assert main(["echo", *flags, "--token-file", str(token)]) == 5
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "with this password" in err and "wrong" not in err
    # a saved DICOMweb profile: the password from the keyring (here its fallback file)
    ProfileStore().save([ServerProfile.dicomweb("secure", DICOMwebEndpoint(
        web_orthanc_secure.url, auth=WebAuth.BASIC, username=USER, secret=PASSWORD),
        tls=TLSConfiguration(ca_certificate=certs.ca_cert))])
    assert main(["echo", "--profile", "secure"]) == 0
    capsys.readouterr()
    assert main(["echo", "--profile", "secure", "--host", "127.0.0.1"]) == 1
    assert "DICOMweb profile" in capsys.readouterr().err


def test_unknown_ca_and_a_client_certificate(capsys, web_orthanc_mtls, certs):
    status = main(["echo", "--url", web_orthanc_mtls.url, "--tls-ca", str(certs.other_ca_cert)])
    assert status == 6 and "authority we do not trust" in capsys.readouterr().err
    assert main(["echo", "--url", web_orthanc_mtls.url, "--tls-ca", str(certs.ca_cert), "--tls-cert",
                 str(certs.client_cert), "--tls-key", str(certs.client_key)]) == 0


@pytest.mark.parametrize("argv, words", [
    (["echo", "--url", "https://127.0.0.1:9/dw", "--host", "127.0.0.1"], "--url (DICOMweb) and --host (DIMSE)"),
    (["echo", "--url", "http://127.0.0.1:9/dw", "--tls-ca", "{ca}"], "need an https:// DICOMweb URL"),
    (["echo", "--url", "https://127.0.0.1:9/dw", "--auth", "basic"], "HTTP basic authentication needs a user"),
    (["echo", "--user", "x"], "give --url or a DICOMweb --profile"),
])
def test_bad_combinations(capsys, argv, words, certs, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_WEB_SECRET", "s")
    status = main([a.replace("{ca}", str(certs.ca_cert)) for a in argv])
    err = capsys.readouterr().err
    assert status == 1 and words in err, err


def test_profile_add_a_dicomweb_profile(capsys, web_orthanc_secure, certs, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_WEB_SECRET", PASSWORD)
    assert main(["profile", "add", "web", "--url", web_orthanc_secure.url, "--user", USER,
                 "--tls-ca", str(certs.ca_cert)]) == 0
    out = capsys.readouterr().out
    assert "saved DICOMweb profile 'web'" in out and "kept in a file readable only by you" in out
    monkeypatch.delenv("PACSBROWSER_WEB_SECRET")
    assert PASSWORD not in ProfileStore().path.read_text()
    assert main(["profile", "list"]) == 0
    assert f"web\t{web_orthanc_secure.url}\tWADO-RS" in capsys.readouterr().out
    assert main(["echo", "--profile", "web"]) == 0
    assert main(["profile", "add", "x", "--url", web_orthanc_secure.url, "--port", "104"]) == 1
    assert "do not go together" in capsys.readouterr().err
