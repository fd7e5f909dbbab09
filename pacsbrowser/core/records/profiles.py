"""Server profiles: where a PACS is and how to talk to it (TLS, retries, timeouts), with the
checks every field must pass."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

# PS3.5 6.2: an AE title is at most 16 characters of the default repertoire, no backslash and no
# control characters; leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")

DEFAULT_CALLING_AE = "PACSBROWSER"
DEFAULT_MAX_PDU = 262_144  # bytes; large PDUs keep bulk transfers fast


def validate_ae_title(value: str, what: str = "AE title") -> str:
    """Return the AE title stripped of surrounding spaces, or raise ValueError saying why."""
    stripped = value.strip()
    if not stripped:
        raise ValueError(f"{what} is empty")
    if len(stripped) > 16:
        raise ValueError(f"{what} {stripped!r} is longer than 16 characters")
    if not _AE_TITLE.match(stripped):
        raise ValueError(f"{what} {stripped!r} contains a character DICOM does not allow (backslash or control)")
    return stripped


def validate_port(value: int, what: str = "port") -> int:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{what} must be a whole number from 1 to 65535, not {value!r}")
    return value


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
        if self.max_retries < 0:
            raise ValueError("max_retries must not be negative")
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
        if not self.name.strip():
            raise ValueError("a profile needs a name")
        if not self.host.strip():
            raise ValueError("a profile needs a host")
        validate_port(self.port)
        validate_port(self.listener_port, "listener port")
        object.__setattr__(self, "retrieve_method", RetrieveMethod(self.retrieve_method))
        object.__setattr__(self, "query_model", QueryModel(self.query_model))
        object.__setattr__(self, "called_ae", validate_ae_title(self.called_ae, "called AE title"))
        object.__setattr__(self, "calling_ae", validate_ae_title(self.calling_ae, "calling AE title"))
        if self.move_destination is not None:
            object.__setattr__(
                self, "move_destination", validate_ae_title(self.move_destination, "move destination AE title")
            )
        if self.max_pdu < 0:
            raise ValueError("maximum PDU size must not be negative (0 means unlimited)")
