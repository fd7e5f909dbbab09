"""Server profiles: where a PACS is and how to talk to it (TLS, retries, timeouts), with the
checks every field must pass."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

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

    def __post_init__(self) -> None:
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
