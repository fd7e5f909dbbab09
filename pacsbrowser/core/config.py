"""Server profiles and settings, saved as TOML in the user's config directory.

`PACSBROWSER_CONFIG_DIR` overrides the directory (tests, portable installs). The file carries a
schema version; files written by a newer version are refused rather than silently rewritten.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from .records import (
    DEFAULT_CALLING_AE,
    QueryModel,
    RetrieveMethod,
    RetryPolicy,
    ServerProfile,
    Timeouts,
    TLSConfiguration,
    validate_ae_title,
    validate_port,
)

SCHEMA_VERSION = 1
PROFILES_FILE = "profiles.toml"


class ConfigError(Exception):
    pass


def config_dir() -> Path:
    override = os.environ.get("PACSBROWSER_CONFIG_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("pacsbrowser", appauthor=False))


def profile_to_dict(profile: ServerProfile) -> dict[str, Any]:
    data = asdict(profile)
    data["retrieve_method"] = profile.retrieve_method.value
    data["query_model"] = profile.query_model.value
    if profile.tls is None:
        data.pop("tls")
    else:
        data["tls"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(profile.tls).items() if v is not None}
    if profile.move_destination is None:
        data.pop("move_destination")
    return data


def _known(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    return data


def profile_from_dict(data: dict[str, Any]) -> ServerProfile:
    data = dict(data)
    name = data.get("name", "?")
    where = f"profile {name!r}"
    try:
        if "tls" in data:
            tls = dict(_known(TLSConfiguration, data["tls"], where + " [tls]"))
            for key in ("certificate", "key", "ca_certificate"):
                if tls.get(key):
                    tls[key] = Path(tls[key])
            data["tls"] = TLSConfiguration(**tls)
        if "retry" in data:
            data["retry"] = RetryPolicy(**_known(RetryPolicy, data["retry"], where + " [retry]"))
        if "timeouts" in data:
            data["timeouts"] = Timeouts(**_known(Timeouts, data["timeouts"], where + " [timeouts]"))
        if "retrieve_method" in data:
            data["retrieve_method"] = RetrieveMethod(data["retrieve_method"])
        if "query_model" in data:
            data["query_model"] = QueryModel(data["query_model"])
        return ServerProfile(**_known(ServerProfile, data, where))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


class ProfileStore:
    """The saved server profiles, by name, in the order they were added."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / PROFILES_FILE

    def load(self) -> list[ServerProfile]:
        if not self.path.exists():
            return []
        document = _read_document(self.path)
        return [profile_from_dict(entry) for entry in document.get("profiles", [])]

    def save(self, profiles: list[ServerProfile]) -> None:
        names = [p.name for p in profiles]
        if len(set(names)) != len(names):
            raise ConfigError("profile names must be unique")
        document = {"schema_version": SCHEMA_VERSION, "profiles": [profile_to_dict(p) for p in profiles]}
        _write_atomically(self.directory, self.path, document)

    def get(self, name: str) -> ServerProfile:
        for profile in self.load():
            if profile.name == name:
                return profile
        raise ConfigError(f"no profile named {name!r} (see: pacsbrowser profile list)")

    def add(self, profile: ServerProfile, *, replace_existing: bool = False) -> None:
        profiles = self.load()
        existing = [i for i, p in enumerate(profiles) if p.name == profile.name]
        if existing and not replace_existing:
            raise ConfigError(f"a profile named {profile.name!r} exists already")
        if existing:
            profiles[existing[0]] = profile
        else:
            profiles.append(profile)
        self.save(profiles)

    def remove(self, name: str) -> None:
        profiles = self.load()
        kept = [p for p in profiles if p.name != name]
        if len(kept) == len(profiles):
            raise ConfigError(f"no profile named {name!r}")
        self.save(kept)

    def rename(self, old: str, new: str) -> None:
        profiles = self.load()
        if any(p.name == new for p in profiles):
            raise ConfigError(f"a profile named {new!r} exists already")
        self.save([replace(p, name=new) if p.name == old else p for p in profiles])


# --------------------------------------------------------------------------------------------
# Settings of this computer (settings.toml): today the listener, our own Storage SCP.

SETTINGS_FILE = "settings.toml"


@dataclass(frozen=True)
class ListenerSettings:
    """Our listener (Storage SCP) as the user set it. `host` "" listens on every interface;
    `allowed_calling_aes` empty accepts any caller; `tls` given turns DICOM TLS on (its
    `certificate` and `key` are the server's; `ca_certificate`, when given, requires callers to
    show a certificate it signed)."""

    ae_title: str = DEFAULT_CALLING_AE
    port: int = 11112
    host: str = ""
    allowed_calling_aes: tuple[str, ...] = ()
    tls: TLSConfiguration | None = None
    start_with_app: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", validate_ae_title(self.ae_title, "listener AE title"))
        validate_port(self.port, "listener port")
        object.__setattr__(self, "host", self.host.strip())
        object.__setattr__(self, "allowed_calling_aes", tuple(
            validate_ae_title(a, "allowed calling AE title") for a in self.allowed_calling_aes if a.strip()))
        if self.tls is not None and (self.tls.certificate is None or self.tls.key is None):
            raise ValueError("a TLS listener needs its certificate and private key")


def listener_to_dict(settings: ListenerSettings) -> dict[str, Any]:
    data: dict[str, Any] = {"ae_title": settings.ae_title, "port": settings.port, "host": settings.host,
                            "allowed_calling_aes": list(settings.allowed_calling_aes),
                            "start_with_app": settings.start_with_app}
    if settings.tls is not None:
        data["tls"] = {k: str(v) for k, v in (("certificate", settings.tls.certificate), ("key", settings.tls.key),
                                              ("ca_certificate", settings.tls.ca_certificate)) if v is not None}
    return data


def listener_from_dict(data: dict[str, Any]) -> ListenerSettings:
    data = dict(_known(ListenerSettings, data, "[listener]"))
    try:
        if "tls" in data:
            tls = _known(TLSConfiguration, data["tls"], "[listener.tls]")
            paths = {k: Path(tls[k]) if tls.get(k) else None for k in ("certificate", "key", "ca_certificate")}
            data["tls"] = TLSConfiguration(certificate=paths["certificate"], key=paths["key"],
                                           ca_certificate=paths["ca_certificate"])
        if "allowed_calling_aes" in data:
            data["allowed_calling_aes"] = tuple(data["allowed_calling_aes"])
        return ListenerSettings(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[listener]: {exc}") from exc


class SettingsStore:
    """settings.toml beside profiles.toml: what is not a server profile (today: the listener).
    The same schema version rule as profiles.toml; tables it does not know are kept on save."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / SETTINGS_FILE

    def _document(self) -> dict[str, Any]:
        return _read_document(self.path) if self.path.exists() else {}

    def listener(self) -> ListenerSettings:
        """The saved listener settings (the defaults, not started with the app, when none are saved)."""
        table = self._document().get("listener")
        return listener_from_dict(table) if table else ListenerSettings()

    def save_listener(self, settings: ListenerSettings) -> None:
        document = self._document()
        document["schema_version"] = SCHEMA_VERSION
        document["listener"] = listener_to_dict(settings)
        _write_atomically(self.directory, self.path, document)


def _read_document(path: Path) -> dict[str, Any]:
    """A TOML file of ours, refused (ConfigError, in words) when unreadable or written by a newer version."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    version = document.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ConfigError(f"{path} has schema version {version!r}; this pacsbrowser reads up to {SCHEMA_VERSION}")
    return document


def _write_atomically(directory: Path, path: Path, document: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".toml", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            tomli_w.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
