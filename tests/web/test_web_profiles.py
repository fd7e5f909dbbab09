"""DICOMweb profiles: the record's rules, profiles.toml without the secret, the keyring and its
fallback file."""

from __future__ import annotations

import stat
from pathlib import Path

import keyring.backend
import pytest

from pacsbrowser.core import secrets as secrets_module
from pacsbrowser.core.config import ConfigError, ProfileStore, profile_from_dict, profile_to_dict
from pacsbrowser.core.records import (
    DICOMwebEndpoint,
    ProfileKind,
    RetrieveMethod,
    ServerProfile,
    TLSConfiguration,
    WebAuth,
)
from pacsbrowser.core.validation import InvalidInput


def web_profile(name: str = "web", secret: str | None = "pa ss", **endpoint) -> ServerProfile:
    settings = {"auth": WebAuth.BASIC, "username": "alice", "secret": secret, **endpoint}
    return ServerProfile.dicomweb(name, DICOMwebEndpoint("https://pacs.example.org:8443/dicom-web/", **settings))


def test_a_dicomweb_profile_takes_host_port_and_method_from_its_url():
    profile = web_profile()
    assert profile.kind is ProfileKind.DICOMWEB and profile.is_web
    assert (profile.host, profile.port) == ("pacs.example.org", 8443)
    assert profile.retrieve_method is RetrieveMethod.WADO
    assert profile.web.base_url == "https://pacs.example.org:8443/dicom-web"
    assert "pa ss" not in repr(profile)  # the secret never shows in a log line


@pytest.mark.parametrize("url, words", [
    ("ftp://x/dicom-web", "https://"),
    ("https://user:pw@x/dicom-web", "password"),
    ("https:///dicom-web", "no host"),
    ("https://x/dicom-web?a=1", "query"),
    ("", "empty"),
])
def test_bad_urls_are_refused_in_words(url, words):
    with pytest.raises(InvalidInput, match=words):
        DICOMwebEndpoint(url)


def test_rules_of_the_endpoint():
    with pytest.raises(InvalidInput, match="needs a user name"):
        DICOMwebEndpoint("https://x/dw", auth="basic")
    with pytest.raises(InvalidInput, match="authentication is none"):
        DICOMwebEndpoint("https://x/dw", secret="t")
    with pytest.raises(InvalidInput, match="https://"):
        ServerProfile.dicomweb("w", DICOMwebEndpoint("http://x/dw"), tls=TLSConfiguration())
    with pytest.raises(InvalidInput, match="WADO-RS is for DICOMweb"):
        ServerProfile("d", "h", 104, "X", retrieve_method=RetrieveMethod.WADO)
    split = DICOMwebEndpoint("https://x/dw/", qido_prefix="/qido-rs/", stow_prefix="stow")
    assert split.service_url("qido") == "https://x/dw/qido-rs"
    assert split.service_url("wado") == "https://x/dw"
    assert split.service_url("stow") == "https://x/dw/stow"
    assert DICOMwebEndpoint("http://x/dw").host_port == ("x", 80)


def test_profiles_toml_keeps_everything_but_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_KEYRING", "off")
    store = ProfileStore(tmp_path)
    profile = web_profile(qido_prefix="qido", page_size=100, fuzzy_matching=True)
    store.save([profile, ServerProfile("dimse", "h", 104, "PACS")])
    text = store.path.read_text()
    assert "pa ss" not in text and "secret" not in text
    loaded = store.get("web")
    assert loaded == profile  # the secret is not compared: it is not part of the record's identity
    assert loaded.web.secret is None
    assert store.secret_of(loaded) == "pa ss"
    assert store.get("dimse").kind is ProfileKind.DIMSE
    # the fallback file: readable by the user only, beside profiles.toml, and said so
    files = list((tmp_path / "secrets").iterdir())
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert "readable only by you" in store.secrets.where
    # renamed: the secret follows; removed: it is forgotten
    store.rename("web", "web2")
    assert store.secret_of(store.get("web2")) == "pa ss"
    store.remove("web2")
    assert not list((tmp_path / "secrets").iterdir())


def test_a_secret_written_into_the_file_by_hand_is_refused(tmp_path):
    data = profile_to_dict(web_profile())
    assert "secret" not in data["web"]
    data["web"]["secret"] = "x"
    with pytest.raises(ConfigError, match="never kept in this file"):
        profile_from_dict(data)


def test_token_file_is_read_at_connection_time(tmp_path, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_KEYRING", "off")
    token = tmp_path / "token"
    token.write_text("abc.def\n")
    profile = ServerProfile.dicomweb("t", DICOMwebEndpoint("https://x/dw", auth=WebAuth.BEARER, token_file=token))
    store = ProfileStore(tmp_path / "cfg")
    store.save([profile])
    assert "abc.def" not in store.path.read_text()
    assert store.secret_of(store.get("t")) == "abc.def"
    token.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        store.secret_of(store.get("t"))


class _MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend (keyring's own API) that keeps its entries in a dict."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        self.entries.pop((service, username), None)


def test_with_a_desktop_keyring_the_secret_goes_there(tmp_path, monkeypatch):
    monkeypatch.delenv("PACSBROWSER_KEYRING", raising=False)
    backend = _MemoryKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend, raising=False)
    import keyring as keyring_module

    monkeypatch.setattr(keyring_module, "get_keyring", lambda: backend)
    store = ProfileStore(tmp_path)
    store.save([web_profile("k", secret="tok")])
    assert backend.entries == {(secrets_module.SERVICE, "k"): "tok"}
    assert not (tmp_path / "secrets").exists() or not list((tmp_path / "secrets").iterdir())
    assert "desktop keyring" in store.secrets.where
    assert store.secret_of(store.get("k")) == "tok"
    store.save([])
    assert backend.entries == {}


def test_the_secret_store_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_KEYRING", "off")
    store = secrets_module.SecretStore(Path(tmp_path))
    assert store.fallback and store.get("x") is None
    store.put("x", "y")
    assert store.get("x") == "y"
    store.delete("x")
    assert store.get("x") is None
