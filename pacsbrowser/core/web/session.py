"""One DICOMweb server, as a blocking httpx client: TLS, authentication, timeouts, the URL of each
service, and every failure turned into the core's typed errors (errors.py).

Blocking: its methods run on core worker threads (core/executor.py), like pynetdicom's calls. A
session owns a pool of keep-alive connections; close it when done (`with` or `close()`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from ... import __version__
from ..config import ConfigError, ProfileStore
from ..dicom.ae import client_ssl_context
from ..errors import DICOMNetworkError
from ..records import ServerProfile, TLSConfiguration, WebAuth
from .errors import UnexpectedAnswer
from .failures import status_error, transport_error

log = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
# What a query value may hold as it is in a URL's query (RFC 3986 query characters, less the ones
# that separate parameters): wildcards, PN separators and commas stay readable, the rest is
# percent-encoded (UTF-8).
_QUERY_SAFE = "*?^,'=-._~!$()/:@"


def query_string(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(key, safe='')}={quote(value, safe=_QUERY_SAFE)}" for key, value in params)


def resolve_secret(profile: ServerProfile) -> str | None:
    """The password or token this profile connects with (in memory, token file, or saved)."""
    web = profile.web
    if web is None or web.auth is WebAuth.NONE:
        return None
    try:
        return ProfileStore().secret_of(profile)
    except ConfigError as exc:
        raise DICOMNetworkError(f"The profile's password or token cannot be read: {exc}") from None


class WebSession:
    """A blocking HTTP client for the DICOMweb server of `profile` (a DICOMweb profile)."""

    def __init__(self, profile: ServerProfile, *, secret: str | None = None) -> None:
        if profile.web is None:
            raise ValueError(f"profile {profile.name!r} is not a DICOMweb profile")
        self.profile = profile
        self.web = profile.web
        self._secret = secret if secret is not None else resolve_secret(profile)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()  # worker threads share a session (STOW-RS batches in parallel)

    # -- set-up -----------------------------------------------------------------------------

    def _auth(self) -> httpx.Auth | None:
        web = self.web
        if web.auth is WebAuth.NONE:
            return None
        if not self._secret:
            kind = "password" if web.auth is WebAuth.BASIC else "token"
            raise DICOMNetworkError(
                f"No {kind} for {self.profile.name!r}: give one in the profile (it is kept in the keyring) "
                f"or a token file")
        if web.auth is WebAuth.BASIC:
            return httpx.BasicAuth(web.username, self._secret)
        return _Bearer(self._secret)

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> httpx.Client:
        p = self.profile
        verify: Any = True
        if self.web.https:
            verify = client_ssl_context(p.tls or TLSConfiguration(), p.host, p.port)
        t = p.timeouts
        return httpx.Client(
            verify=verify, auth=self._auth(), follow_redirects=True, trust_env=False,
            timeout=httpx.Timeout(connect=t.connect, read=t.dimse, write=t.dimse, pool=t.connect),
            headers={"User-Agent": f"pacsbrowser/{__version__}"},
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> "WebSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- URLs -------------------------------------------------------------------------------

    def url(self, service: str, *path: str) -> str:
        """The URL of `path` (segments, each a UID or a resource name) under a service's root."""
        base = self.web.service_url(service)
        return "/".join([base, *(quote(part, safe="") for part in path if part)])

    # -- requests ---------------------------------------------------------------------------

    def request(self, method: str, url: str, what: str, *, params: list[tuple[str, str]] | None = None,
                headers: Mapping[str, str] | None = None, content: Any = None) -> httpx.Response:
        """One request read whole; the typed error for a failure or an HTTP error status."""
        full = f"{url}?{query_string(params)}" if params else url
        try:
            response = self.client.request(method, full, headers=headers, content=content)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.profile, what) from exc
        if response.status_code >= 400:
            raise status_error(response, what, self.profile)
        return response

    @contextmanager
    def stream(self, method: str, url: str, what: str, *, params: list[tuple[str, str]] | None = None,
               headers: Mapping[str, str] | None = None) -> Iterator[httpx.Response]:
        """A streamed response (read with `iter_bytes`); closed at the end of the block."""
        full = f"{url}?{query_string(params)}" if params else url
        try:
            with self.client.stream(method, full, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise status_error(response, what, self.profile)
                yield response
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.profile, what) from exc

    def get_json(self, url: str, what: str, params: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
        """A QIDO answer: a JSON array of DICOM JSON objects ([] for 204 No Content)."""
        response = self.request("GET", url, what, params=params, headers={"Accept": DICOM_JSON})
        if response.status_code == 204 or not response.content.strip():
            return []
        try:
            data = response.json()
        except ValueError as exc:
            raise UnexpectedAnswer(f"{what}: the server's answer is not JSON",
                                   f"{response.headers.get('content-type', '?')}: {exc}") from exc
        if isinstance(data, dict):  # a single object where an array was due
            data = [data]
        if not isinstance(data, list):
            raise UnexpectedAnswer(f"{what}: the server's answer is not a list of results", repr(type(data)))
        return [item for item in data if isinstance(item, dict)]


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request
