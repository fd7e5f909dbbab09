"""packaging/install.sh on a stand-in bundle: the menu entry, icons and metainfo land where the
desktop finds them (a --prefix here; ~/.local or /usr/local + /opt for real), and --uninstall
removes them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pacsbrowser.ui.resources import APP_ID, ICON_SIZES

from .conftest import PACKAGING, RESOURCES, tool


def _fake_bundle(root):
    bundle = root / "pacsbrowser-0.1.0"
    shutil.copytree(RESOURCES, bundle / "_internal" / "pacsbrowser" / "resources",
                    ignore=shutil.ignore_patterns("__pycache__"))
    program = bundle / "pacsbrowser"
    program.write_text("#!/bin/sh\necho bundled \"$@\"\n")
    program.chmod(0o755)
    shutil.copy2(PACKAGING / "install.sh", bundle / "install.sh")
    return bundle


def _run(bundle, *args, home):
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_DATA_HOME", None)
    return subprocess.run(["sh", str(bundle / "install.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_install_into_a_prefix_and_uninstall(tmp_path):
    bundle = _fake_bundle(tmp_path)
    prefix = tmp_path / "prefix"
    result = _run(bundle, "--prefix", str(prefix), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    share = prefix / "share"
    desktop = share / "applications" / f"{APP_ID}.desktop"
    program = prefix / "lib" / "pacsbrowser" / "pacsbrowser"
    assert f"Exec={program} %F\n" in desktop.read_text()
    assert (share / "metainfo" / f"{APP_ID}.metainfo.xml").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "pacsbrowser.svg").is_file()
    for size in ICON_SIZES:
        assert (share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "pacsbrowser.png").is_file()
    launched = subprocess.run([str(prefix / "bin" / "pacsbrowser"), "--version"], capture_output=True, text=True,
                              timeout=60)
    assert launched.stdout.strip() == "bundled --version"
    checked = subprocess.run([tool("desktop-file-validate"), str(desktop)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout

    result = _run(bundle, "--prefix", str(prefix), "--uninstall", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert not desktop.exists() and not program.exists() and not (prefix / "bin" / "pacsbrowser").exists()
    assert not list(share.rglob("pacsbrowser*")) and not list(share.rglob(f"{APP_ID}*"))


def test_per_user_install_needs_no_root(tmp_path):
    args = ["--user"] if os.geteuid() == 0 else []  # root's default is system-wide
    bundle = _fake_bundle(tmp_path)
    home = tmp_path / "home"
    result = _run(bundle, *args, home=home)
    assert result.returncode == 0, result.stderr
    assert (home / ".local" / "share" / "applications" / f"{APP_ID}.desktop").is_file()
    assert (home / ".local" / "bin" / "pacsbrowser").is_symlink()
    assert (home / ".local" / "lib" / "pacsbrowser" / "pacsbrowser").is_file()


def test_system_install_refuses_without_root(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("as root --system would really write /opt and /usr/local")
    result = _run(_fake_bundle(tmp_path), "--system", home=tmp_path / "home")
    assert result.returncode == 1 and "needs root" in result.stderr
