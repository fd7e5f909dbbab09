"""Saved profiles and their connection test, for the window."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from PySide6.QtCore import QObject, Signal

from ...core.config import ConfigError, ProfileStore
from ...core.diagnostics import ConnectionTest, Outcome, Step
from ...core.records import ServerProfile, WebAuth

log = logging.getLogger(__name__)


class ProfileController(QObject):
    profiles_changed = Signal(list)  # list[ServerProfile]
    error = Signal(str, str)  # message, detail
    test_started = Signal(str)  # profile name
    test_step = Signal(object)  # Step
    test_finished = Signal(str, bool)  # profile name, every step passed

    def __init__(self, store: ProfileStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._profiles: list[ServerProfile] = []
        self._test: asyncio.Task | None = None

    @property
    def profiles(self) -> list[ServerProfile]:
        return list(self._profiles)

    def names(self) -> set[str]:
        return {p.name for p in self._profiles}

    def reload(self) -> None:
        """The profiles that can be read; what could not is said once (with the file's line and
        where the damaged file was copied), and the window starts with the rest."""
        report = self.store.load_readable()
        self._profiles = report.profiles
        if report.problems:
            detail = [f"{self.store.path}:", *(f"  {problem}" for problem in report.problems)]
            if report.backup is not None:
                detail.append(f"A copy of the file as it was is kept in {report.backup}.")
            readable = f"the {len(report.profiles)} that could" if report.profiles else "none"
            self.error.emit(f"Some saved server profiles could not be read; started with {readable} "
                            f"({report.problems[0]})", "\n".join(detail))
        self.profiles_changed.emit(self.profiles)

    def _save(self, profiles: list[ServerProfile]) -> bool:
        try:
            self.store.save(profiles)
        except (ConfigError, OSError) as exc:
            self.error.emit("The server profiles could not be saved", str(exc))
            return False
        self._profiles = profiles
        self.profiles_changed.emit(self.profiles)
        return True

    def add(self, profile: ServerProfile) -> bool:
        return self._save([*self._profiles, profile])

    def replace(self, old_name: str, profile: ServerProfile) -> bool:
        if profile.name != old_name:  # renamed: the saved password or token follows it
            profile = self.with_saved_secret(profile, old_name)
        return self._save([profile if p.name == old_name else p for p in self._profiles])

    def remove(self, name: str) -> bool:
        return self._save([p for p in self._profiles if p.name != name])

    def duplicate_name(self, name: str) -> str:
        taken = self.names()
        candidate, n = f"{name} (copy)", 2
        while candidate in taken:
            candidate, n = f"{name} (copy {n})", n + 1
        return candidate

    # -- DICOMweb passwords and tokens (kept by the store: desktop keyring, or a file of the user's) -------
    def secrets_where(self) -> tuple[str, bool]:
        """Where a typed password or token is kept, in words, and whether that is a plain file
        (no desktop keyring here)."""
        secrets = self.store.secrets
        return secrets.where, secrets.fallback

    def has_saved_secret(self, profile: ServerProfile | None) -> bool:
        return self._saved_secret(profile.name) is not None if profile is not None and profile.is_web else False

    def _saved_secret(self, name: str) -> str | None:
        try:
            return self.store.secrets.get(name)
        except Exception as exc:  # noqa: BLE001 - a broken keyring: the dialog asks for the secret again
            log.warning("the saved password or token of a profile cannot be read: %s", exc)
            return None

    def with_saved_secret(self, profile: ServerProfile, saved_under: str) -> ServerProfile:
        """`profile` carrying the secret saved under another name (a copy or a rename keeps it),
        unless it has one of its own in memory."""
        web = profile.web
        if web is None or web.secret or web.auth is WebAuth.NONE:
            return profile
        secret = self._saved_secret(saved_under)
        return replace(profile, web=replace(web, secret=secret)) if secret else profile

    # -- connection test -------------------------------------------------------------------------
    @property
    def testing(self) -> bool:
        return self._test is not None and not self._test.done()

    def test(self, profile: ServerProfile) -> asyncio.Task:
        self.cancel_test()
        self._test = asyncio.ensure_future(self._run_test(profile))
        return self._test

    def cancel_test(self) -> None:
        if self.testing:
            self._test.cancel()

    async def _run_test(self, profile: ServerProfile) -> None:
        self.test_started.emit(profile.name)
        passed = True
        try:
            async for step in ConnectionTest(profile).run():
                if step.outcome is Outcome.FAILED:
                    passed = False
                self.test_step.emit(step)
        except asyncio.CancelledError:
            self.test_step.emit(Step("Test", Outcome.SKIPPED, "cancelled"))
            passed = False
            raise
        finally:
            self.test_finished.emit(profile.name, passed)

    async def shutdown(self) -> None:
        self.cancel_test()
