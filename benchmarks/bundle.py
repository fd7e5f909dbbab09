"""The frozen bundle: its size and the time from exec to the first painted window, under Xvfb.

    python -m benchmarks.bundle dist/bundle/pacsbrowser [--reps 5]   (after `make package`)

Starts its own Xvfb (unix socket only, no TCP), runs the bundle's program with a fresh config
folder, and polls the screen (ImageMagick's `import`) until the window has painted; the program
is then terminated. Prints a markdown section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

IMPORT = "/usr/bin/import"  # ImageMagick (the real one, not a stand-in on PATH)
CONVERT = "/usr/bin/convert"


@contextmanager
def xvfb(size: str = "1280x900x24"):
    """An Xvfb server on a free display number; yields the DISPLAY value. Stopped at the end."""
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", size, "-nolisten", "tcp"],
                              pass_fds=[write], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()  # Xvfb writes it once it accepts connections
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield f":{number}"
    finally:
        stop(server)


def screen_brightness(display: str) -> float:
    """Mean grey level 0..1 of the whole screen (Xvfb's empty screen is black: 0)."""
    out = subprocess.run([IMPORT, "-display", display, "-window", "root", "-resize", "64x64!", "-colorspace",
                          "gray", "-format", "%[fx:mean]", "info:"], capture_output=True, text=True, timeout=30)
    return float(out.stdout.strip() or 0)


def wait_for_paint(display: str, process: subprocess.Popen, timeout: float = 60.0) -> float:
    """Seconds until the screen shows a painted window; raises if the process ends or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the program ended with status {process.returncode} before painting")
        if screen_brightness(display) > 0.2:
            return time.monotonic() - start
        time.sleep(0.02)
    raise TimeoutError(f"no painted window within {timeout} s")


def screenshot(display: str, path: Path) -> None:
    subprocess.run([IMPORT, "-display", display, "-window", "root", str(path)], check=True, timeout=30)


def start(program: Path, display: str, config: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "PACSBROWSER_CONFIG_DIR": str(config),
           "XDG_CONFIG_HOME": str(config), "XDG_DATA_HOME": str(config), "XDG_CACHE_HOME": str(config)}
    return subprocess.Popen([str(program), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure(program: Path, reps: int) -> list[float]:
    times = []
    with xvfb() as display:
        for _ in range(reps + 1):  # the first run warms the page cache and is not counted
            with tempfile.TemporaryDirectory() as config:
                process = start(program, display, Path(config))
                try:
                    times.append(wait_for_paint(display, process))
                finally:
                    stop(process)
    return times[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="the one-folder bundle (dist/bundle/pacsbrowser)")
    parser.add_argument("--tarball", type=Path, help="the .tar.gz of it, for its size")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another pacsbrowser program to time the same way "
                                                     "(e.g. a venv's bin/pacsbrowser)")
    args = parser.parse_args(argv)
    times = measure(args.bundle / "pacsbrowser", args.reps)
    lines = ["## The frozen bundle (`make package`, `python -m benchmarks.bundle`)", "",
             f"- one-folder bundle: {folder_size(args.bundle) / 2**20:.0f} MiB on disk"
             + (f", {args.tarball.stat().st_size / 2**20:.0f} MiB as .tar.gz" if args.tarball else ""),
             f"- exec to the first painted window, under Xvfb (warm page cache; screen polled with ImageMagick's "
             f"`import`, ~0.1 s resolution): median {statistics.median(times):.2f} s, "
             f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} runs"]
    if args.compare:
        other = measure(args.compare, args.reps)
        lines.append(f"- the same from `{args.compare}` (not frozen): median {statistics.median(other):.2f} s, "
                     f"min {min(other):.2f} s, max {max(other):.2f} s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
