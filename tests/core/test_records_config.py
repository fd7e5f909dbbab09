from __future__ import annotations

from pathlib import Path

import pytest

from pacsbrowser.core.config import ConfigError, ProfileStore
from pacsbrowser.core.errors import AssociationRejected, DIMSEError
from pacsbrowser.core.records import (
    RetrieveMethod,
    RetryPolicy,
    ServerProfile,
    Timeouts,
    TLSConfiguration,
    validate_ae_title,
)


def test_ae_titles_are_checked():
    assert validate_ae_title("  ORTHANC ") == "ORTHANC"
    for bad in ("", "A" * 17, "BACK\\SLASH", "TAB\tX"):
        with pytest.raises(ValueError):
            validate_ae_title(bad)


def test_profile_validation():
    with pytest.raises(ValueError):
        ServerProfile(name="x", host="h", port=0, called_ae="A")
    with pytest.raises(ValueError):
        ServerProfile(name="x", host="h", port=104, called_ae="THIS-IS-TOO-LONG-AE")
    with pytest.raises(ValueError):
        TLSConfiguration(certificate=Path("c.pem"))  # a certificate without its key


def test_profiles_round_trip_through_toml(tmp_path):
    store = ProfileStore(tmp_path)
    tls = TLSConfiguration(certificate=Path("/c.pem"), key=Path("/k.pem"), ca_certificate=Path("/ca.pem"),
                           server_name="pacs.example")
    profile = ServerProfile(name="Radiology PACS", host="pacs", port=11112, called_ae="RADPACS", tls=tls,
                            retry=RetryPolicy(max_retries=4), timeouts=Timeouts.uniform(5),
                            retrieve_method=RetrieveMethod.MOVE, move_destination="WS1", query_charset="ISO_IR 100")
    plain = ServerProfile(name="Local", host="127.0.0.1", port=4242, called_ae="ORTHANC")
    store.add(profile)
    store.add(plain)
    assert store.load() == [profile, plain]
    text = store.path.read_text()
    assert "schema_version = 1" in text
    with pytest.raises(ConfigError):
        store.add(plain)
    store.remove("Radiology PACS")
    assert store.load() == [plain]


def test_newer_schema_and_bad_files_are_refused_clearly(tmp_path):
    store = ProfileStore(tmp_path)
    store.path.write_text("schema_version = 99\n")
    with pytest.raises(ConfigError, match="schema version"):
        store.load()
    store.path.write_text("this is not toml [")
    with pytest.raises(ConfigError, match="cannot read"):
        store.load()
    store.path.write_text('schema_version = 1\n[[profiles]]\nname="a"\nhost="h"\nport=1\ncalled_ae="X"\ncolour="red"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        store.load()


def test_error_words():
    rejected = AssociationRejected(2, 3, 1)
    assert rejected.transient
    assert "temporary congestion" in str(rejected)
    assert "source=3" in rejected.detail
    moved = DIMSEError(0xA801, "C-MOVE")
    assert "Move destination unknown" in str(moved) and "0xA801" in str(moved)
    assert "0xC123" in str(DIMSEError(0xC123, "C-FIND"))
