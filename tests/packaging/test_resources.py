"""resources/: the desktop entry and the metainfo validate, the icon loads through importlib.resources."""

from __future__ import annotations

import configparser
import subprocess
import xml.etree.ElementTree as ET

import pytest

from pacsbrowser import __version__
from pacsbrowser.ui.resources import APP_ID, ICON_SIZES, app_icon, icon_png, resource_files

from .conftest import RESOURCES, tool

DESKTOP = RESOURCES / f"{APP_ID}.desktop"
METAINFO = RESOURCES / f"{APP_ID}.metainfo.xml"


def _validator_output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr).strip()


def test_desktop_entry_validates():
    result = subprocess.run([tool("desktop-file-validate"), str(DESKTOP)], capture_output=True, text=True,
                            timeout=60)
    output = _validator_output(result)
    assert result.returncode == 0, output
    # Only the hint that Graphics and Science are both main categories (the issue asks for both).
    assert "error" not in output and "warning" not in output, output


def test_desktop_entry_says_what_the_issue_asks():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(DESKTOP, encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Exec"] == "pacsbrowser %F"
    assert section["Icon"] == "pacsbrowser"
    assert section["Categories"].split(";")[:3] == ["Graphics", "MedicalSoftware", "Science"]
    assert section["MimeType"] == "application/dicom;"


def test_metainfo_validates_offline():
    result = subprocess.run([tool("appstreamcli"), "validate", "--no-net", str(METAINFO)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, _validator_output(result)


def test_metainfo_names_this_release_the_desktop_entry_and_a_screenshot():
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == DESKTOP.name
    assert __version__ in [r.get("version") for r in root.iter("release")]
    assert root.find("content_rating").get("type") == "oars-1.1"
    images = [image.text for image in root.iter("image")]
    assert images and all(text.endswith("/docs/window.png") for text in images)
    assert (RESOURCES.parent / "docs" / "window.png").is_file()


def test_every_icon_size_is_a_png_of_that_size(qapp):
    from PySide6.QtGui import QImage

    for size in ICON_SIZES:
        image = QImage.fromData(icon_png(size).read_bytes(), "PNG")
        assert (image.width(), image.height()) == (size, size), size
        assert image.hasAlphaChannel()
    assert (resource_files() / "icons" / "pacsbrowser.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_the_application_icon_has_every_size(qapp):
    icon = app_icon()
    assert not icon.isNull()
    assert {s.width() for s in icon.availableSizes()} == set(ICON_SIZES)
    small = icon.pixmap(16, 16).toImage()
    assert small.width() == 16 and small.pixelColor(8, 8).alpha() == 255


def test_resources_come_from_importlib_resources_when_installed():
    """Installed (wheel, editable) the folder is the package pacsbrowser.resources; a bare source
    checkout on sys.path reads resources/ itself. Both name the same files."""
    import importlib.util

    spec = importlib.util.find_spec("pacsbrowser.resources")
    root = resource_files()
    if spec is None:
        assert str(root) == str(RESOURCES)
    else:
        assert root.joinpath(DESKTOP.name).read_bytes() == DESKTOP.read_bytes()


@pytest.mark.parametrize("size", [16, 512])
def test_pngs_are_rendered_from_the_svg(qapp, size):
    """The committed PNGs come from icons/pacsbrowser.svg (rsvg-convert, as packaging/README.md says)."""
    rsvg = tool("rsvg-convert")
    rendered = subprocess.run([rsvg, "-w", str(size), "-h", str(size), str(RESOURCES / "icons" / "pacsbrowser.svg")],
                              capture_output=True, timeout=60, check=True).stdout
    from PySide6.QtGui import QImage

    ours = QImage.fromData(icon_png(size).read_bytes(), "PNG")
    fresh = QImage.fromData(rendered, "PNG")
    assert ours.size() == fresh.size()
    # same picture: the centre pixels agree (a rsvg version may round edges differently)
    for x, y in ((size // 2, size // 2), (size // 4, size // 3)):
        a, b = ours.pixelColor(x, y), fresh.pixelColor(x, y)
        assert abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue()) < 30
