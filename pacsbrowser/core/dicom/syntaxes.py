"""Transfer syntaxes we propose and accept, in one place for C-STORE, C-GET and our Storage SCP,
and the words for a syntax or a SOP class in a message."""

from __future__ import annotations

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from ..sopclasses import uid_name

MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255

#: What every peer must accept (PS3.5 10.1: Implicit VR Little Endian is the default).
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

#: The compressed syntaxes PACS store, proposed each in a context of its own (an SCP accepts one
#: syntax per context), lossless first.
COMPRESSED = (
    RLELossless,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    HTJ2K,
)

#: What our Storage SCP accepts, in its order of preference when a peer proposes several in one
#: context: uncompressed first, then everything else, stored as it comes.
ACCEPTED_FOR_STORAGE = (*UNCOMPRESSED, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, *COMPRESSED)


def syntax_name(uid: str) -> str:
    """A transfer syntax's name ("RLE Lossless"), or its UID when pydicom does not know it."""
    return uid_name(uid)


def class_name(uid: str) -> str:
    """A SOP class's name ("CT Image Storage"), or "SOP class <uid>" when pydicom does not know it."""
    name = uid_name(uid)
    return name if name != uid else f"SOP class {uid}"
