"""pacsbrowser echo: C-ECHO (or, for DICOMweb, the smallest QIDO-RS query), one line with the
round-trip time."""

from __future__ import annotations

import argparse
import time

from ..core.client import DICOMClient, VerificationService
from ..core.services import verify
from .common import EXIT_OK, add_connection_options, profile_from_args, run_command
from .inputs import count


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("echo", help="check that a PACS answers (C-ECHO)",
                                   description="Send a C-ECHO and print the round-trip time.")
    add_connection_options(parser)
    parser.add_argument("--count", type=count(1, 1000), default=1, metavar="N", help="echoes on the one association (default 1)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    async def body() -> int:
        profile = profile_from_args(args)
        if profile.is_web and profile.web is not None:
            times = [await verify(profile) for _ in range(max(1, args.count))]
            line = f"QIDO-RS echo to {profile.web.base_url} succeeded: round trip {min(times) * 1000:.1f} ms"
            if len(times) > 1:
                line += f" (best of {len(times)}, median {sorted(times)[len(times) // 2] * 1000:.1f} ms)"
            print(line)
            return EXIT_OK
        client = DICOMClient.from_profile(profile)
        started = time.perf_counter()
        async with client:
            associated = time.perf_counter() - started
            times = [await VerificationService(client).verify() for _ in range(max(1, args.count))]
        scheme = "TLS" if profile.tls else "plain TCP"
        best = min(times) * 1000
        line = (f"C-ECHO to {profile.called_ae}@{profile.host}:{profile.port} ({scheme}) succeeded: "
                f"round trip {best:.1f} ms")
        if len(times) > 1:
            line += f" (best of {len(times)}, median {sorted(times)[len(times) // 2] * 1000:.1f} ms)"
        line += f", association {associated * 1000:.0f} ms"
        print(line)
        return EXIT_OK

    return run_command(args, body)
