"""DICOMweb's errors in words: the HTTP statuses, in the core's error family, so the window and the
command line show them as they show a DIMSE failure. Light to import (the command line's exit
statuses name them); `failures.py` turns httpx's failures into these and the core's errors."""

from __future__ import annotations

from http import HTTPStatus

from ..errors import DICOMNetworkError


class HTTPStatusError(DICOMNetworkError):
    """The DICOMweb server answered with an HTTP error status."""

    def __init__(self, status: int, url: str, what: str, hint: str = "", detail: str = "") -> None:
        self.status, self.url, self.what, self.hint = status, url, what, hint
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "unknown status"
        message = f"{what} failed: HTTP {status} {phrase}"
        if hint:
            message += f": {hint}"
        super().__init__(message, f"{url}: HTTP {status} {phrase}" + (f"; {detail}" if detail else ""))


class AuthenticationFailed(HTTPStatusError):
    """401: the server did not accept who we said we are."""


class AccessDenied(HTTPStatusError):
    """403: the server knows us and refuses."""


class NotFoundAtURL(HTTPStatusError):
    """404: nothing at that URL (a wrong DICOMweb root, or the study is not there)."""


class UnexpectedAnswer(DICOMNetworkError):
    """The server answered 2xx with something that is not what DICOMweb promises (wrong media type,
    unreadable JSON or multipart)."""
