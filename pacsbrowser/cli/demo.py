"""pacsbrowser demo: create the demo archive once, serve it on loopback as DEMO_PACS and save the
"Demo PACS" profile, until interrupted (Ctrl+C)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..core.demo import DEMO_AE, PROFILE_NAME, DemoPacs, default_demo_dir
from ..core.errors import PacsbrowserError
from .common import EXIT_ERROR, EXIT_OK, add_output_options, on_signals, run_command
from .inputs import DIRECTORY, LISTEN_PORT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="serve generated demo studies on this computer (a PACS to try the app with)",
        description=f"Create a separate archive of generated demo studies (the first time), serve it on a "
                    f"free loopback port as {DEMO_AE} and save the {PROFILE_NAME!r} profile, until "
                    f"interrupted (Ctrl+C).")
    parser.add_argument("--dir", type=DIRECTORY, metavar="DIR", help=f"the demo archive (default {default_demo_dir()})")
    parser.add_argument("--port", type=LISTEN_PORT, default=0, help="the port (default: any free one)")
    parser.add_argument("--no-profile", action="store_true", help=f"do not save the {PROFILE_NAME!r} profile")
    add_output_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    async def body() -> int:
        demo = DemoPacs(args.dir, save_profile=not args.no_profile, port=args.port)
        stop = asyncio.Event()
        with on_signals(stop.set):
            try:
                profile = await demo.start()
            except (PacsbrowserError, OSError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_ERROR
            try:
                counts = demo.archive.counts() if demo.archive is not None else {}
                print(f"listening on {profile.host}:{profile.port} as {DEMO_AE} (demo PACS: "
                      f"{counts.get('studies', 0)} studies, {counts.get('instances', 0)} instances, "
                      f"archive {demo.root})", flush=True)
                if not args.no_profile:
                    print(f"profile {PROFILE_NAME!r} saved: search it with "
                          f"pacsbrowser find --profile {PROFILE_NAME!r}", flush=True)
                await stop.wait()
            finally:
                await demo.stop()
        return EXIT_OK

    return run_command(args, body)
