"""Server profiles: where a PACS is and how to talk to it (TLS, retries, timeouts), with the
checks every field must pass."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from .. import validation

DEFAULT_CALLING_AE = "PACSBROWSER"
DEFAULT_MAX_PDU = 262_144  # bytes; large PDUs keep bulk transfers fast


def validate_ae_title(value: str, what: str = "AE title") -> str:
    """The AE title stripped of surrounding spaces, or InvalidInput (a ValueError) saying why."""
    return validation.ae_title(value, what)


def validate_port(value: int, what: str = "port") -> int:
    """The port, or InvalidInput (a ValueError) saying why."""
    return validation.port(value, what)


@dataclass(frozen=True)
class TLSConfiguration:
    """How to secure a connection. Paths are PEM files.

    `certificate` and `key` are our own (client) certificate, needed when the server asks for one;
    `ca_certificate` is what we trust for the server's certificate (the system's trust store when
    None); `server_name` is the name checked against the server certificate (the profile's host
    when None).
    """

    certificate: Path | None = None
    key: Path | None = None
    ca_certificate: Path | None = None
    verify_peer: bool = True
    minimum_version: str = "TLSv1.2"
    server_name: str | None = None

    def __post_init__(self) -> None:
        if self.minimum_version not in ("TLSv1.2", "TLSv1.3"):
            raise ValueError(f"minimum TLS version must be TLSv1.2 or TLSv1.3, not {self.minimum_version!r}")
        if (self.certificate is None) != (self.key is None):
            raise ValueError("a client certificate needs its private key, and a key its certificate")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of association establishment, with exponential backoff capped at `max_delay`.

    Attempt n (n = 1 for the first retry) waits min(max_delay, initial_delay * multiplier**(n-1)),
    then a random share of up to `jitter` of that delay is added or taken away.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_retries", validation.retries(self.max_retries, "retries"))
        for name in ("initial_delay", "max_delay", "multiplier", "jitter"):
            validation.real_number(getattr(self, name), f"retry {name.replace('_', ' ')}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")
        if self.multiplier < 1:
            raise ValueError("the retry multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a share of the delay, from 0 to 1")

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if retry < 1:
            raise ValueError("retries are numbered from 1")
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        if self.jitter and base:
            spread = base * self.jitter
            base += (rng or random).uniform(-spread, spread)
        return max(0.0, min(base, self.max_delay))

    def delays(self, rng: random.Random | None = None) -> list[float]:
        return [self.delay(n, rng) for n in range(1, self.max_retries + 1)]


NO_RETRY = RetryPolicy(max_retries=0)


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `connect`: TCP connect and TLS handshake; `acse`: waiting for the association
    answer and release; `dimse`: waiting for each DIMSE message; `network`: idle connection."""

    connect: float = 10.0
    acse: float = 30.0
    dimse: float = 60.0
    network: float = 120.0

    def __post_init__(self) -> None:
        for name in ("connect", "acse", "dimse", "network"):
            object.__setattr__(self, name, validation.timeout(getattr(self, name), f"{name} timeout"))

    @classmethod
    def uniform(cls, seconds: float) -> "Timeouts":
        return cls(connect=seconds, acse=seconds, dimse=seconds, network=max(seconds, 60.0))


class RetrieveMethod(str, Enum):
    GET = "C-GET"
    MOVE = "C-MOVE"
    WADO = "WADO-RS"  # a DICOMweb profile's only way (DICOMweb has no C-MOVE)


class ProfileKind(str, Enum):
    """How we talk to the server: DICOM's own network protocol, or DICOMweb over HTTP(S)."""

    DIMSE = "dimse"
    DICOMWEB = "dicomweb"


class WebAuth(str, Enum):
    NONE = "none"
    BASIC = "basic"  # HTTP basic: `username` and a password
    BEARER = "bearer"  # Authorization: Bearer <token>


DICOMWEB_CALLED_AE = "DICOMWEB"  # what a DICOMweb profile carries in the DIMSE-only called_ae field


@dataclass(frozen=True)
class DICOMwebEndpoint:
    """Where a DICOMweb server is and how to authenticate.

    `base_url` is the DICOMweb root (e.g. https://pacs.example.org/dicom-web); `qido_prefix`,
    `wado_prefix` and `stow_prefix` are path segments appended to it for servers that split the
    services (e.g. "qido-rs"), "" when they share the root. `auth`: none, HTTP basic (`username`
    and a password) or a bearer token.

    The password or token is never written to profiles.toml. It comes, in this order, from
    `secret` (in memory only: what a dialog or the command line just gave; ProfileStore.save puts
    it in the desktop keyring, or in a file only the user can read where there is no keyring; see
    core.secrets), from `token_file` (a file the user keeps, read at each connection), or from that
    keyring entry saved earlier. `page_size`: results asked for per QIDO request (limit/offset
    paging). `fuzzy_matching`: ask the server for fuzzy person-name matching where it offers it.
    TLS (CA file, client certificate and key, verification) is the profile's `tls`, used when the
    URL is https://.
    """

    base_url: str
    qido_prefix: str = ""
    wado_prefix: str = ""
    stow_prefix: str = ""
    auth: WebAuth = WebAuth.NONE
    username: str = ""
    token_file: Path | None = None
    secret: str | None = field(default=None, repr=False, compare=False)
    page_size: int = 500
    fuzzy_matching: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", validation.web_url(self.base_url, "DICOMweb URL"))
        for name in ("qido_prefix", "wado_prefix", "stow_prefix"):
            object.__setattr__(self, name, validation.url_prefix(getattr(self, name), name.replace("_", " ")))
        object.__setattr__(self, "auth", WebAuth(validation.web_auth(getattr(self.auth, "value", self.auth))))
        object.__setattr__(self, "username", validation.web_user(self.username, "user"))
        if self.token_file is not None:
            object.__setattr__(self, "token_file", Path(self.token_file))
        if self.secret is not None:
            object.__setattr__(self, "secret", validation.web_secret(self.secret))
        object.__setattr__(self, "page_size", validation.count(self.page_size, "QIDO page size", 1, 100_000))
        if self.auth is WebAuth.BASIC and not self.username:
            raise validation.InvalidInput("user", "HTTP basic authentication needs a user name")
        if self.auth is WebAuth.NONE and (self.secret or self.token_file):
            raise validation.InvalidInput("authentication", "a password or token is given but authentication "
                                                            "is none: choose basic or bearer")

    @property
    def https(self) -> bool:
        return self.base_url.lower().startswith("https://")

    def service_url(self, service: str) -> str:
        """The root of one service: "qido", "wado" or "stow"."""
        prefix = {"qido": self.qido_prefix, "wado": self.wado_prefix, "stow": self.stow_prefix}[service]
        return f"{self.base_url}/{prefix}" if prefix else self.base_url

    @property
    def host_port(self) -> tuple[str, int]:
        """The host and port the URL names (443 or 80 when it names none)."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.base_url)
        return parts.hostname or "", parts.port or (443 if self.https else 80)


class QueryModel(str, Enum):
    PATIENT_ROOT = "patient"
    STUDY_ROOT = "study"


@dataclass(frozen=True)
class ServerProfile:
    """A PACS (or any DICOM peer) and how we talk to it."""

    name: str
    host: str
    port: int
    called_ae: str
    calling_ae: str = DEFAULT_CALLING_AE
    tls: TLSConfiguration | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_pdu: int = DEFAULT_MAX_PDU
    retrieve_method: RetrieveMethod = RetrieveMethod.GET
    move_destination: str | None = None
    listener_port: int = 11112
    query_model: QueryModel = QueryModel.STUDY_ROOT
    query_charset: str = "ISO_IR 192"
    fallback_charset: str = "ISO_IR 100"
    kind: ProfileKind = ProfileKind.DIMSE
    web: DICOMwebEndpoint | None = None  # the DICOMweb endpoint, for kind DICOMWEB (and only then)

    @classmethod
    def dicomweb(cls, name: str, endpoint: DICOMwebEndpoint, **settings: Any) -> "ServerProfile":
        """A DICOMweb profile: host and port come from the URL; `settings` as for any profile
        (tls, timeouts, retry...)."""
        host, port = endpoint.host_port
        return cls(name=name, host=host, port=port, called_ae=DICOMWEB_CALLED_AE,
                   kind=ProfileKind.DICOMWEB, web=endpoint, retrieve_method=RetrieveMethod.WADO, **settings)

    @property
    def is_web(self) -> bool:
        return self.kind is ProfileKind.DICOMWEB

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ProfileKind(self.kind))
        if self.kind is ProfileKind.DICOMWEB:
            if self.web is None:
                raise validation.InvalidInput("profile", "a DICOMweb profile needs its URL")
            host, port = self.web.host_port  # the URL decides: host and port only mirror it
            object.__setattr__(self, "host", host)
            object.__setattr__(self, "port", port)
            object.__setattr__(self, "retrieve_method", RetrieveMethod.WADO)
            if self.tls is not None and not self.web.https:
                raise validation.InvalidInput("DICOMweb URL", "TLS settings need an https:// URL")
        elif self.web is not None:
            raise validation.InvalidInput("profile", "a DIMSE profile has no DICOMweb URL (kind is dimse)")
        elif RetrieveMethod(self.retrieve_method) is RetrieveMethod.WADO:
            raise validation.InvalidInput("retrieve method", "WADO-RS is for DICOMweb profiles; use C-GET or C-MOVE")
        object.__setattr__(self, "name", validation.name(self.name, "profile name"))
        object.__setattr__(self, "host", validation.host(self.host, "host"))
        object.__setattr__(self, "port", validate_port(self.port))
        object.__setattr__(self, "listener_port", validate_port(self.listener_port, "listener port"))
        object.__setattr__(self, "retrieve_method", RetrieveMethod(self.retrieve_method))
        object.__setattr__(self, "query_model", QueryModel(self.query_model))
        object.__setattr__(self, "called_ae", validate_ae_title(self.called_ae, "called AE title"))
        object.__setattr__(self, "calling_ae", validate_ae_title(self.calling_ae, "calling AE title"))
        if self.move_destination is not None:
            object.__setattr__(
                self, "move_destination", validate_ae_title(self.move_destination, "move destination AE title")
            )
        object.__setattr__(self, "max_pdu",
                           validation.whole_number(self.max_pdu, "maximum PDU size (0: unlimited)", 0, 2**32 - 1))
        object.__setattr__(self, "query_charset", validation.charset(self.query_charset, "query character set"))
        object.__setattr__(self, "fallback_charset",
                           validation.charset(self.fallback_charset, "fallback character set"))
