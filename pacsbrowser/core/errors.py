"""Typed network errors, each with a one-line message a clinician can act on.

Every error has `str(error)` (the sentence shown to the user) and `detail` (the DICOM detail for the
log or a "details" button). Nothing here includes patient data.
"""

from __future__ import annotations

from enum import Enum


class PacsbrowserError(Exception):
    """An error with a sentence for the user (`str()`) and its technical detail (`detail`)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class DICOMNetworkError(PacsbrowserError):
    """Base of every failure talking to a DICOM peer."""


class ConnectionFailed(DICOMNetworkError):
    """The TCP connection could not be made, or the peer closed it before answering."""

    def __init__(self, host: str, port: int, reason: str, detail: str = "", hint: str = "") -> None:
        self.host, self.port, self.reason, self.hint = host, port, reason, hint
        message = f"Cannot connect to {host}:{port}: {reason}"
        if hint:
            message += f" ({hint})"
        super().__init__(message, detail)


class Timeout(DICOMNetworkError):
    """No answer within the configured time."""

    def __init__(self, what: str, seconds: float, detail: str = "") -> None:
        self.what, self.seconds = what, seconds
        super().__init__(f"Timed out after {seconds:g} s {what}", detail)


class Cancelled(DICOMNetworkError):
    def __init__(self, what: str = "the operation") -> None:
        super().__init__(f"Cancelled {what}")


class AssociationAborted(DICOMNetworkError):
    """The peer (or the network layer) aborted the association."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message, detail)


class ServiceNotSupported(DICOMNetworkError):
    """The peer accepted the association but none of the presentation contexts a service needs."""

    def __init__(self, host: str, port: int, services: str, detail: str = "", hint: str = "") -> None:
        self.host, self.port, self.services, self.hint = host, port, services, hint
        message = f"{host}:{port} does not support {services}"
        if hint:
            message += f"; {hint}"
        super().__init__(message, detail)


# PS3.8 9.3.4 (A-ASSOCIATE-RJ): result, source and reason/diagnostic.
_RJ_RESULT = {1: "rejected (permanent)", 2: "rejected (transient)"}
_RJ_SOURCE = {
    1: "DICOM UL service-user",
    2: "DICOM UL service-provider (ACSE)",
    3: "DICOM UL service-provider (presentation)",
}
_RJ_REASON = {
    (1, 1): ("no reason given", ""),
    (1, 2): ("application context name not supported", ""),
    (1, 3): (
        "calling AE title not recognised",
        "the PACS does not know our AE title: ask its administrator to register it",
    ),
    (1, 7): ("called AE title not recognised", "check the called AE title in the profile"),
    (2, 1): ("no reason given", ""),
    (2, 2): ("protocol version not supported", ""),
    (3, 1): ("temporary congestion", "the PACS is busy: try again later"),
    (3, 2): ("local limit exceeded", "the PACS has too many associations open: try again later"),
}


class AssociationRejected(DICOMNetworkError):
    """A-ASSOCIATE-RJ: the peer refused the association, saying why."""

    def __init__(self, result: int, source: int, reason: int) -> None:
        self.result, self.source, self.reason = result, source, reason
        reason_words, hint = _RJ_REASON.get((source, reason), ("reserved reason", ""))
        self.result_words = _RJ_RESULT.get(result, f"unknown result {result}")
        self.source_words = _RJ_SOURCE.get(source, f"unknown source {source}")
        self.reason_words = reason_words
        self.hint = hint
        message = f"Association {self.result_words}: {reason_words}"
        if hint:
            message += f"; {hint}"
        detail = (
            f"A-ASSOCIATE-RJ result={result} ({self.result_words}), source={source} "
            f"({self.source_words}), reason={reason} ({reason_words})"
        )
        super().__init__(message, detail)

    @property
    def transient(self) -> bool:
        return self.result == 2


class DIMSEError(DICOMNetworkError):
    """A DIMSE operation ended with a failure (or unexpected) status."""

    def __init__(self, status: int, service: str = "", comment: str = "", hint: str = "") -> None:
        self.status, self.service, self.comment, self.hint = status, service, comment, hint
        self.category, self.words = status_words(status, service)
        what = f"{service} " if service else ""
        message = f"{what}failed: {self.words} (0x{status:04X})"
        if hint:
            message += f"; {hint}"
        detail = f"{service or 'DIMSE'} status 0x{status:04X} ({self.category}: {self.words})"
        if comment:
            detail += f", error comment: {comment}"
        super().__init__(message, detail)


def status_words(status: int, service: str = "") -> tuple[str, str]:
    """(category, meaning) of a DIMSE status per PS3.7 Annex C and the service's own table."""
    # Imported here, not at the top: the archive and the thumbnail worker processes import this
    # module, and pynetdicom costs them about 0.3 s of start-up they never need.
    from pynetdicom import status as _status

    tables = {
        "C-ECHO": _status.VERIFICATION_SERVICE_CLASS_STATUS,
        "C-STORE": _status.STORAGE_SERVICE_CLASS_STATUS,
        "C-FIND": _status.QR_FIND_SERVICE_CLASS_STATUS,
        "C-MOVE": _status.QR_MOVE_SERVICE_CLASS_STATUS,
        "C-GET": _status.QR_GET_SERVICE_CLASS_STATUS,
    }
    table = tables.get(service, {})
    if status in table:
        category, words = table[status]
        return category, words
    if status in _status.GENERAL_STATUS:
        category, words = _status.GENERAL_STATUS[status]
        return category, words
    category = _status.code_to_category(status)
    return category, {"Failure": "failure", "Warning": "warning", "Cancel": "cancelled"}.get(
        category, "unknown status"
    )


class TLSCause(str, Enum):
    UNKNOWN_CA = "the server's certificate is signed by an authority we do not trust"
    EXPIRED = "the server's certificate has expired"
    NOT_YET_VALID = "the server's certificate is not valid yet"
    HOSTNAME_MISMATCH = "the server's certificate is for another host name"
    SELF_SIGNED = "the server's certificate is self-signed and not trusted"
    CLIENT_CERT_REQUIRED = "the server requires a client certificate and none was sent"
    CLIENT_CERT_REFUSED = "the server refused our client certificate"
    NOT_TLS_SERVER = "the server does not speak TLS on this port (is TLS off on the server?)"
    TLS_SERVER_PLAIN_CLIENT = "the server expects TLS on this port: turn TLS on in the profile"
    PROTOCOL = "the TLS versions or ciphers do not match"
    LOCAL_FILES = "our certificate, key or CA file could not be used"
    OTHER = "the TLS handshake failed"


class TLSError(DICOMNetworkError):
    def __init__(self, cause: TLSCause, host: str, port: int, detail: str = "") -> None:
        self.cause, self.host, self.port = cause, host, port
        super().__init__(f"TLS with {host}:{port} failed: {cause.value}", detail)


class ListenerError(DICOMNetworkError):
    """Our own Storage SCP could not start listening (port in use, privileged port, bad address, TLS
    files), said in words with the address and port."""

    def __init__(self, host: str, port: int, reason: str, detail: str = "", hint: str = "") -> None:
        self.host, self.port, self.reason, self.hint = host, port, reason, hint
        where = f"{host or 'all interfaces'}:{port}"
        message = f"Cannot listen on {where}: {reason}"
        if hint:
            message += f" ({hint})"
        super().__init__(message, detail)


class ArchiveError(PacsbrowserError):
    """The local archive cannot be opened or changed (in use by another process, unreadable index,
    not an archive folder)."""


class MoveDestinationUnknown(DIMSEError):
    """C-MOVE refused because the PACS does not know where to send: says what to register.

    `certain` is True for 0xA801 (the PACS said so); False when the PACS refused the C-MOVE with a
    general failure before sending anything (Orthanc answers 0xC000), which is most often the same
    cause. `host` and `port` are our listener's address as the PACS should see it.
    """

    def __init__(self, status: int, destination_ae: str, host: str | None, port: int | None, *,
                 certain: bool = True, comment: str = "") -> None:
        self.destination_ae, self.host, self.port, self.certain = destination_ae, host, port, certain
        if host is None and port is None:  # not our own listener: we do not know its address
            where = "its host and port"
        else:
            where = f"host {host or 'this computer'}" + (f", port {port}" if port else "")
        register = (f"ask the PACS administrator to register AE title {destination_ae} at {where} "
                    f"as a C-MOVE destination, or retrieve with C-GET instead")
        super().__init__(status, "C-MOVE", comment=comment, hint=register)
        lead = ("The PACS does not know the move destination" if certain
                else "The PACS refused the C-MOVE before sending anything; most likely it does not know the "
                     "move destination")
        self.message = f"{lead} {destination_ae} (0x{status:04X}): {register}"


class RetrieveInterrupted(AssociationAborted):
    """A C-GET or C-MOVE broke off part-way (the PACS aborted, the connection closed, or the PACS went
    silent). What arrived is kept; a new retrieve fetches only the rest. `summary` is the
    RetrieveSummary up to the break."""

    def __init__(self, what: str, received: int, expected: int | None, *, summary: object = None,
                 detail: str = "", timed_out: bool = False) -> None:
        self.received, self.expected, self.summary, self.timed_out = received, expected, summary, timed_out
        if expected is not None:
            count = f"{received} of {expected} instances arrived"
            rest = max(0, expected - received)
            tail = f"; retrieve again to fetch the other {rest}" if rest else ""
        else:
            count = f"{received} instances arrived"
            tail = "; retrieve again to fetch the rest"
        kept = " and are kept in the archive" if received else ""
        super().__init__(f"{what}: {count}{kept}{tail}", detail)
