"""What kind of object a SOP class holds, by its UID (pydicom's UID dictionary; no network code).

One classification for every part that asks: the C-STORE check (an image without pixel data is a
file cut short), the renderer (the same, for its placeholder), and C-GET planning (which classes
get contexts for compressed syntaxes).
"""

from __future__ import annotations

from pydicom.uid import UID

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR: an index of media, not an instance
RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"


def uid_name(uid: str) -> str:
    """A UID's name in pydicom's dictionary ("CT Image Storage", "RLE Lossless"), or the UID itself."""
    name = UID(uid).name if uid else ""
    return name if name and name != uid else uid


def is_image_class(sop_class: str) -> bool:
    """An image storage class (CT, MR, CR, US, secondary capture...): its instances carry pixel
    data, so one without it has been cut short. RT Dose, SR, PDF and the like are not images."""
    name = UID(sop_class).name
    return "Image Storage" in name and "Key Object" not in name


def has_pixel_data(sop_class: str) -> bool:
    """Whether instances of `sop_class` carry pixel data a PACS may hold compressed: the image
    classes, and RT Dose (a dose grid in pixel data, not an image)."""
    return sop_class == RT_DOSE_STORAGE or is_image_class(sop_class)


def is_dicomdir(sop_class: str) -> bool:
    return sop_class == MEDIA_STORAGE_DIRECTORY


__all__ = ["MEDIA_STORAGE_DIRECTORY", "RT_DOSE_STORAGE", "has_pixel_data", "is_dicomdir", "is_image_class"]
