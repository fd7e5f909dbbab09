"""pacsbrowser profile add|list|show|remove: the saved server profiles, for scripts."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from ..core.config import ConfigError, ProfileStore, profile_to_dict
from ..core.records import (
    DICOMwebEndpoint,
    QueryModel,
    RetrieveMethod,
    RetryPolicy,
    ServerProfile,
    Timeouts,
    TLSConfiguration,
    WebAuth,
)
from .common import EXIT_ERROR, EXIT_OK, SECRET_VARIABLE
from .inputs import (
    AE_TITLE,
    CHARSET,
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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("profile", help="manage saved server profiles")
    sub = parser.add_subparsers(dest="profile_command", required=True)

    add = sub.add_parser("add", help="add (or with --replace, update) a profile")
    add.add_argument("name", type=PROFILE_NAME)
    add.add_argument("--host", type=HOST, help="(DIMSE) the PACS host")
    add.add_argument("--port", type=PORT, help="(DIMSE) the PACS port")
    add.add_argument("--called-ae", metavar="AE", type=AE_TITLE, help="(DIMSE) the PACS AE title")
    add.add_argument("--url", type=WEB_URL, help="(DICOMweb) the DICOMweb root, instead of --host/--port/--called-ae")
    add.add_argument("--auth", choices=("basic", "bearer"), help="(DICOMweb) HTTP basic or a bearer token")
    add.add_argument("--user", metavar="NAME", type=WEB_USER, help="(DICOMweb) the user for --auth basic")
    add.add_argument("--token-file", metavar="FILE", type=SECRET_FILE,
                     help="(DICOMweb) read the password or token from this file at each connection; without it "
                          f"the one in {SECRET_VARIABLE} (or typed at a prompt) is saved in the keyring")
    add.add_argument("--calling-ae", default="PACSBROWSER", metavar="AE", type=AE_TITLE)
    add.add_argument("--tls", action="store_true")
    add.add_argument("--tls-ca", type=READABLE_FILE, metavar="FILE")
    add.add_argument("--tls-cert", type=READABLE_FILE, metavar="FILE")
    add.add_argument("--tls-key", type=READABLE_FILE, metavar="FILE")
    add.add_argument("--no-verify", action="store_true")
    add.add_argument("--timeout", type=TIMEOUT, metavar="SECONDS")
    add.add_argument("--retries", type=RETRIES, default=2, metavar="N")
    add.add_argument("--retrieve", choices=["get", "move"], default="get", help="C-GET or C-MOVE")
    add.add_argument("--move-dest", metavar="AE", type=AE_TITLE, help="C-MOVE destination AE title (default: our calling AE)")
    add.add_argument("--listen-port", type=PORT, default=11112, metavar="P")
    add.add_argument("--query-model", choices=["study", "patient"], default="study")
    add.add_argument("--charset", default="ISO_IR 192", type=CHARSET, help="Specific Character Set sent with queries")
    add.add_argument("--fallback-charset", default="ISO_IR 100", type=CHARSET,
                     help="used to decode answers that carry no (or a wrong) character set")
    add.add_argument("--replace", action="store_true", help="overwrite a profile of the same name")
    add.set_defaults(handler=handle_add)

    sub.add_parser("list", help="list the profiles").set_defaults(handler=handle_list)
    show = sub.add_parser("show", help="show one profile")
    show.add_argument("name", type=PROFILE_NAME)
    show.set_defaults(handler=handle_show)
    remove = sub.add_parser("remove", help="remove a profile")
    remove.add_argument("name", type=PROFILE_NAME)
    remove.set_defaults(handler=handle_remove)


def _guard(fn):
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (ConfigError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return wrapper


@_guard
def handle_add(args: argparse.Namespace) -> int:
    tls = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
        tls = TLSConfiguration(certificate=args.tls_cert, key=args.tls_key, ca_certificate=args.tls_ca,
                               verify_peer=not args.no_verify)
    if args.url:
        return _add_web(args, tls)
    if args.auth or args.user or args.token_file:
        raise ConfigError("--auth, --user and --token-file are for a DICOMweb profile: give --url")
    missing = [flag for flag, value in (("--host", args.host), ("--port", args.port), ("--called-ae", args.called_ae))
               if value is None]
    if missing:
        raise ConfigError(f"give {', '.join(missing)} (or --url URL for a DICOMweb profile)")
    profile = ServerProfile(
        name=args.name, host=args.host, port=args.port, called_ae=args.called_ae, calling_ae=args.calling_ae,
        tls=tls, retry=RetryPolicy(max_retries=args.retries),
        timeouts=Timeouts.uniform(args.timeout) if args.timeout else Timeouts(),
        retrieve_method=RetrieveMethod.MOVE if args.retrieve == "move" else RetrieveMethod.GET,
        move_destination=args.move_dest, listener_port=args.listen_port,
        query_model=QueryModel(args.query_model), query_charset=args.charset, fallback_charset=args.fallback_charset,
    )
    ProfileStore().add(profile, replace_existing=args.replace)
    print(f"saved profile {profile.name!r}")
    return EXIT_OK


def _add_web(args: argparse.Namespace, tls: TLSConfiguration | None) -> int:
    dimse = [flag for flag, value in (("--host", args.host), ("--port", args.port), ("--called-ae", args.called_ae))
             if value is not None]
    if dimse:
        raise ConfigError(f"--url (DICOMweb) and {dimse[0]} (DIMSE) do not go together")
    auth = WebAuth(args.auth) if args.auth else (WebAuth.BASIC if args.user else WebAuth.NONE)
    secret = None
    if auth is not WebAuth.NONE and args.token_file is None:
        secret = os.environ.get(SECRET_VARIABLE) or None
        if secret is None:
            if not sys.stdin.isatty():
                raise ConfigError(f"--auth {auth.value} needs a password or token: give --token-file or set "
                                  f"{SECRET_VARIABLE}")
            secret = getpass.getpass("password or token (kept in the keyring): ")
    endpoint = DICOMwebEndpoint(args.url, auth=auth, username=args.user or "", token_file=args.token_file,
                                secret=secret)
    profile = ServerProfile.dicomweb(args.name, endpoint, tls=tls, retry=RetryPolicy(max_retries=args.retries),
                                     timeouts=Timeouts.uniform(args.timeout) if args.timeout else Timeouts())
    store = ProfileStore()
    store.add(profile, replace_existing=args.replace)
    kept = f"; its {'password' if auth is WebAuth.BASIC else 'token'} is kept in {store.secrets.where}" if secret else ""
    print(f"saved DICOMweb profile {profile.name!r}{kept}")
    return EXIT_OK


@_guard
def handle_list(args: argparse.Namespace) -> int:
    for p in ProfileStore().load():
        tls = " TLS" if p.tls else ""
        where = p.web.base_url if p.web is not None else f"{p.called_ae}@{p.host}:{p.port}{tls}"
        print(f"{p.name}\t{where}\t{p.retrieve_method.value}")
    return EXIT_OK


@_guard
def handle_show(args: argparse.Namespace) -> int:
    import tomli_w

    sys.stdout.write(tomli_w.dumps(profile_to_dict(ProfileStore().get(args.name))))
    return EXIT_OK


@_guard
def handle_remove(args: argparse.Namespace) -> int:
    ProfileStore().remove(args.name)
    print(f"removed profile {args.name!r}")
    return EXIT_OK
