"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) behind the core's service interfaces, for profiles of kind
DICOMWEB. Qt-free; the public API is async; the HTTP calls are blocking httpx calls on core worker
threads (core/executor.py). Pick DIMSE or DICOMweb through core/services.py.

Modules: `session.py` (the HTTP client: TLS, authentication, URLs, typed errors), `errors.py`
(HTTP statuses in words), `failures.py` (httpx's failures in the core's errors), `qido.py`
(WebQueryService, WebFindJob), `multipart.py` (a streamed multipart/related body, one part at a time), `wado.py` (WebRetrieveService, WebRetrieveJob),
`fetch.py` (one WADO-RS request into the archive as it streams), `stow.py` (WebStoreService),
`diagnostics.py` (WebConnectionTest, and `web_echo`: the smallest QIDO, DICOMweb's echo).
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: the command line's exit statuses name the errors (errors.py), and that
# must not load httpx, pydicom or pynetdicom for `--help`.
_WHERE = {
    "AccessDenied": "errors", "AuthenticationFailed": "errors", "HTTPStatusError": "errors",
    "NotFoundAtURL": "errors", "UnexpectedAnswer": "errors",
    "WebFindJob": "qido", "WebQueryService": "qido", "WebSession": "session",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_WHERE)
