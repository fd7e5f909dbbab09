"""Help → About: pacsbrowser's version and those of what it is built on."""

from __future__ import annotations

import platform
from importlib import metadata

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QMessageBox, QWidget

from .. import __version__
from .resources import app_icon

# Distribution names whose versions the dialog lists (read from their metadata: no import needed).
COMPONENTS = ("pydicom", "pynetdicom", "pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle",
              "numpy", "qasync", "httpx", "keyring")
STANDARDS = ("DICOM PS3.4 services: Verification, Storage, Query/Retrieve (C-FIND, C-GET, C-MOVE)",
             "DICOM PS3.7/PS3.8 DIMSE over TCP, PS3.15 TLS: the protocol DCMTK and Orthanc speak",
             "DICOM PS3.18 DICOMweb over HTTP(S): QIDO-RS search, WADO-RS retrieve, STOW-RS send")


def component_versions() -> dict[str, str]:
    """Name -> version of Python, Qt, PySide6 and the COMPONENTS ("not installed" when absent)."""
    versions = {"Python": platform.python_version(), "Qt": qVersion(), "PySide6": pyside_version}
    for name in COMPONENTS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def about_html() -> str:
    rows = "".join(f"<tr><td>{name}</td><td>&nbsp;{version}</td></tr>"
                   for name, version in component_versions().items())
    standards = "".join(f"<li>{text}</li>" for text in STANDARDS)
    return (f"<h3>PACS Browser {__version__}</h3>"
            "<p>Search a PACS, retrieve studies, look at thumbnails and send DICOM files.</p>"
            f"<table>{rows}</table><p>Standards:</p><ul>{standards}</ul><p>License: MIT</p>")


def show_about(parent: QWidget) -> QMessageBox:
    """Open (not exec) the About box and return it."""
    box = QMessageBox(parent)
    box.setWindowTitle("About PACS Browser")
    box.setIconPixmap(app_icon().pixmap(96, 96))
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_html())
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
