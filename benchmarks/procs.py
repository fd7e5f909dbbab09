"""Processes the harness runs: DCMTK tools (timed, with their peak RSS and CPU from wait4) and our
worker processes (driven over a pipe, one JSON line per command and per answer).

Every process started here is tracked and killed (process group) by `kill_all()`, which the
harness calls in its `finally`, so Ctrl-C or an error leaves nothing running.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.peers import DCMTK_BIN, LabError, peer_env

ROOT = Path(__file__).resolve().parents[1]

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()
_state: dict[str, Any] = {"workdir": None, "launcher": None, "runs": 0}


def set_workdir(path: Path) -> None:
    """Where the launcher is built and the tools' measurement files go (the lab's temp dir)."""
    path.mkdir(parents=True, exist_ok=True)
    _state["workdir"] = path
    _state["launcher"] = None


def launcher() -> Path:
    """measure_exec (see measure_exec.c), built once per run into the work dir."""
    if _state["launcher"] is None:
        workdir = _state["workdir"]
        if workdir is None:
            raise BenchError("procs.set_workdir() first")
        target = workdir / "measure_exec"
        gcc = shutil.which("gcc")
        if gcc is None:
            raise LabError("gcc is needed to build benchmarks/measure_exec.c (Debian package 'gcc')")
        result = subprocess.run([gcc, "-O2", "-Wall", "-o", str(target), str(Path(__file__).with_name("measure_exec.c"))],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise BenchError(f"cannot build measure_exec: {result.stderr[-1000:]}")
        _state["launcher"] = target
    return _state["launcher"]


def _track(proc: subprocess.Popen) -> None:
    with _live_lock:
        _live.add(proc)


def _untrack(proc: subprocess.Popen) -> None:
    with _live_lock:
        _live.discard(proc)


def kill_all() -> None:
    """Kill every process (and its group) this module started that is still running."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _untrack(proc)


class BenchError(RuntimeError):
    pass


@dataclass
class Measured:
    """One timed run."""

    seconds: float
    rss_kb: int = 0  # peak resident set size (ru_maxrss): max over the processes of the run
    cpu: float = 0.0  # user + system CPU seconds of the process(es)
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# DCMTK tools


def dcmtk_cmd(tool: str, *args: Any) -> list[str]:
    binary = DCMTK_BIN / tool
    if not binary.is_file():
        raise LabError(f"{binary} not found: install the Debian package 'dcmtk'")
    return [str(binary), *map(str, args)]


def _wait(proc: subprocess.Popen, deadline: float) -> int:
    """Wait for `proc`; killed past the deadline. A blocking wait (exact to the exit): Popen.wait()
    with a timeout polls with sleeps growing to 50 ms, which would round every time measured up."""
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _kill_group, args=(proc,))
    watchdog.daemon = True
    watchdog.start()
    try:
        code = proc.wait()
    finally:
        watchdog.cancel()
    if time.monotonic() > deadline and code < 0:
        raise BenchError(f"{proc.args[2]} did not finish in time; killed")
    return code


def run_tools(commands: Sequence[Sequence[str]], *, timeout: float = 120.0, cwd: Path | None = None,
              log: Path | None = None, first_line: bytes | None = None) -> Measured:
    """Start `commands` at once (under the loopback shim, TCP_NODELAY=1), wait for all of them;
    the wall time from the first start to the last exit, the largest peak RSS, the CPU summed
    (each command runs under measure_exec, which reports its ru_maxrss and CPU from wait4).

    `first_line`: with one command, also time the first output line containing it
    (extra["first"]); the output is read as it comes (stdout and stderr together)."""
    env = peer_env()
    if log is None and _state["workdir"] is not None:
        log = _state["workdir"] / "tools.log"  # what a failing tool said goes into its error
    out = open(log, "ab") if log else subprocess.DEVNULL
    procs: list[subprocess.Popen] = []
    reports: list[Path] = []
    first: float | None = None
    wrapper = str(launcher())
    codes: list[int] = []
    try:
        started = time.perf_counter()
        for command in commands:
            _state["runs"] += 1
            report = _state["workdir"] / f"run-{_state['runs']}.txt"
            reports.append(report)
            proc = subprocess.Popen(
                [wrapper, str(report), *command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if first_line else out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            _track(proc)
            procs.append(proc)
        deadline = time.monotonic() + timeout
        if first_line:
            assert len(procs) == 1 and procs[0].stdout is not None
            stream = procs[0].stdout
            timer = threading.Timer(timeout, lambda: _kill_group(procs[0]))
            timer.start()
            try:
                for line in stream:
                    if first is None and first_line in line:
                        first = time.perf_counter() - started
            finally:
                timer.cancel()
                stream.close()
        codes = [_wait(proc, deadline) for proc in procs]
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait(timeout=10)
            _untrack(proc)
        if log:
            out.close()
    rss, cpu = 0, 0.0
    for report in reports:
        try:
            status, maxrss, user, system = report.read_text().split()
            report.unlink()
        except (OSError, ValueError):
            continue
        rss = max(rss, int(maxrss))
        cpu += float(user) + float(system)
    bad = [(c, cmd[0]) for c, cmd in zip(codes, commands) if c != 0]
    if bad:
        tail = ""
        if log is not None:
            try:
                tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            except OSError:
                pass
        raise BenchError(f"{bad[0][1]} exited with status {bad[0][0]}{tail}")
    extra = {"first": first} if first_line else {}
    return Measured(elapsed, rss, cpu, extra)


def run_sequential(commands: Sequence[Sequence[str]], *, timeout: float = 120.0, log: Path | None = None) -> Measured:
    """Run `commands` one after the other; total wall time, largest peak RSS, summed CPU."""
    started = time.perf_counter()
    rss, cpu = 0, 0.0
    deadline = time.monotonic() + timeout
    for command in commands:
        one = run_tools([command], timeout=max(1.0, deadline - time.monotonic()), log=log)
        rss, cpu = max(rss, one.rss_kb), cpu + one.cpu
    return Measured(time.perf_counter() - started, rss, cpu)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------------
# Our worker processes


class Worker:
    """A Python subprocess running `module` (benchmarks.worker or benchmarks.gui_worker).

    Protocol: the parent writes one JSON object per line ({"cmd": ..., ...}); the worker answers
    each with one JSON line ({"ok": true, ...} or {"ok": false, "error": ...}) on a pipe of its own
    (its stdout is sent to its log with stderr). Every answer carries the worker's ru_maxrss (KiB)
    and CPU seconds so far."""

    def __init__(self, module: str, config: dict[str, Any], log: Path, *, env: dict[str, str] | None = None,
                 start_timeout: float = 60.0) -> None:
        self.module = module
        self.log = log
        read_fd, write_fd = os.pipe()
        environment = dict(os.environ)
        environment.update(env or {})
        # PACSBROWSER_BENCH_TREE: another checkout's code (its pacsbrowser and its worker) on our side,
        # for the before/after of benchmarks.bulk
        tree = environment.pop("PACSBROWSER_BENCH_TREE", "") or str(ROOT)
        environment["PYTHONPATH"] = tree + os.pathsep + environment.get("PYTHONPATH", "")
        environment["PYTHONUNBUFFERED"] = "1"
        self._log_file = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(write_fd)], cwd=tree, env=environment,
            stdin=subprocess.PIPE, stdout=self._log_file, stderr=subprocess.STDOUT,
            pass_fds=(write_fd,), start_new_session=True,
        )
        _track(self.proc)
        os.close(write_fd)
        self._answers: queue.Queue[Any] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(os.fdopen(read_fd, "rb"),), daemon=True)
        self._reader.start()
        self.ready = self.call("setup", timeout=start_timeout, **config)

    def _read(self, stream: Any) -> None:
        with stream:
            for line in stream:
                try:
                    self._answers.put(json.loads(line))
                except ValueError:
                    self._answers.put({"ok": False, "error": f"unreadable answer: {line[:200]!r}"})
        self._answers.put(None)

    def call(self, cmd: str, *, timeout: float = 180.0, **args: Any) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.module} worker has exited ({self.proc.returncode}); log: {self.log}")
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        self.proc.stdin.flush()
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise BenchError(f"{self.module} worker: no answer to {cmd!r} within {timeout:.0f} s; log: {self.log}") from None
        if answer is None:
            raise BenchError(f"{self.module} worker died during {cmd!r}; log: {self.log}\n{self.log_tail()}")
        if not answer.get("ok"):
            raise BenchError(f"{self.module} worker: {cmd} failed: {answer.get('error')}\nlog: {self.log}")
        return answer

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self, timeout: float = 60.0) -> dict[str, Any] | None:
        """Ask the worker to clean up and exit; its last answer (with the final ru_maxrss)."""
        answer = None
        if self.proc.poll() is None:
            try:
                answer = self.call("quit", timeout=timeout)
            except BenchError:
                answer = None
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return answer

    def kill(self) -> None:
        if self.proc.poll() is None:
            _kill_group(self.proc)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _untrack(self.proc)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self._log_file.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def proc_cpu(pid: int | None) -> float:
    """User + system CPU seconds a running process has used so far (/proc/<pid>/stat)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_kb(pid: int | None) -> int:
    """Peak resident set size of a running process (VmHWM, KiB)."""
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result
