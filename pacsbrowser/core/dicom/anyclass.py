"""Private and newer storage SOP classes: accepted and served like the ones pynetdicom knows.

Real studies carry SOP classes pynetdicom has never heard of (Siemens CSA Non-Image
1.3.12.2.1107.5.9.1, private GE and Philips objects, storage classes newer than its list). Two
things refuse them in pynetdicom 3.0: an acceptor only accepts the abstract syntaxes in its
supported contexts, and a C-STORE request is dispatched to a service class by its SOP class UID,
so one of an unknown class finds none ("No supported service class") even on an accepted context.
pynetdicom's own way out (`_config.UNRESTRICTED_STORAGE_SERVICE`) is process-wide, and accepts the
first transfer syntax proposed whatever our preference; here it is per association:

- `accept_any_storage(assoc, syntaxes, roles)` (our SCP, before negotiation): every proposed abstract
  syntax that is storage-like (`is_storage_like`) and not already supported gets a context with
  our transfer syntaxes, in our order;
- `serve_any_storage(assoc)` (after negotiation, on our SCP and on a C-GET association): accepted
  contexts of storage classes pynetdicom does not know are tied to the Storage Service Class, the
  way SOP Class Common Extended Negotiation (PS3.7 D.3.3.6) ties a class to its service, so their
  C-STORE requests reach our C-STORE handler;
- `take_proposed_scp_role(assoc)` (a C-GET association): a PACS that accepts a private class
  without answering its SCP/SCU role (Orthanc) still sends it: take the role we proposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pydicom.uid import RE_VALID_UID, UID, UID_dictionary
from pynetdicom import AllStoragePresentationContexts, StoragePresentationContexts, build_context
from pynetdicom import sop_class as _sop_class
from pynetdicom.pdu_primitives import SOPClassCommonExtendedNegotiation

STORAGE_SERVICE_CLASS = "1.2.840.10008.4.2"

KNOWN_STORAGE: frozenset[str] = frozenset(
    str(cx.abstract_syntax) for cx in (*AllStoragePresentationContexts, *StoragePresentationContexts))


@lru_cache(maxsize=4096)
def is_storage_like(uid: str) -> bool:
    """A storage SOP class pynetdicom knows; or one it does not know that is not a known non-storage
    service: private UIDs, and public ones newer than pynetdicom's list (pydicom's name says
    "Storage", or pydicom does not know it either). Not a transfer syntax, a service or a
    well-known instance, and not a malformed UID."""
    text = str(uid).strip().rstrip("\0")
    if text in KNOWN_STORAGE:
        return True
    if len(text) > 64 or not RE_VALID_UID.match(text):
        return False
    keyword = UID(text).keyword
    if keyword and hasattr(_sop_class, keyword):
        return False  # a service pynetdicom knows (Verification, the Q/R models, worklist, print...)
    entry = UID_dictionary.get(text)
    if entry is not None:
        name, kind = entry[0], entry[1]
        return kind == "SOP Class" and "Storage" in name and "Storage Commitment" not in name
    return True  # private, or newer than pydicom and pynetdicom


def accept_any_storage(assoc: Any, syntaxes: Sequence[str], *, roles: bool = False) -> None:
    """Before the association's negotiation (acceptor): add a supported context, with `syntaxes` in
    our order, for every storage-like abstract syntax proposed that is not supported yet; `roles`:
    the SCU and SCP roles may be taken (our Q/R SCP: a C-GET caller is the storage SCP of its
    sub-operations). Then tie what was accepted to the Storage Service Class (`serve_any_storage`)."""
    acse = assoc.acse
    negotiate = acse._negotiate_as_acceptor

    def negotiate_with_any_storage() -> None:
        primitive = assoc.requestor.primitive
        proposed = getattr(primitive, "presentation_context_definition_list", None) or []
        supported = list(assoc.acceptor.supported_contexts)
        known = {str(cx.abstract_syntax) for cx in supported}
        extra = []
        for cx in proposed:
            uid = str(cx.abstract_syntax or "")
            if uid and uid not in known and uid == uid.strip().rstrip("\0") and is_storage_like(uid):
                known.add(uid)
                try:
                    context = build_context(uid, list(syntaxes))
                except ValueError:  # a UID pynetdicom will not take (padding...): left to be rejected
                    continue
                if roles:
                    context.scu_role, context.scp_role = True, True
                extra.append(context)
        if extra:
            assoc.acceptor.supported_contexts = supported + extra
        negotiate()
        serve_any_storage(assoc)

    acse._negotiate_as_acceptor = negotiate_with_any_storage


def serve_any_storage(assoc: Any) -> list[str]:
    """Tie every accepted context of a storage-like class pynetdicom does not know to the Storage
    Service Class, so that its C-STORE requests reach the EVT_C_STORE handler. The classes tied."""
    tied: list[str] = []
    common = assoc.acceptor._common_ext
    for cx in assoc.accepted_contexts:
        uid = str(cx.abstract_syntax)
        if uid in KNOWN_STORAGE or uid in common or not is_storage_like(uid):
            continue
        item = SOPClassCommonExtendedNegotiation()
        item.sop_class_uid = UID(uid)
        item.service_class_uid = UID(STORAGE_SERVICE_CLASS)
        common[UID(uid)] = item
        tied.append(uid)
    return tied


def take_proposed_scp_role(assoc: Any) -> list[str]:
    """A C-GET association (requestor): where the PACS accepted a storage-like class we proposed
    with the SCP role but answered no role item for it, take the SCP role as proposed. Orthanc
    does that for the classes it does not know ("UnknownSopClassAccepted") and then sends their
    C-STORE sub-operations on those contexts, which pynetdicom refused (0x0122, SOP class not
    supported). A role the PACS did answer is kept. The classes whose role was taken."""
    proposed = {str(uid): item for uid, item in assoc.requestor.role_selection.items() if item.scp_role}
    answered = {str(uid) for uid in assoc.acceptor.role_selection}
    taken: list[str] = []
    for cx in assoc.accepted_contexts:
        uid = str(cx.abstract_syntax)
        if cx.as_scp or uid not in proposed or uid in answered or not is_storage_like(uid):
            continue
        cx._as_scp = True
        taken.append(uid)
    return sorted(set(taken))


__all__ = ["KNOWN_STORAGE", "STORAGE_SERVICE_CLASS", "accept_any_storage", "is_storage_like", "serve_any_storage",
           "take_proposed_scp_role"]
