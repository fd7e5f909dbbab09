"""A TLS front for a plain-HTTP peer on loopback: `python -m tests.lab.tls_proxy --listen PORT
--target PORT --cert PEM --key PEM [--client-ca PEM]`.

Why: Debian 12's Orthanc 1.10.1 serves HTTPS through the system civetweb 1.15, which calls an
OpenSSL function it could not load from OpenSSL 3 (a NULL function pointer): Orthanc crashes
(SIGSEGV in a civetweb worker) on the first HTTPS request with SslEnabled. The lab therefore puts
this process in front of Orthanc's plain HTTP port: TLS with the lab's server certificate, and with
`--client-ca` a client certificate signed by that CA is required (what Orthanc's SslVerifyPeers
would do). Authentication stays Orthanc's own (RegisteredUsers). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl

LOOPBACK = "127.0.0.1"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, done: asyncio.Event) -> None:
    try:
        while not done.is_set():
            data = await reader.read(256 * 1024)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        done.set()
        writer.close()


async def _serve(listen: int, target: int, context: ssl.SSLContext) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, target), 10)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return
        done = asyncio.Event()
        await asyncio.gather(_pipe(reader, target_writer, done), _pipe(target_reader, writer, done))

    server = await asyncio.start_server(handle, LOOPBACK, listen, ssl=context, ssl_handshake_timeout=10)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca")
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.client_ca)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.listen, args.target, context))


if __name__ == "__main__":
    main()
