"""The PyInstaller spec, and (PACSBROWSER_TEST_BUNDLE=1, several minutes) the frozen bundle itself:
`make package`, unpacked outside the tree, runs --version, echo and find against the lab's Orthanc,
thumbnails of JPEG 2000 and RLE files (the codecs are in it), and paints its window under Xvfb."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import pacsbrowser

from .conftest import PACKAGING, ROOT, tool

SPEC = PACKAGING / "pacsbrowser.spec"
# "1": `make package` first; "built": take the .tar.gz an earlier `make package` left in dist/.
BUNDLE_WANTED = os.environ.get("PACSBROWSER_TEST_BUNDLE", "")


def test_the_spec_parses_and_names_what_the_bundle_needs():
    tree = ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT", "collect_all", "copy_metadata"} <= called
    names = {node.targets[0].id: node.value for node in ast.walk(tree)
             if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    codecs = ast.literal_eval(names["CODECS"])
    assert set(codecs) == {"pylibjpeg", "libjpeg", "openjpeg", "rle"}
    assert (PACKAGING / "launcher.py").is_file()


def test_the_spec_keeps_the_xcb_and_offscreen_platforms():
    """Run the spec's plug-in filter (its `wanted`) on the names PyInstaller's Qt hooks collect."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"))
    names = {"KEEP_PLATFORMS", "DROP_PLUGINS", "DROP_FILES", "DROP_LIBS"}
    keep = [node for node in tree.body
            if (isinstance(node, ast.FunctionDef) and node.name == "wanted")
            or (isinstance(node, ast.Assign) and {getattr(t, "id", "") for t in node.targets} & names)
            or (isinstance(node, ast.ImportFrom) and node.module == "pathlib")]
    scope: dict = {"SPECPATH": str(PACKAGING)}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(SPEC), "exec"), scope)  # noqa: S102 - our own spec
    wanted = scope["wanted"]
    plugins = "PySide6/Qt/plugins"
    assert wanted(f"{plugins}/platforms/libqxcb.so") and wanted(f"{plugins}/platforms/libqoffscreen.so")
    assert not wanted(f"{plugins}/platforms/libqwayland.so") and not wanted(f"{plugins}/platforms/libqeglfs.so")
    assert not wanted(f"{plugins}/platforms/libqminimalegl.so") and not wanted(f"{plugins}/generic/libqtuiotouchplugin.so")
    assert not wanted(f"{plugins}/imageformats/libqsvg.so")
    assert wanted(f"{plugins}/imageformats/libqjpeg.so") and wanted(f"{plugins}/xcbglintegrations/libqxcb-glx-integration.so")
    assert not wanted(f"{plugins}/wayland-shell-integration/libxdg-shell.so")
    assert not wanted("PySide6/Qt/translations/qtbase_de.qm")
    assert wanted("pacsbrowser/resources/icons/hicolor/16x16/apps/pacsbrowser.png")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """`make package`, then its .tar.gz unpacked in a temporary folder outside the source tree."""
    # (it runs once per module: `make package` rewrites dist/ and build/, so never in parallel runs)
    if BUNDLE_WANTED not in ("1", "built"):
        pytest.skip("building the bundle takes minutes: PACSBROWSER_TEST_BUNDLE=1 asks for it")
    if BUNDLE_WANTED == "1":
        env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
        result = subprocess.run(["make", "package"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (tarball,) = (ROOT / "dist").glob(f"pacsbrowser-{pacsbrowser.__version__}-linux-*.tar.gz")
    where = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(tarball) as archive:
        archive.extractall(where, filter="tar")
    (folder,) = where.iterdir()
    return folder


def _run(bundle: Path, *args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PACSBROWSER_CONFIG_DIR": str(home / "config"),
           "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"), "LANG": "C.UTF-8"}
    return subprocess.run([str(bundle / "pacsbrowser"), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.timeout(1800)
def test_bundle_version(bundle, tmp_path):
    result = _run(bundle, "--version", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pacsbrowser {pacsbrowser.__version__}"
    assert (bundle / "install.sh").is_file()


@pytest.mark.timeout(1800)
@pytest.mark.interop
def test_bundle_echo_and_find_against_orthanc(bundle, orthanc, tmp_path):
    where = ["--host", orthanc.host, "--port", str(orthanc.port), "--called-ae", orthanc.aet]
    echo = _run(bundle, "echo", *where, home=tmp_path)
    assert echo.returncode == 0, echo.stdout + echo.stderr
    find = _run(bundle, "find", "--level", "study", "--json", *where, home=tmp_path)
    assert find.returncode == 0, find.stdout + find.stderr
    rows = [json.loads(line) for line in find.stdout.splitlines() if line.strip()]
    assert rows and all(isinstance(row, dict) for row in rows)


@pytest.mark.timeout(1800)
def test_bundle_decodes_jpeg2000_and_rle(bundle, tmp_path):
    from tests.imaging.samples import make_samples

    samples = make_samples(tmp_path / "samples")
    files = [str(samples[name].path) for name in ("j2k_lossless_ct", "rle_ct", "j2k_lossless_rgb", "rle_rgb")]
    out = tmp_path / "thumbs"
    result = _run(bundle, "thumbnail", *files, "--size", "64", "--out", str(out), home=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == len(files), result.stdout
    # The same thumbnails from the source tree's code (lossless files: the same pixels, whatever codec build).
    reference = tmp_path / "reference"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    made = subprocess.run([sys.executable, "-m", "pacsbrowser", "thumbnail", *files, "--size", "64", "--out",
                           str(reference)], capture_output=True, text=True, env=env, timeout=300)
    assert made.returncode == 0, made.stderr
    from PySide6.QtGui import QImage

    for png in pngs:
        ours, expected = QImage(str(png)), QImage(str(reference / png.name))
        assert not expected.isNull() and ours == expected, png.name
    assert "placeholder" not in result.stdout.lower()


@pytest.mark.timeout(1800)
def test_bundle_paints_its_window_under_xvfb(bundle, tmp_path):
    tool("Xvfb")
    if not Path("/usr/bin/import").exists():
        pytest.skip("ImageMagick's import is not installed")
    from benchmarks.bundle import start, stop, wait_for_paint, xvfb

    with xvfb() as display:
        process = start(bundle / "pacsbrowser", display, tmp_path / "config")
        try:
            wait_for_paint(display, process, timeout=120)
        finally:
            stop(process)
