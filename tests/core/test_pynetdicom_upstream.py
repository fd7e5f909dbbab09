"""Issue 15, item 10: core/dicom copies or patches pynetdicom internals (3.0.x methods). pyproject
pins the version they were checked against; this test fails, naming each method, when the
installed pynetdicom's source of one of them differs from the one we read, so that a version bump
re-reads our copies first.

To update after checking our copy against a new upstream: run this file, and take the new hashes
from the failure message."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from pathlib import Path

import pynetdicom

CHECKED_VERSION = "3.0.4"

# upstream "module:Class.method" -> (sha256 of inspect.getsource, first 16 hex digits; where ours is)
UPSTREAM: dict[str, tuple[str, str]] = {
    "pynetdicom.association:Association._run_reactor": ("f28838c5559e462a", "responsive.ResponsiveAssociation._run_reactor (a copy)"),
    "pynetdicom.association:Association._serve_request": ("2f24c1759cdf6c8c", "anyclass (common extended mapping it reads)"),
    "pynetdicom.association:Association.send_c_store": ("fa5a8127f349f8e7", "store._chunked (reads STORE_SEND_CHUNKED_DATASET once)"),
    "pynetdicom.association:Association._c_store_scp": ("9361a649f8ef2b1d", "anyclass.take_proposed_scp_role (its context check)"),
    "pynetdicom.association:Association._get_valid_context": ("117a52c2ae6720e0", "anyclass.take_proposed_scp_role (as_scp)"),
    "pynetdicom.acse:ACSE._negotiate_as_acceptor": ("fffd360957c42a8e", "anyclass.accept_any_storage (wrapped)"),
    "pynetdicom.dul:DULServiceProvider.run": ("a161d0cc851c01c4", "responsive.ResponsiveDUL.run"),
    "pynetdicom.dul:DULServiceProvider.send_pdu": ("7cbce5da8594124e", "responsive.ResponsiveDUL.send_pdu"),
    "pynetdicom.dul:DULServiceProvider.kill_dul": ("5ceccf8dd01c2072", "responsive.ResponsiveDUL.kill_dul"),
    "pynetdicom.dul:DULServiceProvider._is_transport_event": ("8725ed03bb8fbdef", "responsive.ResponsiveDUL._is_transport_event"),
    "pynetdicom.dimse:DIMSEServiceProvider.get_msg": ("890e3e04283f5aeb", "ae.keep_responses_for_callers (wrapped)"),
    "pynetdicom.transport:AssociationSocket.connect": ("aeeeae413bd339dc", "ae.ObservedSocket.connect (a copy)"),
    "pynetdicom.transport:AssociationSocket.recv": ("6bc20a33b1b7cfe7", "ae.ObservedSocket.recv, server._AcceptorSocket.recv"),
    "pynetdicom.transport:AssociationSocket._create_socket": ("bf8b92b106c8aa07", "ae.ObservedSocket._create_socket"),
    "pynetdicom.ae:ApplicationEntity._create_socket": ("f56bca8888e1ce9f", "ae.PacsAE._create_socket"),
    "pynetdicom.transport:RequestHandler.handle": ("034823fb4df3a874", "server._RequestHandler.handle"),
    "pynetdicom.transport:RequestHandler._create_association": ("05c8d12b79863cdb", "server._RequestHandler._create_association (a copy)"),
    "pynetdicom.transport:AssociationServer.get_request": ("925a4f3a3042f6e4", "server._Server.get_request (a copy)"),
    "pynetdicom.dul:DULServiceProvider._read_pdu_data": ("19f2d4e38c13c835", "bulkreceive.BulkDUL (reads PDUs as it does)"),
    "pynetdicom.dul:DULServiceProvider._decode_pdu": ("fc71dd1bf853e1ce", "bulkreceive (hands it whole PDUs)"),
    "pynetdicom.dimse:DIMSEServiceProvider.receive_primitive": ("5f99c86b14a15cef", "bulkreceive (when a message is under way)"),
    "pynetdicom.dimse:DIMSEServiceProvider.send_msg": ("a839cf2fb46976d9", "bulkreceive (its C-STORE-RSP, encoded alike)"),
    "pynetdicom.fsm:StateMachine.do_action": ("9a883f44c7f31641", "server._GuardedStateMachine.do_action (wrapped)"),
    "pynetdicom.fsm:StateMachine.transition": ("ea885ad668e50403", "server._GuardedStateMachine.transition (wrapped)"),
    "pynetdicom.dul:DULServiceProvider.run_reactor": ("e3a10eb3a0931e48", "bulkreceive._DULTime (its time.sleep(_run_loop_delay))"),
    "pynetdicom.association:Association._wrap_get_move_responses": ("d023a7bdadd24d59", "bulkreceive.sink_pending (the pending responses it no longer sees)"),
    "pynetdicom.dimse_messages:DIMSEMessage.message_to_primitive": ("f8f43d34e43450ef", "bulkreceive.PendingResponse.primitive (the same fields)"),
    "pynetdicom.association:Association.kill": ("8f9713666a7f4cff", "links.end_association (what it cannot do)"),
    "pynetdicom.association:Association.abort": ("de1cee39dfe396b0", "links.end_association"),
}


def _source_hash(target: str) -> str:
    module_name, _, path = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in path.split("."):
        obj = getattr(obj, part)
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def test_copied_pynetdicom_methods_are_unchanged_upstream():
    changed = []
    for target, (digest, ours) in UPSTREAM.items():
        now = _source_hash(target)
        if now != digest:
            changed.append(f'    "{target}": ("{now}", "{ours}"),')
    assert not changed, (
        f"pynetdicom {pynetdicom.__version__}: {len(changed)} method(s) that core/dicom copies or patches differ "
        f"from the pynetdicom {CHECKED_VERSION} source they were checked against; re-read ours against the new "
        "source, then update UPSTREAM (and CHECKED_VERSION, and the pin in pyproject.toml) to:\n" + "\n".join(changed))


def test_the_pin_is_the_version_checked():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    pin = re.search(r'"pynetdicom([^"]*)"', pyproject)
    assert pin is not None and pin.group(1) == f"=={CHECKED_VERSION}", pin
    assert pynetdicom.__version__ == CHECKED_VERSION
