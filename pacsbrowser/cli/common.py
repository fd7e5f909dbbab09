"""What every network sub-command shares: connection options, profile resolution, error exits."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
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
from ..core.records import (
    DEFAULT_CALLING_AE,
    DICOMwebEndpoint,
    RetryPolicy,
    ServerProfile,
    Timeouts,
    TLSConfiguration,
    WebAuth,
)
from ..core.validation import InvalidInput
from ..core.web.errors import AccessDenied, AuthenticationFailed, HTTPStatusError, NotFoundAtURL
from .inputs import (
    AE_TITLE,
    HOST,
    PORT,
    PROFILE_NAME,
    READABLE_FILE,
    RETRIES,
    SECRET_FILE,
    TIMEOUT,
    WEB_URL,
    WEB_USER,
)

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
    (AuthenticationFailed, EXIT_REJECTED),  # DICOMweb: HTTP 401 and 403 refuse us as a rejection does
    (AccessDenied, EXIT_REJECTED),
    (NotFoundAtURL, EXIT_CONNECTION),  # a wrong DICOMweb root: the server is not where we looked
    (HTTPStatusError, EXIT_DIMSE),  # any other HTTP error: the service failed
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
    web = parser.add_argument_group("DICOMweb (instead of --host, --port, --called-ae; the TLS flags apply)")
    web.add_argument("--url", type=WEB_URL, help="the DICOMweb root, e.g. https://pacs.example.org/dicom-web")
    web.add_argument("--auth", choices=("basic", "bearer"),
                     help="HTTP basic authentication (--user and a password) or a bearer token")
    web.add_argument("--user", metavar="NAME", type=WEB_USER, help="the user name for --auth basic")
    web.add_argument("--token-file", metavar="FILE", type=SECRET_FILE,
                     help="a file holding the password (basic) or the token (bearer); else the environment "
                          f"variable {SECRET_VARIABLE}, the profile's saved one, or a prompt")
    add_output_options(parser)


SECRET_VARIABLE = "PACSBROWSER_WEB_SECRET"


def _web_profile(args: argparse.Namespace, profile: ServerProfile | None) -> ServerProfile:
    """A DICOMweb profile from --url/--auth/--user/--token-file, on top of a saved one if given."""
    base = profile.web if profile is not None and profile.web is not None else None
    url = args.url or (base.base_url if base else None)
    if url is None:
        raise ConfigError("--auth, --user and --token-file are for DICOMweb: give --url or a DICOMweb --profile")
    auth = WebAuth(args.auth) if args.auth else (base.auth if base else WebAuth.NONE)
    if auth is WebAuth.NONE and (args.user or args.token_file):
        auth = WebAuth.BASIC if args.user else WebAuth.BEARER
    user = args.user or (base.username if base else "")
    token_file = args.token_file or (base.token_file if base else None)
    secret = None
    if auth is not WebAuth.NONE and token_file is None:
        secret = os.environ.get(SECRET_VARIABLE) or None
        saved = profile is not None and ProfileStore().secret_of(profile)
        if secret is None and not saved:
            what = "password" if auth is WebAuth.BASIC else "token"
            if not sys.stdin.isatty():
                raise ConfigError(f"--auth {auth.value} needs a {what}: give --token-file FILE or set {SECRET_VARIABLE}")
            secret = getpass.getpass(f"{what} for {url}: ")
    try:
        endpoint = DICOMwebEndpoint(url, auth=auth, username=user, token_file=token_file, secret=secret,
                                    qido_prefix=base.qido_prefix if base else "",
                                    wado_prefix=base.wado_prefix if base else "",
                                    stow_prefix=base.stow_prefix if base else "",
                                    page_size=base.page_size if base else 500,
                                    fuzzy_matching=base.fuzzy_matching if base else False)
    except InvalidInput as exc:
        raise ConfigError(str(exc).replace("user:", "--user:", 1)) from None
    if profile is not None:
        return replace(profile, web=endpoint) if profile.is_web else ServerProfile.dicomweb(
            profile.name, endpoint, tls=profile.tls, retry=profile.retry, timeouts=profile.timeouts)
    return ServerProfile.dicomweb("command line", endpoint, retry=RetryPolicy(max_retries=0))


def profile_from_args(args: argparse.Namespace) -> ServerProfile:
    """The profile named by --profile with any option given on top, or one made of the options
    (a DICOMweb one with --url)."""
    web_flags = [flag for flag, value in (("--url", getattr(args, "url", None)), ("--auth", getattr(args, "auth", None)),
                                          ("--user", getattr(args, "user", None)),
                                          ("--token-file", getattr(args, "token_file", None))) if value]
    dimse_flags = [flag for flag, value in (("--host", args.host), ("--port", args.port),
                                            ("--called-ae", args.called_ae)) if value not in (None, "")]
    if web_flags and dimse_flags:
        raise ConfigError(f"{web_flags[0]} (DICOMweb) and {dimse_flags[0]} (DIMSE) do not go together")
    if args.profile:
        try:
            profile = ProfileStore().get(args.profile)
        except ConfigError as exc:
            raise ConfigError(f"--profile {args.profile}: {exc}") from None
        if web_flags or profile.is_web:
            if dimse_flags and profile.is_web:
                raise ConfigError(f"--profile {args.profile} is a DICOMweb profile: {dimse_flags[0]} does not apply")
            profile = _web_profile(args, profile)
    elif web_flags:
        profile = _web_profile(args, None)
    else:
        missing = [flag for flag, value in (("--host", args.host), ("--port", args.port), ("--called-ae", args.called_ae))
                   if value in (None, "")]
        if missing:
            raise ConfigError(f"give --profile NAME, or {', '.join(missing)} (or --url URL for DICOMweb)")
        profile = ServerProfile(name="command line", host=args.host, port=args.port, called_ae=args.called_ae,
                                retry=RetryPolicy(max_retries=0))
    changes: dict[str, Any] = {}
    if args.profile and not profile.is_web:
        for key, value in (("host", args.host), ("port", args.port), ("called_ae", args.called_ae)):
            if value is not None:
                changes[key] = value
    if args.calling_ae:
        changes["calling_ae"] = args.calling_ae
    tls_flags = args.tls or args.tls_ca or args.tls_cert or args.tls_key or args.no_verify
    if profile.is_web and profile.web is not None and not profile.web.https and tls_flags:
        raise ConfigError("the TLS flags need an https:// DICOMweb URL")
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
