"""Hostile peers against our SCP (the server of `pacsbrowser listen` and `serve`): malformed,
truncated, oversized and random PDUs (hypothesis), a flood of connections that never speak, and
associations that stop or abort at every step (after A-ASSOCIATE-RQ, mid P-DATA of a C-STORE, mid
C-FIND answers, mid C-GET and C-MOVE, during release).

After each: the server has not crashed or hung, every association thread and slot is free within
the network timeout and a few seconds, the archive is whole (nothing half-written listed, nothing
written outside it), and DCMTK's storescu is still served. The peers are raw sockets speaking PDUs
byte by byte (tests/lab/rawpdu.py); the lab is tests/serve/hostile.py.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lab import rawpdu
from tests.lab.data import Catalog

from .hostile import (
    ABORTING_DESTINATION,
    CT,
    FIND,
    GET,
    GOOD_DESTINATION,
    MAX_ASSOCIATIONS,
    MOVE,
    SERVER_AE,
    SLOW_DESTINATION,
    SLOW_STORE,
    SYNTAXES,
    TIMEOUTS,
    HostileLab,
    identifier,
    start_lab,
    stop_lab,
)

# A pynetdicom thread dying of an exception (a traceback on the console of `pacsbrowser listen`)
# fails the test too.
pytestmark = [pytest.mark.interop, pytest.mark.timeout(120),
              pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")]


def _biggest_studies(catalog: Catalog, count: int) -> list[str]:
    """The lab studies with the most uncompressed bytes (C-GET answers that take a while)."""
    sizes: dict[str, int] = {}
    for instance in catalog.instances:
        if not instance.is_compressed:
            sizes[instance.study_uid] = sizes.get(instance.study_uid, 0) + instance.path.stat().st_size
    return sorted(sizes, key=sizes.__getitem__, reverse=True)[:count]


@pytest.fixture(scope="module")
def lab(lab_data: Catalog) -> Iterator[HostileLab]:
    made = start_lab(lab_data, _biggest_studies(lab_data, 3))
    try:
        yield made
    finally:
        stop_lab(made)


@pytest.fixture
def hostile(lab: HostileLab) -> Iterator[HostileLab]:
    """The lab, checked before the test (nothing left from the last one) and recovered after it."""
    lab.wait_freed()
    failed_before = lab.server.stats.failed
    yield lab
    freed = lab.assert_recovered()
    print(f" [freed after {freed:.2f} s]", end="")
    assert lab.server.stats.failed == failed_before, lab.server.stats.last_failure  # nothing refused half-way


def _study(lab: HostileLab) -> tuple[str, list]:
    study = _biggest_studies(lab.catalog, 1)[0]
    return study, [i for i in lab.catalog.instances_of_study(study)]


def _store_pdus(lab: HostileLab, size: int = 120_000, context_id: int = 9) -> tuple[str, list[bytes]]:
    """The P-DATA PDUs of a C-STORE of a new CT image of about `size` bytes (16 KiB PDUs)."""
    from tests.archive.helpers import make_dataset

    ds = make_dataset(extra_bytes=size, patient_id="HOSTILE2", name="HOSTILE^HALF")
    return ds.SOPInstanceUID, rawpdu.command_pdus(rawpdu.c_store(ds), context_id, 16384)


# ------------------------------------------------------------------------------------ before
# the association: bytes that never make an A-ASSOCIATE-RQ


def test_a_flood_of_silent_connections_leaves_storescu_served(hostile: HostileLab):
    """Ten times as many connections as association slots, none saying a word: storescu is served
    while they hang on, and they are all gone after the ACSE timeout."""
    peers = [hostile.connect() for _ in range(10 * MAX_ASSOCIATIONS)]
    try:
        time.sleep(0.3)  # accepted
        started = time.monotonic()
        hostile.storescu()
        print(f"\nstorescu during a flood of {len(peers)} silent connections: {time.monotonic() - started:.2f} s",
              end="")
        gone = sum(peer.closed_by_peer(TIMEOUTS.acse + 5.0) for peer in peers)
        assert gone == len(peers), f"{len(peers) - gone} silent connections are still open"
    finally:
        for peer in peers:
            peer.close()


def test_the_association_slots_are_for_associations(hostile: HostileLab):
    """Silent connections do not take association slots: MAX_ASSOCIATIONS real associations are
    accepted beside them."""
    silent = [hostile.connect() for _ in range(2 * MAX_ASSOCIATIONS)]
    held = []
    try:
        time.sleep(0.3)
        for _ in range(MAX_ASSOCIATIONS):
            held.append(hostile.associate()[0])
    finally:
        for peer in held:
            peer.release(timeout=5)
            peer.close()
        for peer in silent:
            peer.close()


@pytest.mark.parametrize("sent", [
    pytest.param(b"\x01\x00\x00", id="3 bytes of a header"),
    pytest.param(rawpdu.header(0x01, 400) + b"\x00\x01", id="header and 2 bytes of an A-ASSOCIATE-RQ"),
    pytest.param(rawpdu.header(0x01, 0xFFFFFFF0) + b"x" * 1000, id="a 4 GB length and 1000 bytes"),
    pytest.param(rawpdu.header(0x04, 0x10000000) + b"\x00" * 10, id="a 256 MB P-DATA before the association"),
])
def test_a_truncated_pdu_then_silence(hostile: HostileLab, sent: bytes):
    """A peer that starts a PDU and goes quiet (a dead link, or slowloris): the connection is closed
    within the bound, not held forever by a read that waits for the rest."""
    with hostile.connect() as peer:
        peer.send(sent)
        assert peer.closed_by_peer(TIMEOUTS.network + 5.0), "the server still waits for the rest of the PDU"


@pytest.mark.parametrize("pdu_type", [0x01, 0x04, 0x07])
def test_an_oversized_pdu_is_refused_before_it_fills_memory(hostile: HostileLab, pdu_type: int):
    """A PDU header announcing 2 GB, then data as fast as loopback goes: the server stops reading
    and closes (A-ABORT) after at most about a megabyte, and its memory does not grow with it."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sent = 0
    block = b"\x00" * (1 << 20)
    with hostile.connect() as peer:
        if pdu_type == 0x04:
            peer.associate(SERVER_AE, [(1, CT, SYNTAXES)], max_pdu=16384)
        peer.send(rawpdu.header(pdu_type, 0x7FFFFFF0))
        try:
            while sent < (512 << 20):
                peer.send(block)
                sent += len(block)
        except OSError:
            pass
        closed = peer.closed_by_peer(5.0)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"\noversized PDU type 0x{pdu_type:02X}: the server took {sent >> 20} MB before closing; "
          f"peak memory grew {grown:.0f} MB", end="")
    assert sent < (64 << 20), f"the server read {sent >> 20} MB of one PDU"
    assert closed
    assert grown < 100, f"peak memory grew {grown:.0f} MB"


def test_an_endless_command_set_is_refused(hostile: HostileLab):
    """P-DATA PDUs of the allowed size whose command fragments never end (a command set is a few
    hundred bytes): the server stops after a bounded amount instead of buffering all of it."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fragment = rawpdu.p_data(rawpdu.pdv(1, b"\x00" * 16000, command=True, last=False))
    sent = 0
    with hostile.connect() as peer:
        peer.associate(SERVER_AE, [(1, CT, SYNTAXES)], max_pdu=16384)
        try:
            while sent < (300 << 20):
                peer.send(fragment * 64)
                sent += len(fragment) * 64
        except OSError:
            pass
        closed = peer.closed_by_peer(5.0)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"\nendless command set: the server took {sent >> 20} MB; peak memory grew {grown:.0f} MB", end="")
    assert sent < (64 << 20), f"the server read {sent >> 20} MB of one command set"
    assert closed
    assert grown < 100, f"peak memory grew {grown:.0f} MB"


# ------------------------------------------------------------------------------ association steps


def _after_rq(how: str) -> Callable[[HostileLab], None]:
    def act(lab: HostileLab) -> None:
        peer = lab.connect()
        peer.send(rawpdu.associate_rq(SERVER_AE, "HOSTILE", [(1, CT, SYNTAXES)]))
        if how == "abort":
            peer.send(rawpdu.abort())
        if how == "reset":
            peer.reset()
        elif how == "silent":
            assert peer.read_pdu() is not None  # the A-ASSOCIATE-AC; then nothing, until the network timeout
            assert peer.closed_by_peer(TIMEOUTS.network + 5.0)
        peer.close()
    return act


def _mid_store(how: str) -> Callable[[HostileLab], None]:
    def act(lab: HostileLab) -> None:
        peer, accepted = lab.associate()
        assert 9 in accepted
        _, pdus = _store_pdus(lab)
        assert len(pdus) > 4
        for item in pdus[:3]:
            peer.send(item)
        peer.send(pdus[3][:100])  # part of the next PDU
        if how == "abort":
            peer.send(rawpdu.abort())
        elif how == "reset":
            peer.reset()
        elif how == "silent":
            assert peer.closed_by_peer(TIMEOUTS.network + 5.0)
        elif how == "release":  # A-RELEASE-RQ in place of the rest: a broken PDU stream
            peer.send(rawpdu.release_rq())
            peer.closed_by_peer(TIMEOUTS.network + 5.0)
        peer.close()
    return act


def _mid_store_between_pdus(how: str) -> Callable[[HostileLab], None]:
    def act(lab: HostileLab) -> None:
        peer, _ = lab.associate()
        _, pdus = _store_pdus(lab)
        for item in pdus[:3]:
            peer.send(item)
        if how == "abort":
            peer.send(rawpdu.abort())
        elif how == "release":  # a release with a message half sent
            peer.release(timeout=TIMEOUTS.network + 5.0)
        elif how == "close":
            pass
        peer.close()
    return act


def _mid_find(how: str) -> Callable[[HostileLab], None]:
    def act(lab: HostileLab) -> None:
        peer, _ = lab.associate()
        peer.send_message(rawpdu.c_find(FIND, identifier("SERIES", StudyInstanceUID="", SeriesInstanceUID="")), 3)
        first = peer.read_message()
        assert first is not None and first.status == 0xFF00
        if how == "abort":
            peer.send(rawpdu.abort())
        elif how == "reset":
            peer.reset()
        elif how == "release":  # A-RELEASE-RQ while answers are coming
            peer.send(rawpdu.release_rq())
            peer.closed_by_peer(TIMEOUTS.network + 5.0)
        elif how == "cancel-then-abort":
            peer.send_message(rawpdu.c_cancel(1), 3)
            peer.send(rawpdu.abort())
        peer.close()
    return act


def _mid_get(how: str) -> Callable[[HostileLab], None]:
    def act(lab: HostileLab) -> None:
        study, instances = _study(lab)
        classes = sorted({i.sop_class_uid for i in instances})
        proposals = [(5, GET, SYNTAXES)] + [(7 + 2 * n, uid, SYNTAXES) for n, uid in enumerate(classes)]
        peer, accepted = lab.associate(proposals, roles=[(uid, False, True) for uid in classes])
        assert len(accepted) == len(proposals)
        peer.send_message(rawpdu.c_get(GET, identifier("STUDY", StudyInstanceUID=study)), 5)
        store = peer.read_message()
        assert store is not None and store.command_field == 0x0001, "no C-STORE sub-operation came"
        if how == "answer-then-abort":
            peer.send_message(rawpdu.c_store_response(store.command), store.context_id)
            store = peer.read_message()
            assert store is not None
        if how in ("abort", "answer-then-abort"):
            peer.send(rawpdu.abort())
        elif how == "reset":
            peer.reset()
        elif how == "no-answer":  # never answers the sub-operation: the DIMSE timeout ends it
            assert peer.closed_by_peer(TIMEOUTS.dimse + TIMEOUTS.network + 5.0)
        elif how == "release":
            peer.send(rawpdu.release_rq())
            peer.closed_by_peer(TIMEOUTS.dimse + TIMEOUTS.network + 5.0)
        peer.close()
    return act


def _stop_reading_get(lab: HostileLab) -> None:
    """A C-GET requester whose receive window closes (a frozen link, or a peer that stops reading):
    the server's sends stall; it must give up within its timeouts, not block forever."""
    study, instances = _study(lab)
    classes = sorted({i.sop_class_uid for i in instances})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((lab.host, lab.port))
    peer = rawpdu.RawPeer(sock)
    proposals = [(5, GET, SYNTAXES)] + [(7 + 2 * n, uid, SYNTAXES) for n, uid in enumerate(classes)]
    peer.associate(SERVER_AE, proposals, roles=[(uid, False, True) for uid in classes], max_pdu=0)
    peer.send_message(rawpdu.c_get(GET, identifier("STUDY", StudyInstanceUID=study)), 5)
    time.sleep(0.5)  # the server writes until the window is shut
    try:
        lab.wait_freed()
    finally:
        peer.reset()


def _mid_move(how: str, destination: str = GOOD_DESTINATION) -> Callable[[HostileLab], None]:
    def act(lab: HostileLab) -> None:
        study, instances = _study(lab)
        peer, _ = lab.associate()
        peer.send_message(rawpdu.c_move(MOVE, identifier("STUDY", StudyInstanceUID=study), destination), 7)
        if how == "slow-destination":
            # Serving the C-MOVE takes longer than the network timeout while the requester, rightly,
            # says nothing: its association is not idle, and is released, not aborted, afterwards
            # (it was aborted when the timeout counted from the last byte received: CI saw it with
            # the aborting destination, whose sub-operation waited out a DIMSE timeout).
            assert len(instances) * SLOW_STORE > TIMEOUTS.network * 1.5
            while True:
                message = peer.read_message(timeout=TIMEOUTS.dimse * 4)
                assert message is not None, "no final C-MOVE response"
                if message.status != 0xFF00:
                    break
            assert message.status == 0x0000, hex(message.status)
            time.sleep(0.2)  # the reactor's turn after the final response comes first
            assert peer.release(timeout=10), "aborted instead of released"
        elif how == "destination-aborts":  # the destination aborts its association part-way
            final = None
            while True:
                message = peer.read_message(timeout=TIMEOUTS.dimse * 4)
                assert message is not None, "no final C-MOVE response"
                if message.status not in (0xFF00,):
                    final = message
                    break
            assert final.status in (0xA702, 0xB000, 0xA701, 0xA700, 0xC000, 0x0110) or final.status >= 0xA000, \
                hex(final.status)
            assert final.command.get("NumberOfCompletedSuboperations", 0) < len(instances)
            assert peer.release(timeout=10)
        else:
            first = peer.read_message()
            assert first is not None and first.status == 0xFF00, first
            if how == "abort":
                peer.send(rawpdu.abort())
            elif how == "reset":
                peer.reset()
            elif how == "release":
                peer.send(rawpdu.release_rq())
                peer.closed_by_peer(TIMEOUTS.network + 5.0)
        peer.close()
    return act


def _release(how: str) -> Callable[[HostileLab], None]:
    def act(lab: HostileLab) -> None:
        peer, _ = lab.associate()
        if how == "rq-then-close":
            peer.send(rawpdu.release_rq())
        elif how == "rq-then-abort":
            peer.send(rawpdu.release_rq())
            peer.send(rawpdu.abort())
        elif how == "rq-twice":
            peer.send(rawpdu.release_rq() + rawpdu.release_rq())
            peer.closed_by_peer(TIMEOUTS.network + 5.0)
        elif how == "unsolicited-rp":
            peer.send(rawpdu.release_rp())
            peer.closed_by_peer(TIMEOUTS.network + 5.0)
        elif how == "rq-no-close":  # asks for release, reads the RP, keeps the connection open
            assert peer.release(timeout=5)
            peer.closed_by_peer(TIMEOUTS.network + 5.0)
        elif how == "close-without-release":
            pass
        peer.close()
    return act


def _unexpected(sent: bytes) -> Callable[[HostileLab], None]:
    def act(lab: HostileLab) -> None:
        peer, _ = lab.associate()
        peer.send(sent)
        peer.closed_by_peer(TIMEOUTS.network + 5.0)
        peer.close()
    return act


_ECHO_COMMAND = rawpdu.command_pdus(rawpdu.c_echo(), 1)[0][6 + 6:]  # the command set bytes of a C-ECHO-RQ

SCENARIOS: dict[str, Callable[[HostileLab], None]] = {
    "A-ASSOCIATE-RQ then close": _after_rq("close"),
    "A-ASSOCIATE-RQ then A-ABORT": _after_rq("abort"),
    "A-ASSOCIATE-RQ then reset": _after_rq("reset"),
    "associated then silent": _after_rq("silent"),
    "C-STORE mid-PDU then A-ABORT": _mid_store("abort"),
    "C-STORE mid-PDU then reset": _mid_store("reset"),
    "C-STORE mid-PDU then silent": _mid_store("silent"),
    "C-STORE mid-PDU then A-RELEASE-RQ": _mid_store("release"),
    "C-STORE between PDUs then A-ABORT": _mid_store_between_pdus("abort"),
    "C-STORE between PDUs then release": _mid_store_between_pdus("release"),
    "C-STORE between PDUs then close": _mid_store_between_pdus("close"),
    "C-FIND answers then A-ABORT": _mid_find("abort"),
    "C-FIND answers then reset": _mid_find("reset"),
    "C-FIND answers then A-RELEASE-RQ": _mid_find("release"),
    "C-FIND C-CANCEL then A-ABORT": _mid_find("cancel-then-abort"),
    "C-GET sub-operation then A-ABORT": _mid_get("abort"),
    "C-GET one answered then A-ABORT": _mid_get("answer-then-abort"),
    "C-GET sub-operation then reset": _mid_get("reset"),
    "C-GET sub-operation never answered": _mid_get("no-answer"),
    "C-GET sub-operation then A-RELEASE-RQ": _mid_get("release"),
    "C-GET requester stops reading": _stop_reading_get,
    "C-MOVE pending then A-ABORT": _mid_move("abort"),
    "C-MOVE pending then reset": _mid_move("reset"),
    "C-MOVE pending then A-RELEASE-RQ": _mid_move("release"),
    "C-MOVE destination aborts": _mid_move("destination-aborts", ABORTING_DESTINATION),
    "C-MOVE longer than the network timeout": _mid_move("slow-destination", SLOW_DESTINATION),
    "release RQ then close": _release("rq-then-close"),
    "release RQ then A-ABORT": _release("rq-then-abort"),
    "release RQ twice": _release("rq-twice"),
    "unsolicited release RP": _release("unsolicited-rp"),
    "released, connection kept open": _release("rq-no-close"),
    "closed without release": _release("close-without-release"),
    "A-ASSOCIATE-RQ again": _unexpected(rawpdu.associate_rq(SERVER_AE, "HOSTILE", [(1, CT, SYNTAXES)])),
    "unknown PDU type 0x09": _unexpected(rawpdu.pdu(0x09, b"\x00" * 8)),
    "P-DATA on an unknown context": _unexpected(rawpdu.p_data(rawpdu.pdv(99, _ECHO_COMMAND, command=True, last=True))),
    "P-DATA data before command": _unexpected(rawpdu.p_data(rawpdu.pdv(9, b"\x00" * 64, command=False, last=True))),
    "P-DATA item longer than its PDU": _unexpected(rawpdu.pdu(0x04, rawpdu.pdv(1, b"\x00" * 8, command=True,
                                                                               last=True)[:-4])),
    "P-DATA garbage command set": _unexpected(rawpdu.p_data(rawpdu.pdv(1, b"\xff" * 40, command=True, last=True))),
    "P-DATA empty": _unexpected(rawpdu.pdu(0x04, b"")),
    "A-ASSOCIATE-AC to the acceptor": _unexpected(rawpdu.pdu(0x02, b"\x00" * 68)),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_peer_that_stops_or_aborts_at_any_step(hostile: HostileLab, scenario: str):
    started = time.monotonic()
    SCENARIOS[scenario](hostile)
    print(f"\n{scenario}: {time.monotonic() - started:.2f} s", end="")


def test_a_stored_half_never_reaches_the_archive(hostile: HostileLab):
    """The SOP instance of a C-STORE cut mid P-DATA is not indexed and has no file, not even a
    temporary one (checked by the fixture too, for every scenario)."""
    uid, pdus = _store_pdus(hostile)
    peer, _ = hostile.associate()
    for item in pdus[:-1]:
        peer.send(item)
    peer.send(pdus[-1][:-1000])  # (more than the A-ABORT's 10 bytes, which would complete it)
    peer.send(rawpdu.abort())
    peer.close()
    hostile.wait_freed()
    hostile.archive.flush()
    assert hostile.archive.instance(uid) is None
    assert not [p for p in hostile.archive.root.rglob("*") if uid in p.name]


# ------------------------------------------------------------------------------ property-based


@pytest.fixture
def fuzzed(lab: HostileLab) -> Iterator[HostileLab]:
    """The lab for a hypothesis test: storescu keeps sending in the background while the examples
    run; afterwards the usual checks."""
    lab.wait_freed()
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_storing() -> None:
        while not stop.is_set():
            try:
                lab.storescu(calling="BACKGROUND")
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                failures.append(exc)
                return
            stop.wait(0.2)

    thread = threading.Thread(target=keep_storing, name="hostile-storescu", daemon=True)
    thread.start()
    before = lab.sent_by_storescu
    try:
        yield lab
    finally:
        stop.set()
        thread.join(60)
    assert not failures, f"storescu failed while hostile bytes were coming: {failures[0]}"
    assert lab.sent_by_storescu > before, "storescu never got through"
    print(f" [storescu stored {lab.sent_by_storescu - before} images meanwhile]", end="")
    lab.assert_recovered()


FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _send_and_hang_up(lab: HostileLab, data: bytes, associate: bool = False) -> None:
    """Send `data` (after an association when asked), half-close, and wait (bounded) for the
    server to close its side."""
    if associate:
        peer, _ = lab.associate()
    else:
        peer = lab.connect()
    with peer:
        try:
            peer.send(data)
            peer.sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server closed first: fine
            return
        assert peer.closed_by_peer(TIMEOUTS.network + 5.0), f"the server kept the connection after {data[:40]!r}"


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_instead_of_an_association(fuzzed: HostileLab, data: bytes):
    _send_and_hang_up(fuzzed, data)


@st.composite
def mangled_associate_rq(draw) -> bytes:
    """A valid A-ASSOCIATE-RQ with bytes changed, cut or inserted, or its lengths lying."""
    proposals = [(1, CT, SYNTAXES), (3, FIND, SYNTAXES), (5, GET, SYNTAXES)]
    data = bytearray(rawpdu.associate_rq(SERVER_AE, draw(st.sampled_from(["HOSTILE", "X", "A" * 16])),
                                         proposals))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if kind == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            at = draw(st.integers(0, len(data)))
            data = data[:at] + data[at + draw(st.integers(1, 40)):]
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "length" and len(data) >= 6:
            data[2:6] = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "big")
    return bytes(data)


@FUZZ
@given(data=mangled_associate_rq())
def test_mangled_association_requests(fuzzed: HostileLab, data: bytes):
    _send_and_hang_up(fuzzed, data)


@st.composite
def mangled_pdus(draw) -> bytes:
    """After an association: PDUs of any type with random bodies, P-DATA with random PDV items,
    and DIMSE command sets with random fields (a real command set's bytes, changed)."""
    kind = draw(st.sampled_from(["any", "pdv", "command", "sequence"]))
    if kind == "any":
        return rawpdu.pdu(draw(st.integers(0, 255)), draw(st.binary(max_size=300)))
    if kind == "pdv":
        items = [rawpdu.pdv(draw(st.sampled_from([1, 3, 5, 7, 9, 0, 255])), draw(st.binary(max_size=200)),
                            command=draw(st.booleans()), last=draw(st.booleans()))
                 for _ in range(draw(st.integers(0, 4)))]
        return rawpdu.p_data(*items)
    if kind == "command":
        message = draw(st.sampled_from([
            rawpdu.c_echo(),
            rawpdu.c_find(FIND, identifier("STUDY", StudyInstanceUID="")),
            rawpdu.c_get(GET, identifier("STUDY", StudyInstanceUID="1.2.3")),
            rawpdu.c_move(MOVE, identifier("STUDY", StudyInstanceUID="1.2.3"), "NOWHERE"),
        ]))
        context = {"C_ECHO": 1, "C_FIND": 3, "C_GET": 5, "C_MOVE": 7}[type(message).__name__]
        data = bytearray(b"".join(rawpdu.command_pdus(message, context)))
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(12, len(data) - 1))  # past the PDU and PDV headers: the messages
            data[at] = draw(st.integers(0, 255))
        return bytes(data)
    # a sequence: a valid C-ECHO, then random PDUs, then a release
    parts = [b"".join(rawpdu.command_pdus(rawpdu.c_echo(), 1))]
    parts += [rawpdu.pdu(draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7])), draw(st.binary(max_size=64)))
              for _ in range(draw(st.integers(1, 3)))]
    return b"".join(parts) + rawpdu.release_rq()


@FUZZ
@given(data=mangled_pdus())
def test_mangled_pdus_on_an_association(fuzzed: HostileLab, data: bytes):
    _send_and_hang_up(fuzzed, data, associate=True)
