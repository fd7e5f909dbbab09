"""Server profiles and settings, saved as TOML in the user's config directory.

`PACSBROWSER_CONFIG_DIR` overrides the directory (tests, portable installs). The file carries a
schema version; files written by a newer version are refused rather than silently rewritten.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from . import validation
from .records import (
    DEFAULT_CALLING_AE,
    DICOMwebEndpoint,
    ProfileKind,
    QueryModel,
    RetrieveMethod,
    RetryPolicy,
    ServerProfile,
    Timeouts,
    TLSConfiguration,
    WebAuth,
    validate_ae_title,
    validate_port,
)
from .secrets import SecretStore

SCHEMA_VERSION = 1
PROFILES_FILE = "profiles.toml"


class ConfigError(Exception):
    pass


def config_dir() -> Path:
    """The folder of profiles.toml; ConfigError when PACSBROWSER_CONFIG_DIR names no usable folder."""
    try:
        override = validation.environment_directory("PACSBROWSER_CONFIG_DIR")
    except validation.InvalidInput as exc:
        raise ConfigError(str(exc)) from None
    if override is not None:
        return override
    return Path(platformdirs.user_config_dir("pacsbrowser", appauthor=False))


@dataclass
class LoadReport:
    """What `ProfileStore.load_readable` could read: the profiles, one line per problem (with the
    line of the file where it is), and where the damaged file was copied before anything rewrites it."""

    profiles: list[ServerProfile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    backup: Path | None = None


_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_TABLE_HEADER = re.compile(r"\s*\[\[\s*profiles\s*\]\]\s*(#.*)?$")


def _toml_error(exc: tomllib.TOMLDecodeError, first_line: int) -> str:
    """tomllib's message with the line counted in the whole file."""
    text = str(exc)
    found = _TOML_LINE.search(text)
    if not found:
        return f"line {first_line}: {text}"
    line = int(found.group(1)) + first_line - 1
    return f"line {line}: {_TOML_LINE.sub('', text).strip()} (column {found.group(2)})"


def _salvage(text: str) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]], list[str]]:
    """Read what can be read of a damaged file: the header, then each profile on its own (a
    `[[profiles]]` table, or one inline table per line of `profiles = [...]`, as tomli_w writes).
    Returns (header, [(line, profile dict)], problems)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _TABLE_HEADER.match(line)]
    head_end = starts[0] if starts else len(lines)
    header: dict[str, Any] = {}
    entries: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    head = lines[:head_end]
    array_at = next((i for i, line in enumerate(head) if re.match(r"\s*profiles\s*=\s*\[", line)), None)
    if array_at is not None:  # profiles = [ {..}, {..}, ]: one inline table per line
        rest = head[array_at:]
        head = head[:array_at]
        for offset, line in enumerate(rest):
            item = line.strip().rstrip(",").strip()
            if offset == 0:
                item = re.sub(r"^profiles\s*=\s*\[", "", item).strip().rstrip(",").strip()
            if item in ("", "]") or item.startswith("#"):
                continue
            item = item.removesuffix("]").strip().rstrip(",")
            try:
                entries.append((array_at + offset + 1, tomllib.loads(f"p = {item}")["p"]))
            except tomllib.TOMLDecodeError as exc:
                problems.append(_toml_error(exc, array_at + offset + 1).replace(
                    f"line {array_at + offset + 1}:", f"line {array_at + offset + 1}: profile not read:", 1))
    try:
        header = tomllib.loads("".join(head))
    except tomllib.TOMLDecodeError as exc:
        problems.append(_toml_error(exc, 1))
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        try:
            table = tomllib.loads("".join(lines[start:end]))["profiles"][0]
            entries.append((start + 1, table))
        except tomllib.TOMLDecodeError as exc:
            problems.append(_toml_error(exc, start + 1).replace(":", ": profile not read:", 1))
    return header, entries, problems


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
    data["kind"] = profile.kind.value
    if profile.web is None:
        data.pop("web")
    else:  # the password or token never: it goes to the keyring (ProfileStore.save)
        web = {k: v for k, v in asdict(profile.web).items() if k != "secret" and v is not None}
        web["auth"] = profile.web.auth.value
        if profile.web.token_file is not None:
            web["token_file"] = str(profile.web.token_file)
        data["web"] = web
    return data


def _known(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    return data


def profile_from_dict(data: dict[str, Any]) -> ServerProfile:
    if not isinstance(data, dict):
        raise ConfigError(f"a profile is a table of settings, not {validation.shown(data)}")
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
        if "kind" in data:
            data["kind"] = ProfileKind(data["kind"])
        if "web" in data:
            web = dict(_known(DICOMwebEndpoint, data["web"], where + " [web]"))
            if "secret" in web:
                raise ConfigError(f"{where} [web]: a password or token is never kept in this file; "
                                  "remove the line `secret` and save it again from the window or "
                                  "`pacsbrowser profile`")
            if web.get("token_file"):
                web["token_file"] = Path(web["token_file"])
            if "auth" in web:
                web["auth"] = WebAuth(web["auth"])
            data["web"] = DICOMwebEndpoint(**web)
        return ServerProfile(**_known(ServerProfile, data, where))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


_PLACEHOLDER = {"name": "x", "host": "h", "port": 1, "called_ae": "X"}


def _setting_line(lines: list[str], first: int, entry: dict[str, Any]) -> int:
    """The line of the first setting of a profile (read from line `first`) that is refused on its
    own; `first` when none is, or the profile is on one line."""
    culprit = None
    for key, value in entry.items():
        try:
            profile_from_dict({**_PLACEHOLDER, key: value})
        except ConfigError:
            culprit = key
            break
    if culprit is None:
        return first
    key_line = re.compile(rf"\s*(\[\s*profiles\.{re.escape(culprit)}\s*\]|{re.escape(culprit)}\s*=)")
    for number in range(first, len(lines)):  # `first` is 1-based: lines[first] is the line after it
        if _TABLE_HEADER.match(lines[number]):
            break
        if key_line.match(lines[number]):
            return number + 1
    return first


class ProfileStore:
    """The saved server profiles, by name, in the order they were added."""

    def __init__(self, directory: Path | None = None) -> None:
        self.setup_problem = ""  # PACSBROWSER_CONFIG_DIR names no usable folder: nothing loads or saves
        if directory is None:
            try:
                directory = config_dir()
            except ConfigError as exc:
                self.setup_problem = str(exc)
                directory = Path(os.environ.get("PACSBROWSER_CONFIG_DIR", ""))
        self.directory = directory
        self.path = self.directory / PROFILES_FILE

    def load(self) -> list[ServerProfile]:
        """Every profile, or ConfigError for the first thing wrong, with its line (the command
        line's way: it refuses to go on, so the file needs no backup)."""
        if self.setup_problem:
            raise ConfigError(self.setup_problem)
        report = self.load_readable(backup=False)
        if report.problems:
            more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise ConfigError(f"cannot read {self.path}: {report.problems[0]}{more}")
        return report.profiles

    def load_readable(self, *, backup: bool = True) -> LoadReport:
        """The profiles that can be read, whatever is wrong with the rest (the window's way): each
        problem in words with its line, and (`backup`) a copy of a damaged file kept beside it."""
        report = LoadReport()
        if self.setup_problem:
            report.problems.append(self.setup_problem)
        try:
            if not self.path.exists():
                return report
            raw = self.path.read_bytes()
        except OSError as exc:
            report.problems.append(f"cannot read {self.path}: {exc.strerror or exc}")
            return report
        text = raw.decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in raw:
            report.problems.append("the file is not UTF-8 text: characters that are not were replaced")
        header, entries, problems = _salvage(text)
        lines = text.splitlines()
        report.problems.extend(problems)
        version = header.get("schema_version")
        if isinstance(version, int) and version > SCHEMA_VERSION:
            report.problems.append(f"schema version {version}: this pacsbrowser reads up to {SCHEMA_VERSION}")
            entries = []
        elif version is None and not problems:
            report.problems.append("schema_version is missing")
        elif version is not None and not isinstance(version, int):
            report.problems.append(f"schema_version must be a whole number, not {version!r}")
        names: set[str] = set()
        for line, entry in entries:
            try:
                profile = profile_from_dict(entry)
            except ConfigError as exc:
                report.problems.append(f"line {_setting_line(lines, line, entry)}: {exc}")
                continue
            if profile.name in names:
                report.problems.append(f"line {line}: a second profile named {profile.name!r} was left out")
                continue
            names.add(profile.name)
            report.profiles.append(profile)
        if report.problems and raw and backup:
            report.backup = self._backup(raw)
        return report

    def _backup(self, raw: bytes) -> Path | None:
        """A copy of the file as it was (once per content), before a save rewrites it."""
        for existing in sorted(self.directory.glob("profiles.damaged-*.toml")):
            try:
                if existing.read_bytes() == raw:
                    return existing
            except OSError:
                continue
        target = self.directory / f"profiles.damaged-{time.strftime('%Y%m%d-%H%M%S')}.toml"
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"profiles.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{n}.toml")
        try:
            shutil.copyfile(self.path, target)
        except OSError:
            return None
        return target

    def save(self, profiles: list[ServerProfile]) -> None:
        if self.setup_problem:
            raise ConfigError(self.setup_problem)
        names = [p.name for p in profiles]
        if len(set(names)) != len(names):
            raise ConfigError("profile names must be unique")
        document = {"schema_version": SCHEMA_VERSION, "profiles": [profile_to_dict(p) for p in profiles]}
        self._save_secrets(profiles)
        _write_atomically(self.directory, self.path, document)

    @property
    def secrets(self) -> SecretStore:
        """Where the passwords and tokens of DICOMweb profiles are kept (core.secrets)."""
        return SecretStore(self.directory)

    def _save_secrets(self, profiles: list[ServerProfile]) -> None:
        """A DICOMweb profile's password or token given in memory goes to the keyring (or its
        fallback file); the secrets of DICOMweb profiles no longer saved are forgotten."""
        secrets = self.secrets
        for profile in profiles:
            if profile.web is not None and profile.web.secret:
                secrets.put(profile.name, profile.web.secret)
        kept = {p.name for p in profiles}
        try:
            before = self.load_readable(backup=False).profiles if self.path.exists() else []
        except Exception:  # noqa: BLE001 - an unreadable file: nothing to forget
            before = []
        for old in before:
            if old.is_web and old.name not in kept:
                secrets.delete(old.name)

    def secret_of(self, profile: ServerProfile) -> str | None:
        """The password or token of a DICOMweb profile: the one in memory, else its token file, else
        the saved one (None when there is none). ConfigError in words for an unusable token file."""
        from .secrets import read_secret_file

        web = profile.web
        if web is None:
            return None
        if web.secret:
            return web.secret
        if web.token_file is not None:
            try:
                return read_secret_file(web.token_file)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        return self.secrets.get(profile.name)

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
        self.secrets.rename(old, new)  # first: the save forgets the secrets of names no longer saved
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
                                           ca_certificate=paths["ca_certificate"],
                                           verify_peer=paths["ca_certificate"] is not None)
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
