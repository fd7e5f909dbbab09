"""The application's identity and icon, read from the package pacsbrowser.resources.

pyproject.toml/setup.py install the top-level resources/ folder as pacsbrowser.resources (a wheel,
an editable install) and the PyInstaller spec puts it at the same place in the bundle, so
importlib.resources finds it everywhere. A source checkout put on sys.path without any install
has no such package: then the folder is read where it lies, beside pacsbrowser/.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from importlib.resources.abc import Traversable
from pathlib import Path

from PySide6.QtGui import QIcon, QPixmap

APP_ID = "org.pacsbrowser.PACSBrowser"  # the .desktop file's and the AppStream metainfo's name
ICON_NAME = "pacsbrowser"  # the freedesktop icon-theme name (Icon= in the .desktop entry)
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def resource_files() -> Traversable:
    """The root of pacsbrowser.resources (a Traversable, read it with read_bytes/open)."""
    try:
        return importlib.resources.files("pacsbrowser.resources")
    except ModuleNotFoundError:  # a source checkout on sys.path, not installed
        return Path(__file__).resolve().parents[2] / "resources"


def icon_png(size: int) -> Traversable:
    return resource_files() / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png"


@cache
def app_icon() -> QIcon:
    """The application icon with every rendered size (Qt picks the nearest for menus and task bars)."""
    icon = QIcon()
    for size in ICON_SIZES:
        pixmap = QPixmap()
        if pixmap.loadFromData(icon_png(size).read_bytes(), "PNG"):
            icon.addPixmap(pixmap)
    return icon
