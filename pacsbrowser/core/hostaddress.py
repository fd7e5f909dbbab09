"""The address a PACS would use to reach our listener (what to register for C-MOVE)."""

from __future__ import annotations

import socket

_ANY = ("", "0.0.0.0", "::")
_TEST_NET = ("192.0.2.1", 104)  # RFC 5737: never routed; a UDP connect only picks the outgoing interface


def address_for_peers(bound_host: str) -> str:
    """The listener's own address when it is bound to one; otherwise this computer's address on
    the network it reaches other hosts through (no packet is sent to find it), or its host name's
    address, or loopback when it has no other."""
    if bound_host not in _ANY:
        return bound_host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(_TEST_NET)
            address = probe.getsockname()[0]
            if address and address != "0.0.0.0":
                return address
    except OSError:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def address_towards(host: str, port: int) -> str | None:
    """The local address this computer's connections to `host` leave from (the address `host`
    reaches us on, NAT aside), from the routing table: a UDP socket 'connected' to it sends no
    packet. None when it cannot be told (the name does not resolve, no route). Blocking (DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first, as pynetdicom connects to a name
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.connect(address)
                local = str(probe.getsockname()[0])
        except OSError:
            continue
        if local and local not in _ANY:
            return local
    return None
