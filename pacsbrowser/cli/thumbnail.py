"""pacsbrowser thumbnail: one PNG per DICOM file, for scripts and checks.

    pacsbrowser thumbnail CT001.dcm CT002.dcm --size 128 --out thumbs/
    -> thumbs/CT001.png, thumbs/CT002.png

Each PNG is named after its input's file name without the extension. Objects without pixel data
(SR, PDF...) and damaged files get the grey placeholder the window shows, with its label in the
PNG's text; the exit status is 9 (partial) when a file was damaged, undecodable or missing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import warnings
from pathlib import Path

from ..core.imaging import DEFAULT_SIZE, MAX_SIZE, Kind, Thumbnail
from ..core.logs import configure_logging
from ..core.png import write_png
from ..core.thumbcache import thumbnail_to_png_text
from ..core.thumbnails import ThumbnailService, default_workers
from .common import EXIT_CANCELLED, EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, add_output_options
from .inputs import DIRECTORY, READABLE_FILE, count


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "thumbnail", help="write a PNG thumbnail of each DICOM file",
        description="Write one PNG per DICOM file, named after the file without its extension "
                    "(CT001.dcm -> CT001.png). Grey images use the file's first window, or an "
                    "automatic one; objects without an image get a grey placeholder.")
    parser.add_argument("files", nargs="+", metavar="FILE", type=READABLE_FILE, help="DICOM files")
    parser.add_argument("--size", type=count(1, MAX_SIZE), default=DEFAULT_SIZE, metavar="PIXELS",
                        help=f"length of the longer side (default {DEFAULT_SIZE})")
    parser.add_argument("--out", type=DIRECTORY, default=Path("."), metavar="DIR",
                        help="folder for the PNG files (created if needed; default: the current folder)")
    parser.add_argument("--workers", type=count(1, 64), default=None, metavar="N",
                        help=f"files decoded in parallel (default {default_workers()})")
    add_output_options(parser)
    parser.set_defaults(handler=handle)


def _describe(thumbnail: Thumbnail) -> str:
    if thumbnail.is_placeholder:
        detail = f": {thumbnail.detail}" if thumbnail.detail else ""
        return f"placeholder '{thumbnail.label}'{detail}"
    what = "RGB" if thumbnail.is_color else "grey"
    text = f"{thumbnail.width}x{thumbnail.height} {what}"
    if thumbnail.window is not None:
        w = thumbnail.window
        text += f", window {w.center:g}/{w.width:g} ({w.source})"
    if thumbnail.frames > 1:
        text += f", frame {thumbnail.frame + 1} of {thumbnail.frames}"
    return text


def handle(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose, debug=args.debug)
    if not args.debug:  # what is wrong with a file is in its line of output
        logging.getLogger("pydicom").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")
    if not 1 <= args.size <= MAX_SIZE:
        print(f"error: --size must be from 1 to {MAX_SIZE}", file=sys.stderr)
        return EXIT_ERROR
    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    targets: dict[Path, Path] = {}
    seen: dict[str, Path] = {}
    for source in args.files:
        name = source.stem + ".png"
        if name in seen and seen[name] != source:
            print(f"error: {seen[name]} and {source} would both be written to {name}", file=sys.stderr)
            return EXIT_ERROR
        seen[name] = source
        targets[source] = args.out / name
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create {args.out}: {exc}", file=sys.stderr)
        return EXIT_ERROR

    async def body() -> int:
        failed = 0
        # one file needs no worker process: render it here
        async with ThumbnailService(workers=args.workers, processes=len(targets) > 1) as service:
            async for source, thumbnail in service.thumbnails(list(targets), args.size):
                target = targets[source]
                try:
                    write_png(target, thumbnail.pixels, thumbnail_to_png_text(thumbnail))
                except OSError as exc:
                    print(f"{source}: cannot write {target}: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                line = f"{source} -> {target}: {_describe(thumbnail)}"
                if thumbnail.kind in (Kind.DAMAGED, Kind.UNSUPPORTED, Kind.MISSING):
                    failed += 1
                    print(line, file=sys.stderr)
                else:
                    print(line)
        return EXIT_PARTIAL if failed else EXIT_OK

    try:
        return asyncio.run(body())
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
