"""Real DICOM peers for the interop tests: Orthanc and DCMTK's dcmqrscp, on loopback only.

Neither Orthanc 1.10 nor DCMTK 3.6.7 can choose the address its servers bind: both take every
interface. Every process started here therefore runs with ``LD_PRELOAD`` = the shim built from
``loopback_bind.c`` (wildcard binds become 127.0.0.1 / ::1, connections elsewhere are refused)
and ``TCP_NODELAY=1`` (Debian's builds keep Nagle on otherwise: ~40 ms stalls per message).
After start-up each peer checks that the shim is mapped into the process and that every socket it
listens on is a loopback one; if not, the process is killed and start-up fails. If the shim cannot
be built, nothing is started.

Waits are bounded: readiness is polled with a deadline, stopping is terminate -> wait(timeout) ->
kill. Each peer owns a temporary directory (config, storage, log) that ``stop()`` removes
(set PACSBROWSER_LAB_KEEP=1 to keep them for a post-mortem).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .certs import LabCerts

__all__ = [
    "LOOPBACK",
    "DCMTK_BIN",
    "ORTHANC_BIN",
    "LabError",
    "OrthancPeer",
    "DcmqrscpPeer",
    "free_port",
    "stop_all",
    "shim_path",
    "peer_env",
    "dcmtk",
    "listening_sockets",
]

LOOPBACK = "127.0.0.1"
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1"})
ORTHANC_BIN = Path("/usr/sbin/Orthanc")
DCMTK_BIN = Path("/usr/bin")  # DCMTK tools by absolute path: .venv/bin has pynetdicom's echoscu...
SHIM_SOURCE = Path(__file__).with_name("loopback_bind.c")
CACHE_DIR = Path(__file__).resolve().parents[1] / ".lab-cache"  # tests/.lab-cache, gitignored
KEEP = os.environ.get("PACSBROWSER_LAB_KEEP", "") not in ("", "0")

_POLL = 0.02  # seconds between readiness polls


class LabError(RuntimeError):
    """The lab could not provide a peer (missing binary, start-up failure, unsafe binding)."""


# --------------------------------------------------------------------------------------------
# Helpers


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


_shim_lock = threading.Lock()


def shim_path() -> Path:
    """Build (once, cached by source hash) and return the loopback LD_PRELOAD shim.

    Raises LabError if gcc is missing or the build fails: no peer may start without the shim.
    """
    source = SHIM_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    with _shim_lock:
        for directory in (CACHE_DIR, Path(tempfile.gettempdir()) / "pacsbrowser-lab-cache"):
            target = directory / f"loopback_bind-{digest}.so"
            if target.is_file():
                return target
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            if not os.access(directory, os.W_OK):
                continue
            gcc = shutil.which("gcc")
            if gcc is None:
                raise LabError(
                    "gcc is not installed, so the loopback LD_PRELOAD shim cannot be built and "
                    "no DICOM peer may be started (it would listen on every interface). "
                    "Install the Debian packages 'gcc' and 'libc6-dev'."
                )
            partial = directory / f".loopback_bind-{digest}.{os.getpid()}.so"
            result = subprocess.run(
                [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial), str(SHIM_SOURCE),
                 "-ldl"],
                capture_output=True, text=True, timeout=60, check=False,
            )
            if result.returncode != 0:
                partial.unlink(missing_ok=True)
                raise LabError(
                    "could not build the loopback LD_PRELOAD shim, so no DICOM peer may be "
                    f"started:\n{result.stderr[-2000:]}"
                )
            os.replace(partial, target)  # atomic: concurrent sessions see a whole file
            return target
    raise LabError("no writable directory for the loopback shim")


def peer_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for a lab process: loopback shim, TCP_NODELAY, no proxies."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": tempfile.gettempdir(),
        "TMPDIR": tempfile.gettempdir(),
        "LD_PRELOAD": str(shim_path()),
        "TCP_NODELAY": "1",
    }
    if threading.current_thread() is threading.main_thread():
        # The shim asks for SIGKILL when its parent dies; the kernel ties that to the thread
        # that forked, so only ask when that thread is the main one (it outlives the peer).
        env["LOOPBACK_BIND_PARENT"] = str(os.getpid())
    if extra:
        env.update(extra)
    return env


def dcmtk(tool: str, *args: str | os.PathLike[str], timeout: float = 30.0,
          check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK command-line tool by absolute path (/usr/bin/<tool>) under the shim.

    Returns the CompletedProcess (text stdout/stderr); ``check=True`` raises on a non-zero exit.
    """
    binary = DCMTK_BIN / tool
    if not binary.is_file():
        raise LabError(f"{binary} not found: install the Debian package 'dcmtk'")
    result = subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env=peer_env(), stdin=subprocess.DEVNULL, check=False,
    )
    if check and result.returncode != 0:
        raise LabError(
            f"{tool} {' '.join(map(str, args))} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return result


def _parse_proc_net(path: str, v6: bool) -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of the LISTEN sockets in /proc/net/tcp or tcp6."""
    out: dict[int, tuple[str, int]] = {}
    try:
        lines = Path(path).read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "0A":  # 0A = TCP_LISTEN
            continue
        hex_addr, hex_port = fields[1].split(":")
        raw = bytes.fromhex(hex_addr)
        if v6:
            # four 32-bit words, each in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
            addr = socket.inet_ntop(socket.AF_INET6, raw)
            if addr.startswith("::ffff:") and "." in addr:
                addr = addr[7:]
        else:
            addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
        out[int(fields[9])] = (addr, int(hex_port, 16))
    return out


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on, from /proc."""
    inodes: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    table = _parse_proc_net("/proc/net/tcp", False)
    table.update(_parse_proc_net("/proc/net/tcp6", True))
    return sorted(table[i] for i in inodes if i in table)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Process management shared by the peers


def stop_all(peers: Iterable["_PeerProcess"]) -> None:
    """Stop several peers at once: SIGTERM to all, then wait for each (bounded)."""
    peers = list(peers)
    for peer in peers:
        peer.begin_stop()
    for peer in peers:
        peer.stop()


def running_peer_pids() -> set[int]:
    """Process IDs of the lab peers running now (session and module peers outlive single tests)."""
    return {peer.pid for peer in list(_PeerProcess.instances) if peer.running and peer.pid is not None}


class _PeerProcess:
    """A server process in its own temp dir, with a log, readiness and loopback checks."""

    instances: "weakref.WeakSet[_PeerProcess]"

    binary: Path
    package: str = ""  # the Debian package that provides ``binary``
    label: str = "peer"
    stop_timeout: float = 10.0

    def __init__(self, workdir: Path | None = None) -> None:
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"pacsbrowser-{self.label}-"))
            self._owns_workdir = True
        else:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._owns_workdir = False
        self.log_path = self.workdir / f"{self.label}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self.startup_seconds: float | None = None
        self._term_sent = False
        _PeerProcess.instances.add(self)

    # -- to implement
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ports(self) -> list[int]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write configuration; called before every start attempt (ports may change)."""

    def _pick_ports(self) -> None:
        """Choose new free ports after a failed attempt."""

    def _ready(self) -> bool:
        """Extra readiness test once every port listens (e.g. the REST API answers)."""
        return True

    # -- lifecycle
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0, attempts: int = 3) -> "_PeerProcess":
        if not self.binary.is_file():
            raise LabError(
                f"{self.binary} not found: the interop tests need the Debian package "
                f"'{self.package}'"
            )
        started = time.monotonic()
        error: LabError | None = None
        for attempt in range(attempts):
            if attempt:
                self._pick_ports()  # a free port may have been taken in the meantime
            self._prepare()
            try:
                self._spawn_and_wait(timeout)
                self.startup_seconds = time.monotonic() - started
                return self
            except LabError as exc:
                error = exc
                self._kill_process()
                if "loopback" in str(exc) or "shim" in str(exc):
                    break  # never retry a safety failure
        assert error is not None
        raise error

    def _spawn_and_wait(self, timeout: float) -> None:
        env = peer_env()
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"==== lab: starting {' '.join(self._command())}\n".encode())
        self._log_file.flush()
        self._term_sent = False
        self.proc = subprocess.Popen(
            self._command(), cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        wanted = set(self._ports())
        while True:
            code = self.proc.poll()
            if code is not None:
                raise LabError(
                    f"{self.label} exited with status {code} during start-up; "
                    f"log tail:\n{_tail(self.log_path)}"
                )
            listening = listening_sockets(self.proc.pid)
            if wanted <= {port for _, port in listening}:
                self._check_loopback(listening)
                if self._ready():
                    # listeners opened late (or by another thread) are checked again here
                    self._check_loopback(listening_sockets(self.proc.pid))
                    return
            if time.monotonic() > deadline:
                raise LabError(
                    f"{self.label} not ready within {timeout:.0f} s (waiting for ports "
                    f"{sorted(wanted)}, listening: {listening}); log tail:\n{_tail(self.log_path)}"
                )
            time.sleep(_POLL)

    def _check_loopback(self, listening: list[tuple[str, int]]) -> None:
        assert self.proc is not None
        shim = str(shim_path())
        try:
            maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        except OSError:
            maps = ""
        if shim not in maps:
            self._kill_process()
            raise LabError(f"{self.label}: the loopback shim {shim} is not loaded; stopped it")
        outside = [(a, p) for a, p in listening if a not in LOOPBACK_ADDRESSES]
        if outside:
            self._kill_process()
            raise LabError(f"{self.label} listened beyond loopback on {outside}; killed it")

    def listening(self) -> list[tuple[str, int]]:
        """(address, port) pairs the process listens on right now."""
        return listening_sockets(self.proc.pid) if self.running and self.proc else []

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def _kill_process(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if not self._term_sent:  # only once: a second SIGTERM kills Orthanc on the spot
                self._signal_group(signal.SIGTERM)
                self._term_sent = True
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(timeout=10)
        # children of the process (dcmqrscp forks one per association) share its group
        self._signal_group(signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.proc = None

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)  # start_new_session: the group id is the pid
        except (ProcessLookupError, PermissionError):
            pass

    def begin_stop(self) -> None:
        """Send SIGTERM without waiting (Orthanc needs ~3.5 s to stop: stop peers in parallel)."""
        if self.proc is not None and self.proc.poll() is None and not self._term_sent:
            self._signal_group(signal.SIGTERM)
            self._term_sent = True

    def stop(self) -> None:
        """Stop the process (SIGTERM, bounded wait, SIGKILL) and remove the temp dir it owns."""
        self._kill_process()
        if self._owns_workdir and not KEEP:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rest_payload(body: bytes | str | Any) -> bytes | None:
    """A REST request's body as sent: bytes/str as they are, anything else as JSON."""
    if isinstance(body, str):
        return body.encode()
    if body is None or isinstance(body, bytes | bytearray):
        return body
    return json.dumps(body).encode()


# --------------------------------------------------------------------------------------------
# Orthanc


class OrthancPeer(_PeerProcess):
    """Orthanc 1.10 with a generated configuration; DICOM and REST on 127.0.0.1 only.

    ``modalities`` maps Orthanc's symbolic names to ``(aet, host, port)`` or to a full
    Orthanc modality object; ``move_port`` adds the test client ``move_aet`` ("PACSBROWSER") at
    127.0.0.1:move_port as a C-MOVE destination. ``tls=certs`` turns DICOM TLS on (the DICOM port
    then speaks TLS only) with ``server_cert``/``server_key`` (default: the certs' server pair),
    ``DicomTlsTrustedCertificates`` = the CA and client certificates required unless
    ``require_client_cert=False``.
    """

    binary = ORTHANC_BIN
    package = "orthanc"
    label = "orthanc"

    def __init__(
        self,
        *,
        aet: str = "ORTHANC",
        encoding: str = "Utf8",
        move_port: int | None = None,
        move_aet: str = "PACSBROWSER",
        modalities: Mapping[str, Sequence[Any] | Mapping[str, Any]] | None = None,
        tls: LabCerts | None = None,
        server_cert: Path | None = None,
        server_key: Path | None = None,
        trusted_certs: Path | None = None,
        require_client_cert: bool = True,
        check_called_aet: bool = False,
        max_pdu: int = 16384,
        extra_config: Mapping[str, Any] | None = None,
        verbose: bool = False,
        workdir: Path | None = None,
    ) -> None:
        super().__init__(workdir)
        self.host = LOOPBACK
        self.aet = aet
        self.encoding = encoding
        self.port = free_port()
        self.http_port = free_port()
        self.modalities: dict[str, Any] = {}
        if move_port is not None:
            self.modalities["pacsbrowser"] = [move_aet, LOOPBACK, move_port]
        for name, value in (modalities or {}).items():
            self.modalities[name] = value
        self.tls = tls is not None
        self.certs = tls
        self.server_cert = server_cert or (tls.server_cert if tls else None)
        self.server_key = server_key or (tls.server_key if tls else None)
        self.trusted_certs = trusted_certs or (tls.ca_cert if tls else None)
        self.require_client_cert = require_client_cert
        self.check_called_aet = check_called_aet
        self.max_pdu = max_pdu
        self.extra_config = dict(extra_config or {})
        self.verbose = verbose
        self.config_path = self.workdir / "orthanc.json"
        self._http: http.client.HTTPConnection | None = None

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.http_port = free_port()

    def _ports(self) -> list[int]:
        return [self.port, self.http_port]

    def configuration(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "Name": f"pacsbrowser-lab-{self.aet}",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "StorageCompression": False,
            "Plugins": [],
            "LuaScripts": [],
            "ConcurrentJobs": 2,
            "JobsHistorySize": 10,
            "SaveJobs": False,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "HttpDescribeErrors": True,
            "HttpThreadsCount": 10,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SslEnabled": False,
            "KeepAlive": True,
            "TcpNoDelay": True,
            "MetricsEnabled": False,
            "ExecuteLuaEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.port,
            "DicomCheckCalledAet": self.check_called_aet,
            "DefaultEncoding": self.encoding,
            "DicomScpTimeout": 30,
            "DicomScuTimeout": 10,
            "DicomThreadsCount": 4,
            "MaximumPduLength": self.max_pdu,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowFindWorklist": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomCheckModalityHost": False,
            "DicomModalitiesInDatabase": False,
            "DicomModalities": self.modalities,
            "DicomEchoChecksFind": False,
            "UnknownSopClassAccepted": False,
            "SynchronousCMove": True,
            "StableAge": 1,
            "OverwriteInstances": True,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "StorageAccessOnFind": "Always",
            "DeidentifyLogs": False,  # the lab's data are synthetic; readable logs help
            "CheckRevisions": False,
            "HttpsVerifyPeers": False,
            "DicomTlsEnabled": self.tls,
        }
        if self.tls:
            config.update({
                "DicomTlsCertificate": str(self.server_cert),
                "DicomTlsPrivateKey": str(self.server_key),
                "DicomTlsTrustedCertificates": str(self.trusted_certs),
                "DicomTlsRemoteCertificateRequired": self.require_client_cert,
            })
        config.update(self.extra_config)
        return config

    def _prepare(self) -> None:
        self.config_path.write_text(json.dumps(self.configuration(), indent=2, ensure_ascii=False))

    def _command(self) -> list[str]:
        cmd = [str(self.binary), "--no-jobs"]
        if self.verbose:
            cmd.append("--verbose")
        cmd.append(str(self.config_path))
        return cmd

    def _ready(self) -> bool:
        try:
            system = self.rest("/system", timeout=2)
        except (OSError, http.client.HTTPException, LabError):
            self._close_http()
            return False
        return isinstance(system, dict) and system.get("DicomAet") == self.aet

    def start(self, timeout: float = 30.0, attempts: int = 3) -> "OrthancPeer":
        super().start(timeout, attempts)
        return self

    def begin_stop(self) -> None:
        self._close_http()
        super().begin_stop()

    def stop(self) -> None:
        self._close_http()
        super().stop()

    # -- REST
    def _close_http(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def rest(self, path: str, method: str = "GET", body: bytes | str | Any = None, *,
             raw: bool = False, timeout: float = 30.0) -> Any:
        """Call Orthanc's REST API on 127.0.0.1:http_port; JSON answers come back decoded.

        ``body``: bytes/str sent as is, anything else as JSON. Raises LabError on HTTP >= 400.
        """
        payload = rest_payload(body)
        for attempt in (0, 1):  # one retry on a stale keep-alive connection
            if self._http is None:
                self._http = http.client.HTTPConnection(LOOPBACK, self.http_port, timeout=timeout)
            self._http.timeout = timeout
            try:
                self._http.request(method, path, body=payload)
                response = self._http.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._close_http()
                if attempt:
                    raise
        if response.status >= 400:
            raise LabError(f"Orthanc {method} {path}: HTTP {response.status}: {data[:2000]!r}")
        if raw:
            return data
        if response.getheader("Content-Type", "").startswith("application/json") and data:
            return json.loads(data)
        return data

    def load(self, paths: Iterable[Path]) -> list[str]:
        """Upload DICOM files (POST /instances); returns Orthanc's instance ids."""
        ids = []
        for path in paths:
            answer = self.rest("/instances", "POST", Path(path).read_bytes())
            if not isinstance(answer, dict) or answer.get("Status") not in ("Success",
                                                                            "AlreadyStored"):
                raise LabError(f"Orthanc refused {path}: {answer!r}")
            ids.append(answer["ID"])
        return ids

    def statistics(self) -> dict[str, Any]:
        """/statistics: CountPatients, CountStudies, CountSeries, CountInstances..."""
        return self.rest("/statistics")

    def instance_count(self) -> int:
        return int(self.statistics()["CountInstances"])

    def sop_instance_uids(self) -> set[str]:
        """SOP Instance UIDs of everything Orthanc holds."""
        return {i["MainDicomTags"]["SOPInstanceUID"] for i in self.rest("/instances?expand")}

    def lookup(self, uid: str) -> list[dict[str, Any]]:
        """POST /tools/lookup: Orthanc resources (ID, Type, Path) with this DICOM UID."""
        return self.rest("/tools/lookup", "POST", uid)

    def delete_uid(self, uid: str) -> None:
        """Delete the patient/study/series/instance with this PatientID or UID."""
        for item in self.lookup(uid):
            self.rest(item["Path"], "DELETE")

    def clear(self) -> None:
        """Delete everything Orthanc holds."""
        for patient in self.rest("/patients"):
            self.rest(f"/patients/{patient}", "DELETE")

    def add_modality(self, name: str, aet: str, host: str = LOOPBACK, port: int = 104,
                     **options: Any) -> None:
        """Register a DICOM modality at run time (PUT /modalities/<name>); loopback only."""
        if host not in LOOPBACK_ADDRESSES and host != "localhost":
            raise LabError(f"the lab only talks to loopback, not {host}")
        self.modalities[name] = {"AET": aet, "Host": host, "Port": port, **options}
        self.rest(f"/modalities/{name}", "PUT", self.modalities[name])


# --------------------------------------------------------------------------------------------
# DCMTK dcmqrscp


class DcmqrscpPeer(_PeerProcess):
    """DCMTK 3.6.7's dcmqrscp with a generated dcmqrscp.cfg, one storage area, on loopback.

    ``move_destinations`` maps HostTable symbolic names to ``(aet, host, port)``; ``move_port``
    adds ``pacsbrowser = (PACSBROWSER, 127.0.0.1, move_port)``. Unknown called AE titles are
    rejected (1, 1, 7) by dcmqrscp itself. ``charset`` is written as the config's
    ``SpecificCharacterSet`` line (e.g. '"ISO_IR 192", override'); None keeps DCMTK's default
    (answer in the request's character set, else ASCII). ``extra_args`` go to dcmqrscp's command
    line (e.g. ``+xr`` to accept RLE on C-STORE, ``-xs`` to propose lossless JPEG on C-MOVE).
    """

    binary = DCMTK_BIN / "dcmqrscp"
    package = "dcmtk"
    label = "dcmqrscp"

    def __init__(
        self,
        *,
        aet: str = "DCMQRSCP",
        move_port: int | None = None,
        move_aet: str = "PACSBROWSER",
        move_destinations: Mapping[str, tuple[str, str, int]] | None = None,
        max_pdu: int = 65536,
        max_associations: int = 16,
        charset: str | None = None,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
    ) -> None:
        super().__init__(workdir)
        if any(c.isspace() for c in str(self.workdir)):
            raise LabError(f"dcmqrscp.cfg cannot hold a path with spaces: {self.workdir}")
        self.host = LOOPBACK
        self.aet = aet
        self.port = free_port()
        self.destinations: dict[str, tuple[str, str, int]] = {}
        if move_port is not None:
            self.destinations["pacsbrowser"] = (move_aet, LOOPBACK, move_port)
        self.destinations.update(move_destinations or {})
        for name, (_, host, _) in self.destinations.items():
            if host not in LOOPBACK_ADDRESSES:
                raise LabError(f"move destination {name} is not on loopback: {host}")
        self.max_pdu = max_pdu
        self.max_associations = max_associations
        self.charset = charset
        self.extra_args = list(extra_args)
        self.storage = self.workdir / "storage" / aet
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "dcmqrscp.cfg"

    def _pick_ports(self) -> None:
        self.port = free_port()

    def _ports(self) -> list[int]:
        return [self.port]

    def configuration(self) -> str:
        hosts = "\n".join(
            f"{name} = ({aet}, {host}, {port})"
            for name, (aet, host, port) in self.destinations.items()
        )
        charset = f"SpecificCharacterSet = {self.charset}\n" if self.charset else ""
        return (
            f"NetworkTCPPort  = {self.port}\n"
            f"MaxPDUSize      = {self.max_pdu}\n"
            f"MaxAssociations = {self.max_associations}\n"
            f"{charset}"
            "\nHostTable BEGIN\n"
            f"{hosts}\n"
            "HostTable END\n"
            "\nVendorTable BEGIN\n"
            "VendorTable END\n"
            "\nAETable BEGIN\n"
            f"{self.aet} {self.storage} RW (500, 1024mb) ANY\n"
            "AETable END\n"
        )

    def _prepare(self) -> None:
        self.config_path.write_text(self.configuration())

    def _command(self) -> list[str]:
        # -dhl: no reverse DNS lookups of callers (there is no '::1 localhost' to be sure of)
        return [str(self.binary), "-c", str(self.config_path), "-dhl", *self.extra_args]

    def load(self, paths: Iterable[Path]) -> int:
        """Copy files into the storage area and index them with dcmqridx; returns the count."""
        copied = []
        for path in paths:
            data = Path(path).read_bytes()
            target = self.storage / f"lab-{hashlib.sha1(data).hexdigest()}.dcm"
            target.write_bytes(data)
            copied.append(target)
        for start in range(0, len(copied), 200):  # keep command lines short
            dcmtk("dcmqridx", self.storage, *copied[start:start + 200], check=True, timeout=60)
        return len(copied)

    def start(self, timeout: float = 20.0, attempts: int = 3) -> "DcmqrscpPeer":
        super().start(timeout, attempts)
        return self


_PeerProcess.instances = weakref.WeakSet()
