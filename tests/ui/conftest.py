"""Qt tests run offscreen on qasync's loop, as the application does."""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def qloop(qapp, tmp_path, monkeypatch):
    """qasync's event loop over pytest-qt's QApplication; settings kept in a temporary place."""
    import qasync
    from PySide6.QtCore import QSettings

    monkeypatch.setenv("PACSBROWSER_CONFIG_DIR", str(tmp_path / "config"))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)


def run_until(loop, condition, timeout: float = 10.0) -> None:
    """Run the loop until `condition()` is true, at most `timeout` seconds."""

    async def wait() -> None:
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)

    loop.run_until_complete(wait())
