"""Presentation contexts for C-STORE and C-GET: which to propose per SOP class, packed into groups
that each fit one association.

An SCP accepts one transfer syntax per context (PS3.8 9.3.2.2), so every compressed syntax goes
in a context of its own: the PACS can then accept a compressed syntax *and* an uncompressed one,
and a file travels as it is stored whenever it may. At most 128 contexts fit an association
(MAX_CONTEXTS); classes that do not fit go into further groups, each on its own associations.

- C-STORE (`plan_store_contexts`): per SOP class, Explicit and Implicit VR Little Endian each in
  its own context (we choose per file), then every other syntax the files use.
- C-GET (`plan_get_contexts`, PS3.4 C.4.3, PS3.7 D.3.3.4): the instances come back as C-STORE
  sub-operations on our association, so every storage class the request may return gets the SCP
  role (SCP/SCU Role Selection) and contexts, after the C-GET model's own. The uncompressed
  syntaxes share one context (the budget is tight); classes with pixel data get every compressed
  syntax as well. dcmqrscp sends each file of a class on the *first* accepted context of that class,
  whatever the file's own syntax, so `first=` puts a chosen syntax's context first: what failed on
  one association can be fetched on another (core.retrieve does those rounds). When the PACS did
  not say the classes, `default_groups` proposes a common set, and `other_storage_groups` the rest
  of the storage classes in further groups, for what the common set left behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless, RLELossless
from pynetdicom import build_role
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from ..sopclasses import RT_DOSE_STORAGE, has_pixel_data
from .anyclass import KNOWN_STORAGE
from .syntaxes import COMPRESSED, MAX_CONTEXTS, UNCOMPRESSED

GET_MODEL = StudyRootQueryRetrieveInformationModelGet
MOVE_MODEL = StudyRootQueryRetrieveInformationModelMove

# Proposed, each compressed syntax in its own context, for every image class the PACS said the study holds.
COMPRESSED_SYNTAXES = COMPRESSED
# When the PACS does not say which classes a study holds, a common set, with the compressed
# syntaxes PACS actually store, so that the whole set fits one association.
DEFAULT_COMPRESSED = (RLELossless, JPEGLosslessSV1, JPEGBaseline8Bit, JPEGLSLossless, JPEG2000Lossless, JPEG2000)
DEFAULT_IMAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
    "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.20",  # Nuclear Medicine Image Storage
    "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
)
DEFAULT_OTHER_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR Storage
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR Storage
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR Storage
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection Document Storage
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State Storage
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF Storage
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    RT_DOSE_STORAGE,
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
    "1.2.840.10008.5.1.4.1.1.481.5",  # RT Plan Storage
)
DEFAULT_CLASSES = DEFAULT_IMAGE_CLASSES + DEFAULT_OTHER_CLASSES

_UNCOMPRESSED = tuple(str(s) for s in UNCOMPRESSED)


@dataclass(frozen=True)
class ContextGroup:
    """The contexts of one association and the SOP classes they serve. For C-GET, the retrieve
    model comes first, `roles` propose the SCP role for each class, and `first` maps a class to the
    syntax whose context was put first for it (absent: uncompressed first)."""

    sop_classes: frozenset[str]
    contexts: tuple[PresentationContext, ...]
    roles: tuple[Any, ...] = ()
    first: tuple[tuple[str, str], ...] = ()

    def __contains__(self, sop_class: object) -> bool:
        return sop_class in self.sop_classes


def contexts_for_class(sop_class: str, others: Iterable[str] = (), *, shared_uncompressed: bool = False,
                       first: str | None = None) -> list[PresentationContext]:
    """The uncompressed syntaxes (one context each, or one shared), then each syntax of `others`
    in a context of its own, in the order given; the context of `first` ahead of all when given."""
    own: list[tuple[str, list[str]]]
    if shared_uncompressed:
        own = [("uncompressed", list(_UNCOMPRESSED))]
    else:
        own = [(s, [s]) for s in _UNCOMPRESSED]
    own += [(s, [s]) for s in dict.fromkeys(str(s) for s in others) if s not in _UNCOMPRESSED]
    if first is not None and str(first) not in _UNCOMPRESSED:
        own.sort(key=lambda item: item[0] != str(first))
    return [build_context(sop_class, syntaxes) for _, syntaxes in own]


def pack(contexts: Mapping[str, Sequence[PresentationContext]], budget: int) -> list[tuple[list[str], list[PresentationContext]]]:
    """The classes of `contexts` (class -> its contexts) in order, packed into groups of at most
    `budget` contexts; a class whose contexts alone exceed it keeps as many as fit."""
    groups: list[tuple[list[str], list[PresentationContext]]] = []
    for sop_class, own in contexts.items():
        own = list(own)[:budget]
        if not groups or len(groups[-1][1]) + len(own) > budget:
            groups.append(([], []))
        groups[-1][0].append(sop_class)
        groups[-1][1].extend(own)
    return groups


def plan_store_contexts(keys: Iterable[tuple[str, str]], limit: int = MAX_CONTEXTS) -> list[ContextGroup]:
    """C-STORE: groups of contexts for (SOP class, transfer syntax) pairs, in order of first appearance."""
    syntaxes: dict[str, set[str]] = {}
    for sop_class, syntax in keys:
        syntaxes.setdefault(sop_class, set()).add(str(syntax))
    own = {sop_class: contexts_for_class(sop_class, sorted(used)) for sop_class, used in syntaxes.items()}
    return [ContextGroup(frozenset(classes), tuple(contexts)) for classes, contexts in pack(own, limit)]


def plan_get_contexts(
    sop_classes: Iterable[str],
    *,
    compressed: Sequence[str] | None = None,
    first: dict[str, str] | None = None,
    limit: int = MAX_CONTEXTS,
) -> list[ContextGroup]:
    """C-GET: groups of at most `limit` contexts (one of them the C-GET model) for `sop_classes`, in order.

    Classes with pixel data get `compressed` (default COMPRESSED_SYNTAXES) in contexts of their
    own; other classes the uncompressed context only.
    """
    compressed = COMPRESSED_SYNTAXES if compressed is None else tuple(compressed)
    first = first or {}
    own = {sop_class: contexts_for_class(sop_class, compressed if has_pixel_data(sop_class) else (),
                                         shared_uncompressed=True, first=first.get(sop_class))
           for sop_class in dict.fromkeys(str(c) for c in sop_classes if c)}
    return [
        ContextGroup(frozenset(classes), (build_context(GET_MODEL), *contexts),
                     tuple(build_role(c, scp_role=True) for c in classes),
                     tuple((c, first[c]) for c in classes if c in first))
        for classes, contexts in pack(own, limit - 1)  # one context for the C-GET model
    ]


def default_groups(first: dict[str, str] | None = None) -> list[ContextGroup]:
    """C-GET contexts for a study whose SOP classes the PACS did not say (one association)."""
    return plan_get_contexts(DEFAULT_CLASSES, compressed=DEFAULT_COMPRESSED, first=first)


def other_storage_groups(exclude: Iterable[str] = DEFAULT_CLASSES) -> list[ContextGroup]:
    """C-GET contexts for every other storage class pynetdicom knows (159 beyond the default set),
    one uncompressed context each, in further groups (two associations): when the PACS did not say
    the SOP classes and the default set left instances it could not send."""
    skip = {str(c) for c in exclude}
    return plan_get_contexts(sorted(c for c in KNOWN_STORAGE if c not in skip), compressed=())


__all__ = [
    "COMPRESSED_SYNTAXES",
    "DEFAULT_CLASSES",
    "DEFAULT_COMPRESSED",
    "DEFAULT_IMAGE_CLASSES",
    "DEFAULT_OTHER_CLASSES",
    "GET_MODEL",
    "MOVE_MODEL",
    "ContextGroup",
    "contexts_for_class",
    "default_groups",
    "other_storage_groups",
    "pack",
    "plan_get_contexts",
    "plan_store_contexts",
]
