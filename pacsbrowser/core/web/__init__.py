"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) behind the core's service interfaces, for profiles of kind
DICOMWEB. Qt-free; the public API is async; the HTTP calls are blocking httpx calls on core worker
threads (core/executor.py). Pick DIMSE or DICOMweb through core/services.py.

Modules: `session.py` (the HTTP client: TLS, authentication, URLs, typed errors), `errors.py`
(HTTP statuses in words), `qido.py` (WebQueryService, WebFindJob), `multipart.py` (a streamed
multipart/related body, one part at a time), `wado.py` (WebRetrieveService, WebRetrieveJob),
`fetch.py` (one WADO-RS request into the archive as it streams), `stow.py` (WebStoreService),
`diagnostics.py` (WebConnectionTest, and `web_echo`: the smallest QIDO, DICOMweb's echo).
"""

from .errors import AccessDenied, AuthenticationFailed, HTTPStatusError, NotFoundAtURL, UnexpectedAnswer
from .qido import WebFindJob, WebQueryService
from .session import WebSession

__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "HTTPStatusError",
    "NotFoundAtURL",
    "UnexpectedAnswer",
    "WebFindJob",
    "WebQueryService",
    "WebSession",
]
