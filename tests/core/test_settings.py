"""settings.toml: the listener's settings, beside the profiles, same schema version rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsbrowser.core.config import ConfigError, ListenerSettings, ProfileStore, SettingsStore
from pacsbrowser.core.records import ServerProfile, TLSConfiguration


def test_defaults_when_nothing_is_saved(tmp_path):
    settings = SettingsStore(tmp_path).listener()
    assert settings == ListenerSettings() and not settings.start_with_app and settings.port == 11112


def test_listener_settings_round_trip_and_leave_profiles_alone(tmp_path):
    ProfileStore(tmp_path).add(ServerProfile(name="PACS", host="pacs", port=104, called_ae="PACS"))
    store = SettingsStore(tmp_path)
    tls = TLSConfiguration(certificate=Path("/s.pem"), key=Path("/s.key"), ca_certificate=Path("/ca.pem"))
    settings = ListenerSettings(ae_title=" WS1 ", port=4006, host="127.0.0.1", allowed_calling_aes=("CT1", " MR2 ", ""),
                                tls=tls, start_with_app=True)
    assert settings.ae_title == "WS1" and settings.allowed_calling_aes == ("CT1", "MR2")
    store.save_listener(settings)
    assert store.listener() == settings
    assert "schema_version = 1" in store.path.read_text()
    assert [p.name for p in ProfileStore(tmp_path).load()] == ["PACS"]


def test_bad_settings_are_refused_in_words():
    with pytest.raises(ValueError, match="longer than 16"):
        ListenerSettings(ae_title="A" * 17)
    with pytest.raises(ValueError, match="port"):
        ListenerSettings(port=0)
    with pytest.raises(ValueError, match="certificate"):
        ListenerSettings(tls=TLSConfiguration(ca_certificate=Path("/ca.pem")))


@pytest.mark.parametrize(("text", "words"), [
    ("schema_version = 1\n[listener]\nport = 70000\n", "listener port"),
    ("schema_version = 1\n[listener]\ncolour = 'blue'\n", "colour"),
    ("schema_version = 99\n", "schema version"),
    ("not toml [", "cannot read"),
])
def test_bad_settings_files_are_refused_in_words(tmp_path, text, words):
    store = SettingsStore(tmp_path)
    store.path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        store.listener()
