"""Plain, immutable records shared by the core, the CLI and the window.

Nothing here talks to the network or imports Qt: these are the nouns of the application, one module
per subject (profiles, query, retrieve, transfers); import them from `core.records`.
"""

from .profiles import (
    DEFAULT_CALLING_AE,
    DEFAULT_MAX_PDU,
    DICOMWEB_CALLED_AE,
    NO_RETRY,
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
from .query import (
    Completeness,
    DeferredDataset,
    FindSummary,
    InstanceResult,
    PatientResult,
    PersonName,
    QueryKeys,
    QueryLevel,
    SeriesResult,
    StudyResult,
)
from .retrieve import RetrievePhase, RetrieveProgress, RetrieveSummary
from .transfers import Received, StoreOutcome, StoreProgress, StoreResult

__all__ = [
    "DEFAULT_CALLING_AE",
    "DEFAULT_MAX_PDU",
    "DICOMWEB_CALLED_AE",
    "NO_RETRY",
    "DICOMwebEndpoint",
    "ProfileKind",
    "Completeness",
    "DeferredDataset",
    "FindSummary",
    "InstanceResult",
    "PatientResult",
    "PersonName",
    "QueryKeys",
    "QueryLevel",
    "QueryModel",
    "Received",
    "RetrieveMethod",
    "RetrievePhase",
    "RetrieveProgress",
    "RetrieveSummary",
    "RetryPolicy",
    "SeriesResult",
    "ServerProfile",
    "StoreOutcome",
    "StoreProgress",
    "StoreResult",
    "StudyResult",
    "TLSConfiguration",
    "Timeouts",
    "WebAuth",
    "validate_ae_title",
    "validate_port",
]
