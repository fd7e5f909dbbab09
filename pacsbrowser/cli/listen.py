"""pacsbrowser listen: a Storage SCP into the local archive, one line per instance received."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from ..core.archive import DEFAULT_MIN_FREE_BYTES, Archive, default_archive_dir
from ..core.errors import ArchiveError
from ..core.logs import phi, quiet_pydicom, show_phi
from ..core.records import DEFAULT_CALLING_AE, Received, TLSConfiguration
from ..core.server import ArchiveServer
from .common import EXIT_ERROR, EXIT_OK, add_output_options, on_signals, run_command
from .inputs import AE_TITLE, ANY_HOST, DIRECTORY, LISTEN_PORT, READABLE_FILE, count, size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "listen", help="receive images into the local archive (Storage SCP)",
        description="Listen for C-STORE (images pushed by a modality or sent by a PACS after a C-MOVE) "
                    "and store what arrives in the local archive, until interrupted (Ctrl+C). "
                    "`pacsbrowser serve` also serves the archive (C-FIND, C-GET, C-MOVE).")
    add_server_options(parser)
    parser.set_defaults(handler=handle)


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The options `listen` and `serve` share: address, AE title, archive, allowed callers, TLS."""
    parser.add_argument("--port", type=LISTEN_PORT, default=11112,
                        help="the port to listen on (default 11112; 0: any free port)")
    parser.add_argument("--aet", "--ae-title", dest="aet", default=DEFAULT_CALLING_AE, metavar="AE", type=AE_TITLE,
                        help=f"our AE title (default {DEFAULT_CALLING_AE})")
    parser.add_argument("--host", default="", metavar="ADDRESS", type=ANY_HOST,
                        help="the address to listen on (default: every interface)")
    parser.add_argument("--archive", type=DIRECTORY, metavar="DIR",
                        help=f"the archive folder (default {default_archive_dir()})")
    parser.add_argument("--allow", action="append", metavar="AE", default=[], type=AE_TITLE,
                        help="accept associations only from this calling AE title (repeatable)")
    parser.add_argument("--max-associations", type=count(1, 1000), default=10, metavar="N",
                        help="simultaneous associations (default 10)")
    parser.add_argument("--reserve-mb", type=size(1e9), default=DEFAULT_MIN_FREE_BYTES / 2**20, metavar="MB",
                        help="refuse images (out of resources) rather than leave less than this much disk free "
                             f"(default {DEFAULT_MIN_FREE_BYTES // 2**20})")
    group = parser.add_argument_group("TLS")
    group.add_argument("--tls-cert", type=READABLE_FILE, metavar="FILE", help="our server certificate (PEM): turns TLS on")
    group.add_argument("--tls-key", type=READABLE_FILE, metavar="FILE", help="its private key (PEM)")
    group.add_argument("--tls-ca", type=READABLE_FILE, metavar="FILE",
                       help="CA certificate(s): callers must then show a client certificate it signed")
    group.add_argument("--tls-verify-clients", action="store_true",
                       help="callers must show a client certificate (signed by --tls-ca, which it needs)")
    add_output_options(parser)


def describe(record: Received) -> str:
    """One line per instance: no patient data unless --verbose."""
    from pydicom.uid import UID

    stamp = time.strftime("%H:%M:%S", time.localtime(record.received_at))
    sop_class = UID(record.sop_class_uid).name if record.sop_class_uid else "?"
    line = (f"{stamp} {record.calling_ae:<16} {record.modality or '--':<3} {sop_class} "
            f"{record.sop_instance_uid} {record.size} bytes")
    if record.replaced:
        line += " (replaced an earlier copy)"
    if show_phi():
        line += f" patient {phi(record.patient_name)} ({phi(record.patient_id)})"
    return line


def handle(args: argparse.Namespace) -> int:
    return run_server(args)


def run_server(args: argparse.Namespace, *, query_retrieve: bool = False,
               destinations: dict[str, tuple[str, int]] | None = None) -> int:
    """Run our SCP with `args` (add_server_options) until interrupted; storage only unless `query_retrieve`."""
    if (args.tls_cert is None) != (args.tls_key is None):
        print("error: --tls-cert and --tls-key go together", file=sys.stderr)
        return EXIT_ERROR
    if args.tls_ca is not None and args.tls_cert is None:
        print("error: --tls-ca needs --tls-cert and --tls-key", file=sys.stderr)
        return EXIT_ERROR
    if args.tls_verify_clients and args.tls_cert is None:
        print("error: --tls-verify-clients needs --tls-cert and --tls-key", file=sys.stderr)
        return EXIT_ERROR
    # Callers are verified when a CA is given (or asked for: without a CA that is refused, in words).
    tls = (TLSConfiguration(certificate=args.tls_cert, key=args.tls_key, ca_certificate=args.tls_ca,
                            verify_peer=args.tls_ca is not None or args.tls_verify_clients)
           if args.tls_cert else None)

    async def body() -> int:
        quiet_pydicom(not args.debug)
        try:
            archive = Archive(args.archive, min_free_bytes=max(0, int(args.reserve_mb * 2**20)))
        except ArchiveError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        try:
            scp = ArchiveServer(args.port, args.aet, archive, tls=tls, allowed_calling_aes=args.allow or None,
                                max_associations=args.max_associations, host=args.host,
                                query_retrieve=query_retrieve, destinations=destinations,
                                on_image_received=lambda record: print(describe(record), flush=True))
        except ValueError as exc:
            archive.close()
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        stop = asyncio.Event()
        with on_signals(stop.set):
            try:
                await scp.start()
                host, port = scp.address
                scheme = "TLS" if tls else "plain TCP"
                allowed = f", calling AEs {', '.join(args.allow)}" if args.allow else ""
                roles = "storage, query/retrieve" if query_retrieve else "storage"
                print(f"listening on {host or '*'}:{port} as {scp.ae_title} ({scheme}{allowed}; {roles}), "
                      f"archive {archive.root}", flush=True)
                if query_retrieve:
                    moves = ", ".join(f"{ae}={h}:{p}" for ae, (h, p) in (destinations or {}).items())
                    print(f"move destinations: {moves or 'none'}", flush=True)
                await stop.wait()
            finally:
                await scp.stop()
                stats = scp.stats
                archive.close()
        print(f"stopped: {stats.stored} instances stored, {stats.failed} refused, "
              f"{stats.rejected} associations rejected", file=sys.stderr, flush=True)
        return EXIT_OK

    return run_command(args, body)
