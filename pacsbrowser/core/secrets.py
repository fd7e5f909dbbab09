"""Passwords and tokens of DICOMweb profiles, kept out of profiles.toml.

    secrets = SecretStore(config_dir())
    secrets.put("Hospital PACS", "s3cret")        # the desktop keyring, or the fallback file
    secrets.get("Hospital PACS")                  # -> "s3cret" (None when nothing is saved)
    secrets.where                                 # "the desktop keyring (SecretService)" / "the file ..."

Where there is a desktop keyring (the `keyring` package: Secret Service, KWallet, macOS Keychain,
Windows Credential Locker) the secret goes there, under the service name "pacsbrowser DICOMweb" and
the profile's name. Where there is none (a server, a container, keyring's "fail" or "null"
backend) it goes to a file of its own, `secrets/<hash of the name>.secret` beside profiles.toml,
readable by the user only (mode 0600): plain text on disk, which `where` and `fallback` say so
that the window and the command line can tell the user. `PACSBROWSER_KEYRING=off` forces the file
(tests, portable installs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SERVICE = "pacsbrowser DICOMweb"
FOLDER = "secrets"


def _keyring_backend() -> object | None:
    """keyring's backend when it is a real one, else None."""
    if os.environ.get("PACSBROWSER_KEYRING", "").lower() in ("off", "0", "no", "file"):
        return None
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - any failure to load a keyring means: no keyring here
        return None
    if isinstance(backend, fail.Keyring) or type(backend).__module__.endswith(".null"):
        return None
    try:
        if float(getattr(backend, "priority", 1)) <= 0:
            return None
    except Exception:  # noqa: BLE001 - a backend whose priority cannot be read is not to be trusted
        return None
    return backend


class SecretStore:
    """The secrets of the profiles saved in `directory` (profiles.toml's folder)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._backend = _keyring_backend()

    @property
    def fallback(self) -> bool:
        """True when secrets go to a file (no desktop keyring here)."""
        return self._backend is None

    @property
    def where(self) -> str:
        """Where secrets are kept, in words (for the window and the command line)."""
        if self._backend is None:
            return (f"a file readable only by you in {self.directory / FOLDER} "
                    "(no desktop keyring is available here)")
        return f"the desktop keyring ({type(self._backend).__name__})"

    def _file(self, name: str) -> Path:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]
        return self.directory / FOLDER / f"{digest}.secret"

    def get(self, name: str) -> str | None:
        """The secret saved for profile `name`, or None."""
        if self._backend is not None:
            try:
                value = self._backend.get_password(SERVICE, name)  # type: ignore[attr-defined]  # keyring's backend API
            except Exception as exc:  # noqa: BLE001 - a locked or broken keyring: said, then the file is tried
                log.warning("the desktop keyring could not be read: %s", exc)
            else:
                if value is not None:
                    return str(value)
        path = self._file(name)
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n") or None
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("the saved password of a profile cannot be read from %s: %s", path, exc.strerror or exc)
            return None

    def put(self, name: str, secret: str) -> str:
        """Save `secret` for profile `name`; returns where it went (in words)."""
        if self._backend is not None:
            try:
                self._backend.set_password(SERVICE, name, secret)  # type: ignore[attr-defined]  # keyring's backend API
            except Exception as exc:  # noqa: BLE001 - a keyring that refuses: fall back to the file, and say so
                log.warning("the desktop keyring refused the password (%s); keeping it in a file instead", exc)
            else:
                self._file(name).unlink(missing_ok=True)
                return self.where
        folder = self.directory / FOLDER
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=folder)  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secret + "\n")
            os.replace(tmp, self._file(name))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return f"a file readable only by you ({self._file(name)})"

    def delete(self, name: str) -> None:
        """Forget the secret of profile `name` (wherever it is)."""
        if self._backend is not None:
            try:
                self._backend.delete_password(SERVICE, name)  # type: ignore[attr-defined]  # keyring's backend API
            except Exception:  # noqa: BLE001 - nothing saved there (keyring raises PasswordDeleteError)
                pass
        self._file(name).unlink(missing_ok=True)

    def rename(self, old: str, new: str) -> None:
        secret = self.get(old)
        if secret is not None:
            self.put(new, secret)
            self.delete(old)


def read_secret_file(path: Path) -> str:
    """The one line a token file holds (ValueError in words when it cannot be used)."""
    from .validation import InvalidInput, web_secret

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"token file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"token file {path} is not UTF-8 text") from None
    try:
        return web_secret(text, f"token file {path}")
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
