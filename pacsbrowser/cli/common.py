"""What every network sub-command shares: connection options, profile resolution, error exits."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ..core.config import ConfigError, ProfileStore
from ..core.errors import (
    AssociationAborted,
    AssociationRejected,
    Cancelled,
    ConnectionFailed,
    DICOMNetworkError,
    DIMSEError,
    Timeout,
    TLSError,
)
from ..core.logs import configure_logging
from ..core.records import DEFAULT_CALLING_AE, RetryPolicy, ServerProfile, Timeouts, TLSConfiguration
from ..core.validation import InvalidInput
from .inputs import AE_TITLE, HOST, PORT, PROFILE_NAME, READABLE_FILE, RETRIES, TIMEOUT

# Exit statuses, one per kind of failure, so scripts can tell them apart.
EXIT_OK = 0
EXIT_ERROR = 1  # bad input, configuration
EXIT_USAGE = 2  # argparse's own
EXIT_CONNECTION = 3
EXIT_TIMEOUT = 4
EXIT_REJECTED = 5
EXIT_TLS = 6
EXIT_DIMSE = 7
EXIT_ABORTED = 8
EXIT_PARTIAL = 9  # some items done, some failed or skipped
EXIT_CANCELLED = 130

_EXIT_BY_ERROR: list[tuple[type[DICOMNetworkError], int]] = [
    (TLSError, EXIT_TLS),
    (ConnectionFailed, EXIT_CONNECTION),
    (Timeout, EXIT_TIMEOUT),
    (AssociationRejected, EXIT_REJECTED),
    (DIMSEError, EXIT_DIMSE),
    (AssociationAborted, EXIT_ABORTED),
    (Cancelled, EXIT_CANCELLED),
]


def exit_status(error: DICOMNetworkError) -> int:
    for cls, code in _EXIT_BY_ERROR:
        if isinstance(error, cls):
            return code
    return EXIT_ERROR


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show patient names and IDs, and more detail on errors")
    parser.add_argument("--debug", action="store_true",
                        help="log the DICOM conversation (pynetdicom's log, identifiers included)")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (or --profile NAME)")
    group.add_argument("--profile", metavar="NAME", type=PROFILE_NAME,
                       help="a saved server profile (see: pacsbrowser profile list)")
    group.add_argument("--host", type=HOST, help="the PACS host name or address")
    group.add_argument("--port", type=PORT, help="the PACS port")
    group.add_argument("--called-ae", metavar="AE", type=AE_TITLE, help="the PACS AE title")
    group.add_argument("--calling-ae", metavar="AE", type=AE_TITLE, help=f"our AE title (default {DEFAULT_CALLING_AE})")
    group.add_argument("--tls", action="store_true", help="use TLS")
    group.add_argument("--tls-ca", metavar="FILE", type=READABLE_FILE, help="CA certificate(s) to trust (PEM)")
    group.add_argument("--tls-cert", metavar="FILE", type=READABLE_FILE, help="our client certificate (PEM)")
    group.add_argument("--tls-key", metavar="FILE", type=READABLE_FILE,
                       help="our client certificate's private key (PEM)")
    group.add_argument("--no-verify", action="store_true", help="do not verify the server's certificate")
    group.add_argument("--timeout", metavar="SECONDS", type=TIMEOUT, help="connect, association and DIMSE timeout")
    group.add_argument("--retries", metavar="N", type=RETRIES,
                       help="retries of the association (default: profile's, or 0)")
    add_output_options(parser)


def profile_from_args(args: argparse.Namespace) -> ServerProfile:
    """The profile named by --profile with any option given on top, or one made of the options."""
    if args.profile:
        try:
            profile = ProfileStore().get(args.profile)
        except ConfigError as exc:
            raise ConfigError(f"--profile {args.profile}: {exc}") from None
    else:
        missing = [flag for flag, value in (("--host", args.host), ("--port", args.port), ("--called-ae", args.called_ae))
                   if value in (None, "")]
        if missing:
            raise ConfigError(f"give --profile NAME, or {', '.join(missing)}")
        profile = ServerProfile(name="command line", host=args.host, port=args.port, called_ae=args.called_ae,
                                retry=RetryPolicy(max_retries=0))
    changes: dict[str, Any] = {}
    if args.profile:
        for key, value in (("host", args.host), ("port", args.port), ("called_ae", args.called_ae)):
            if value is not None:
                changes[key] = value
    if args.calling_ae:
        changes["calling_ae"] = args.calling_ae
    tls_flags = args.tls or args.tls_ca or args.tls_cert or args.tls_key or args.no_verify
    if tls_flags:
        base = profile.tls or TLSConfiguration()
        if (args.tls_cert or base.certificate) and not (args.tls_key or base.key) or \
                (args.tls_key or base.key) and not (args.tls_cert or base.certificate):
            raise ConfigError("--tls-cert and --tls-key go together (a certificate needs its private key)")
        changes["tls"] = replace(
            base,
            ca_certificate=args.tls_ca or base.ca_certificate,
            certificate=args.tls_cert or base.certificate,
            key=args.tls_key or base.key,
            verify_peer=False if args.no_verify else base.verify_peer,
        )
    if args.timeout is not None:
        changes["timeouts"] = Timeouts.uniform(args.timeout)
    if args.retries is not None:
        changes["retry"] = replace(profile.retry, max_retries=args.retries)
    try:
        return replace(profile, **changes) if changes else profile
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def run_command(args: argparse.Namespace, body: Callable[[], Awaitable[int]]) -> int:
    """Run an async command body: typed errors become one line on stderr and their exit status."""
    configure_logging(verbose=getattr(args, "verbose", False), debug=getattr(args, "debug", False))
    try:
        return asyncio.run(body())
    except (ConfigError, InvalidInput) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except DICOMNetworkError as exc:
        line = f"error: {exc}"
        if getattr(args, "verbose", False) and exc.detail:
            line += f"\n  detail: {exc.detail}"
        print(line, file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED


@contextmanager
def on_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Within the block, Ctrl+C (SIGINT) and SIGTERM call `callback` on the running loop instead of
    interrupting it (where the platform allows signal handlers on the loop)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, callback)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
