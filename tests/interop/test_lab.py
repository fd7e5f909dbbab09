"""The test lab itself: peers on loopback only, holding the catalog, TLS, fault injection."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.lab.data import Catalog, generate
from tests.lab.peers import OrthancPeer, dcmtk, listening_sockets, peer_env, shim_path

pytestmark = pytest.mark.timeout(60)

LOOPBACK_ADDRESSES = {"127.0.0.1", "::1"}
FIND = StudyRootQueryRetrieveInformationModelFind
MOVE = StudyRootQueryRetrieveInformationModelMove


# ------------------------------------------------------------------------------------ helpers


def proc_net_listeners() -> list[tuple[str, int]]:
    """Every TCP LISTEN socket on the host, read straight from /proc/net/tcp and tcp6."""
    found = []
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if family == socket.AF_INET:
                addr = socket.inet_ntop(family, raw[::-1])
            else:
                addr = socket.inet_ntop(family, b"".join(raw[i:i + 4][::-1]
                                                         for i in range(0, 16, 4)))
            found.append((addr, int(hex_port, 16)))
    return found


def assert_loopback_only(peer, ports: list[int]) -> None:
    listeners = proc_net_listeners()
    for port in ports:
        bound = [addr for addr, p in listeners if p == port]
        assert bound, f"nothing listens on port {port}"
        assert set(bound) <= LOOPBACK_ADDRESSES, f"port {port} is bound to {bound}"
    # and every socket the process itself listens on (not only the ports we know about)
    own = listening_sockets(peer.pid)
    assert own and {addr for addr, _ in own} <= LOOPBACK_ADDRESSES, own
    environ = Path(f"/proc/{peer.pid}/environ").read_bytes().split(b"\0")
    assert f"LD_PRELOAD={shim_path()}".encode() in environ
    assert b"TCP_NODELAY=1" in environ


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary directory removed after the test (pytest keeps tmp_path dirs around)."""
    with tempfile.TemporaryDirectory(prefix="pacsbrowser-test-") as name:
        yield Path(name)


def eventually(condition, timeout: float = 5.0) -> bool:
    """Poll ``condition()`` until true or ``timeout`` (bounded polling, not a sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def study_query(**keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.PatientName = ""
    ds.PatientID = ""
    for key, value in keys.items():
        setattr(ds, key, value)
    return ds


def catalog_study_datasets(catalog: Catalog) -> list[Dataset]:
    out = []
    for study in catalog.studies:
        ds = Dataset()
        if study.charset:
            ds.SpecificCharacterSet = study.charset
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientName = study.patient_name
        ds.PatientID = study.patient_id
        ds.StudyInstanceUID = study.uid
        ds.StudyDate = study.date
        ds.AccessionNumber = study.accession
        out.append(ds)
    return out


def find_all(port: int, query: Dataset, ae_title: str = "ANY-SCP", model=FIND) -> list:
    ae = AE("PACSBROWSER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    assert assoc.is_established
    try:
        return list(assoc.send_c_find(query, model))
    finally:
        assoc.release()


# ------------------------------------------------------------------------------------ data


def test_data_is_deterministic_and_decodable(lab_data: Catalog, scratch: Path) -> None:
    again = generate(scratch / "again")
    assert [i.sop_instance_uid for i in again.instances] == [
        i.sop_instance_uid for i in lab_data.instances
    ]
    for mine, theirs in zip(lab_data.instances, again.instances, strict=True):
        assert mine.path.read_bytes() == theirs.path.read_bytes()

    assert (len(lab_data.patients), len(lab_data.studies), len(lab_data.series),
            len(lab_data.instances)) == (6, 10, 15, 66)
    assert lab_data.modality_counts() == {"CT": 25, "MR": 30, "CR": 5, "US": 6}
    assert len(lab_data.rle_instances()) == 14
    assert sum(s.instance_count for s in lab_data.studies) == 66
    assert [p.name for p in lab_data.patients if not p.is_ascii] == [
        "Müller^Jürgen", "Yamada^Tarou=山田^太郎"]
    for inst in lab_data.instances:
        ds = pydicom.dcmread(inst.path)
        assert ds.file_meta.TransferSyntaxUID == inst.transfer_syntax_uid
        assert ds.SOPInstanceUID == inst.sop_instance_uid
        arr = ds.pixel_array
        assert arr.shape[:2] == ((inst.rows, inst.columns) if inst.frames == 1
                                 else (inst.frames, inst.rows))
    yamada = pydicom.dcmread(lab_data.instances_of_patient("LAB0005")[0].path)
    assert yamada.SpecificCharacterSet == "ISO_IR 192"
    assert str(yamada.PatientName) == "Yamada^Tarou=山田^太郎"
    cine = [i for i in lab_data.instances if i.frames > 1]
    assert len(cine) == 1 and cine[0].frames == 4 and cine[0].photometric == "RGB"


def test_certificates(certs) -> None:
    def verify(ca: Path, cert: Path) -> str:
        result = subprocess.run(["/usr/bin/openssl", "verify", "-CAfile", str(ca), str(cert)],
                                capture_output=True, text=True, timeout=30, check=False)
        return result.stdout + result.stderr

    assert ": OK" in verify(certs.ca_cert, certs.server_cert)
    assert ": OK" in verify(certs.ca_cert, certs.client_cert)
    assert ": OK" in verify(certs.ca_cert, certs.wronghost_cert)
    assert ": OK" in verify(certs.other_ca_cert, certs.other_client_cert)
    assert "expired" in verify(certs.ca_cert, certs.expired_cert)
    assert "not yet valid" in verify(certs.ca_cert, certs.notyetvalid_cert)
    assert "unable to get local issuer" in verify(certs.other_ca_cert, certs.server_cert)


# ------------------------------------------------------------------------------------ loopback


def test_shim_turns_wildcard_binds_into_loopback_and_refuses_the_outside() -> None:
    code = (
        "import socket\n"
        "s = socket.socket(); s.bind(('0.0.0.0', 0)); print(s.getsockname()[0])\n"
        "s6 = socket.socket(socket.AF_INET6); s6.bind(('::', 0)); print(s6.getsockname()[0])\n"
        "c = socket.socket()\n"
        "try:\n"
        "    c.connect(('192.0.2.1', 9))\n"  # TEST-NET-1: never reached, the shim refuses it
        "except OSError as e:\n"
        "    print(e.errno)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=peer_env(), capture_output=True,
                            text=True, timeout=30, check=True)
    import errno

    assert result.stdout.split() == ["127.0.0.1", "::1", str(errno.ENETUNREACH)]


@pytest.mark.parametrize("name", ["orthanc", "orthanc_tls", "orthanc_latin1",
                                  "orthanc_expired_tls", "orthanc_notyetvalid_tls",
                                  "orthanc_wronghost_tls", "dcmqrscp"])
def test_peer_listens_on_loopback_only(name: str, request: pytest.FixtureRequest) -> None:
    peer = request.getfixturevalue(name)
    ports = [peer.port, peer.http_port] if isinstance(peer, OrthancPeer) else [peer.port]
    assert_loopback_only(peer, ports)
    assert peer.host == "127.0.0.1"
    assert peer.startup_seconds is not None and peer.startup_seconds < 10


# ------------------------------------------------------------------------------------ Orthanc


@pytest.mark.parametrize("name", ["orthanc", "orthanc_tls", "orthanc_latin1"])
def test_orthanc_holds_the_catalog(name: str, request: pytest.FixtureRequest,
                                   lab_data: Catalog) -> None:
    peer = request.getfixturevalue(name)
    stats = peer.statistics()
    assert stats["CountPatients"] == len(lab_data.patients)
    assert stats["CountStudies"] == len(lab_data.studies)
    assert stats["CountSeries"] == len(lab_data.series)
    assert stats["CountInstances"] == len(lab_data.instances)
    assert peer.sop_instance_uids() == {i.sop_instance_uid for i in lab_data.instances}
    system = peer.rest("/system")
    assert system["DicomAet"] == "ORTHANC" and system["DicomPort"] == peer.port


def test_orthanc_answers_study_find_in_utf8(orthanc: OrthancPeer, lab_data: Catalog) -> None:
    query = study_query(SpecificCharacterSet="ISO_IR 192", ModalitiesInStudy="",
                        NumberOfStudyRelatedInstances="")
    answers = [ds for status, ds in find_all(orthanc.port, query, "ORTHANC")
               if status.Status in (0xFF00, 0xFF01)]
    assert len(answers) == len(lab_data.studies)
    names = {str(ds.PatientName) for ds in answers}
    assert {p.name for p in lab_data.patients} == names
    for ds in answers:
        study = lab_data.study(ds.StudyInstanceUID)
        assert int(ds.NumberOfStudyRelatedInstances) == study.instance_count


def test_orthanc_latin1_drops_what_latin1_cannot_hold(orthanc_latin1: OrthancPeer) -> None:
    query = study_query(SpecificCharacterSet="ISO_IR 192", StudyDescription="")
    answers = {str(ds.PatientID): ds for status, ds in find_all(orthanc_latin1.port, query)
               if status.Status in (0xFF00, 0xFF01)}
    assert answers["LAB0004"].SpecificCharacterSet == "ISO_IR 100"
    assert str(answers["LAB0004"].PatientName) == "Müller^Jürgen"
    assert answers["LAB0004"].StudyDescription == "CT SCHÄDEL NATIV"
    assert str(answers["LAB0005"].PatientName) == "Yamada^Tarou=^"  # 山田^太郎 is gone


@pytest.mark.parametrize("name, aet, accession", [
    ("orthanc", "ORTHANC", "ACC2024003"),  # RLE and uncompressed series
    ("dcmqrscp", "DCMQRSCP", "ACC2015001"),  # uncompressed only
])
def test_peers_move_to_the_move_port(request, name: str, aet: str, accession: str, lab_data: Catalog,
                                     move_port: int, fault_scp) -> None:
    peer = request.getfixturevalue(name)
    receiver = fault_scp("ok", ae_title="PACSBROWSER", port=move_port)
    study = lab_data.study_by_accession(accession)
    ae = AE("PACSBROWSER")
    ae.add_requested_context(MOVE)
    assoc = ae.associate("127.0.0.1", peer.port, ae_title=aet)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study.uid
    statuses = [status.Status for status, _ in assoc.send_c_move(query, "PACSBROWSER", MOVE)]
    assoc.release()
    assert statuses[-1] == 0x0000
    assert {d.SOPInstanceUID for d in receiver.received} == {
        i.sop_instance_uid for i in lab_data.instances_of_study(study.uid)}


def test_orthanc_tls_echo_needs_a_client_certificate(orthanc_tls: OrthancPeer, certs) -> None:
    address = ["-aec", "ORTHANC", "127.0.0.1", str(orthanc_tls.port)]
    ok = dcmtk("echoscu", "+tls", certs.client_key, certs.client_cert, "+cf", certs.ca_cert,
               *address)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    anonymous = dcmtk("echoscu", "+tla", "+cf", certs.ca_cert, *address)
    assert anonymous.returncode != 0
    stranger = dcmtk("echoscu", "+tls", certs.other_client_key, certs.other_client_cert,
                     "+cf", certs.ca_cert, *address)
    assert stranger.returncode != 0
    plain = dcmtk("echoscu", *address)
    assert plain.returncode != 0


def test_orthanc_tls_with_python_ssl(orthanc_tls: OrthancPeer, certs) -> None:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs.ca_cert))
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    ae = AE("PACSBROWSER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", orthanc_tls.port, ae_title="ORTHANC",
                         tls_args=(context, "localhost"))
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


@pytest.mark.parametrize(("name", "complaint"), [
    ("orthanc_expired_tls", "certificate has expired"),
    ("orthanc_notyetvalid_tls", "certificate is not yet valid"),
    ("orthanc_wronghost_tls", "Hostname mismatch"),
])
def test_orthanc_with_a_bad_server_certificate(name: str, complaint: str, certs,
                                               request: pytest.FixtureRequest) -> None:
    peer = request.getfixturevalue(name)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs.ca_cert))
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    with socket.create_connection((peer.host, peer.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match=complaint):
            context.wrap_socket(raw, server_hostname="localhost")
    # DCMTK does not check host names: only the validity period stops echoscu
    result = dcmtk("echoscu", "+tls", certs.client_key, certs.client_cert, "+cf", certs.ca_cert,
                   "-aec", "ORTHANC", peer.host, str(peer.port))
    assert (result.returncode == 0) == (name == "orthanc_wronghost_tls"), result.stderr


def test_plain_orthanc_answers_dcmtk_echo(orthanc: OrthancPeer) -> None:
    result = dcmtk("echoscu", "-aec", "ORTHANC", "127.0.0.1", str(orthanc.port))
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------ dcmqrscp


def test_dcmqrscp_study_find_with_dcmtk_findscu(dcmqrscp, lab_data: Catalog,
                                                scratch: Path) -> None:
    result = dcmtk("findscu", "-S", "-aec", "DCMQRSCP", "-k", "QueryRetrieveLevel=STUDY",
                   "-k", "StudyInstanceUID", "-k", "PatientName", "-X", "-od", scratch,
                   "127.0.0.1", str(dcmqrscp.port))
    assert result.returncode == 0, result.stdout + result.stderr
    responses = [pydicom.dcmread(p) for p in sorted(scratch.glob("rsp*.dcm"))]
    assert len(responses) == len(lab_data.studies)
    assert {ds.StudyInstanceUID for ds in responses} == {s.uid for s in lab_data.studies}


def test_dcmqrscp_rejects_an_unknown_called_ae(dcmqrscp) -> None:
    result = dcmtk("echoscu", "-aec", "NOSUCHAE", "127.0.0.1", str(dcmqrscp.port))
    assert result.returncode != 0
    assert "Called AE Title Not Recognized" in result.stdout + result.stderr
    ok = dcmtk("echoscu", "-aec", "DCMQRSCP", "127.0.0.1", str(dcmqrscp.port))
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_fault_scp_ok_echo_find_store(fault_scp, lab_data: Catalog, scratch: Path) -> None:
    scp = fault_scp("ok", datasets=catalog_study_datasets(lab_data), store_dir=scratch)
    assert scp.host == "127.0.0.1" and scp.port > 0
    assert {a for a, p in proc_net_listeners() if p == scp.port} == {"127.0.0.1"}

    ae = AE("PACSBROWSER")
    ae.add_requested_context(Verification)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(scp.host, scp.port, ae_title=scp.ae_title)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    answers = [ds for st, ds in assoc.send_c_find(study_query(PatientName="SMITH*"), FIND)
               if st.Status == 0xFF00]
    assert {str(ds.PatientName) for ds in answers} == {"SMITH^JOHN", "SMITH^JANE"}
    assert len(answers) == len([s for s in lab_data.studies if s.patient_name.startswith("SMITH")])
    ranged = [ds for st, ds in assoc.send_c_find(study_query(StudyDate="20200101-"), FIND)
              if st.Status == 0xFF00]
    assert len(ranged) == len(lab_data.studies_between("20200101"))
    ct = lab_data.instances_with_modality("CT")[0]
    assert assoc.send_c_store(pydicom.dcmread(ct.path)).Status == 0x0000
    assoc.release()
    assert scp.wait_for(lambda s: s.count("released") == 1)
    assert [str(d.SOPInstanceUID) for d in scp.received] == [ct.sop_instance_uid]
    assert (scratch / f"{ct.sop_instance_uid}.dcm").is_file()
    assert scp.associations[0]["calling_aet"] == "PACSBROWSER"
    assert len(scp.find_requests) == 2


def test_fault_scp_reject(fault_scp) -> None:
    scp = fault_scp("reject", reject=(2, 3, 1))
    ae = AE("PACSBROWSER")
    ae.add_requested_context(Verification)
    assoc = ae.associate(scp.host, scp.port, ae_title=scp.ae_title)
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (2, 3, 1)
    assert scp.wait_for(lambda s: s.count("rejected-by-scp") == 1)


def test_fault_scp_silent(fault_scp) -> None:
    scp = fault_scp("silent")
    ae = AE("PACSBROWSER")
    ae.acse_timeout = 0.5
    ae.add_requested_context(Verification)
    started = time.monotonic()
    assoc = ae.associate(scp.host, scp.port, ae_title=scp.ae_title)
    assert not assoc.is_established
    assert time.monotonic() - started < 5
    assert scp.wait_for(lambda s: s.connections == 1)


def test_fault_scp_abort_after_n_find(fault_scp, lab_data: Catalog) -> None:
    scp = fault_scp("abort_after_n", abort_after=3, datasets=catalog_study_datasets(lab_data))
    ae = AE("PACSBROWSER")
    ae.add_requested_context(FIND)
    assoc = ae.associate(scp.host, scp.port, ae_title=scp.ae_title)
    pending = 0
    for status, _ in assoc.send_c_find(study_query(), FIND):
        if status and status.Status == 0xFF00:
            pending += 1
    assert pending == 3
    assert eventually(lambda: assoc.is_aborted)
    assert scp.aborts_sent == 1


def test_fault_scp_abort_after_n_store(fault_scp, lab_data: Catalog) -> None:
    scp = fault_scp("abort_after_n", abort_after=2)
    ae = AE("PACSBROWSER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(scp.host, scp.port, ae_title=scp.ae_title)
    results = []
    for inst in lab_data.instances_with_modality("CT")[:4]:
        results.append(assoc.send_c_store(pydicom.dcmread(inst.path)))
        if not results[-1]:  # no status: the association went away
            break
    assert [r.Status for r in results[:2]] == [0x0000, 0x0000]
    assert len(results) == 3 and not results[2]  # empty status: aborted
    assert eventually(lambda: assoc.is_aborted)
    assert len(scp.received) == 2


def test_fault_scp_slow_find_sees_cancel(fault_scp, lab_data: Catalog) -> None:
    scp = fault_scp("slow", delay=0.15, datasets=catalog_study_datasets(lab_data))
    ae = AE("PACSBROWSER")
    ae.add_requested_context(FIND)
    assoc = ae.associate(scp.host, scp.port, ae_title=scp.ae_title)
    statuses = []
    for status, _ in assoc.send_c_find(study_query(), FIND, msg_id=7):
        statuses.append(status.Status)
        if len(statuses) == 2:
            cx = assoc.accepted_contexts[0]
            assoc.send_c_cancel(7, cx.context_id)
    assoc.release()
    assert statuses[-1] == 0xFE00
    assert statuses.count(0xFF00) < len(lab_data.studies)
    assert scp.cancels == 1
    pending = [t for t, _, info in scp.events_of("find-response") if info["status"] == 0xFF00]
    assert len(pending) >= 2
    assert all(b - a >= 0.1 for a, b in zip(pending, pending[1:], strict=False))


def test_fault_scp_charset_control(fault_scp, lab_data: Catalog) -> None:
    datasets = catalog_study_datasets(lab_data)
    unlabeled = fault_scp("ok", datasets=datasets, find_charset=None, find_encoding="ISO_IR 192")
    mislabeled = fault_scp("ok", datasets=datasets, find_charset="ISO_IR 100")
    for scp, label in ((unlabeled, None), (mislabeled, "ISO_IR 100")):
        answers = [ds for st, ds in find_all(scp.port, study_query(PatientID="LAB0004"))
                   if st.Status == 0xFF00]
        assert len(answers) == 1
        raw = answers[0]
        assert raw.get("SpecificCharacterSet") == label
        assert raw["PatientName"].value.original_string == "Müller^Jürgen".encode()
    assert mislabeled.find_requests and unlabeled.find_requests
    # default: the dataset's own label and encoding
    keep = fault_scp("ok", datasets=datasets)
    [answer] = [ds for st, ds in find_all(keep.port, study_query(PatientID="LAB0005"))
                if st.Status == 0xFF00]
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert str(answer.PatientName) == "Yamada^Tarou=山田^太郎"


def test_nothing_of_ours_listens_beyond_loopback(orthanc, orthanc_tls, dcmqrscp) -> None:
    ours = {p for peer in (orthanc, orthanc_tls, dcmqrscp) for _, p in peer.listening()}
    outside = [(a, p) for a, p in proc_net_listeners()
               if p in ours and a not in LOOPBACK_ADDRESSES]
    assert not outside
    assert os.environ.get("QT_QPA_PLATFORM")
