"""The DICOMweb tests' own set-up: profiles and secrets in a folder of each test's own. The peers
(Orthanc with its DICOMweb plugin) are fixtures of tests/lab/web_fixtures.py, shared with tests/ui."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lab.web_fixtures import PASSWORD, USER, web_profile

__all__ = ["PASSWORD", "USER", "web_profile"]


@pytest.fixture(autouse=True)
def _config_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Profiles and secrets of these tests in a folder of their own, secrets in the fallback file."""
    monkeypatch.setenv("PACSBROWSER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PACSBROWSER_KEYRING", "off")
