"""Our side of each case, in a process of its own: `python -m benchmarks.worker <answer fd>`.

The harness starts one worker per case, sends `setup` (imports, objects), then `run` once per
repetition (plus `arm`/`collect` around a transfer the harness drives, for `receive`), then `quit`.
Every answer carries the process's peak RSS (ru_maxrss, KiB) and CPU seconds so far, so the peak
memory of a case is that of a process that ran only that case.

What is timed is the core API the application itself uses (DICOMClient, VerificationService,
QueryService, StoreService, ArchiveServer + Archive, RetrieveService, ThumbnailService), on a
warm interpreter: imports and setup are not timed, a DCMTK tool's process start is.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.spent import set_aside


def _usage() -> dict[str, Any]:
    """Peak RSS so far (VmHWM: ru_maxrss would include the harness's size when it forked us) and
    CPU seconds (every thread; child processes, such as a thumbnail pool's, once they have ended)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"rss_kb": _status_kb("VmHWM"), "cpu": me.ru_utime + me.ru_stime,
            "children_cpu": children.ru_utime + children.ru_stime}


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Case:
    """One case's objects; `run` is timed by the case itself (perf_counter around the work)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: dict[str, Any]) -> None:
        self.loop = loop
        self.config = config
        self.tmp = Path(config["tmp"])
        self.tmp.mkdir(parents=True, exist_ok=True)
        # where a repetition's files go instead of being deleted (benchmarks.spent)
        self.spent = Path(config.get("spent") or self.tmp.parent / "spent")

    def setup(self) -> dict[str, Any]:
        return {}

    def run(self) -> dict[str, Any]:
        raise NotImplementedError

    def teardown(self) -> None:
        set_aside(self.tmp, self.spent)

    def profile(self):
        from pacsbrowser.core.records import ServerProfile

        c = self.config
        return ServerProfile(name="bench", host=c["host"], port=c["port"], called_ae=c["aet"],
                             listener_port=c.get("listener_port", 11112))

    def client(self):
        from pacsbrowser.core.client import DICOMClient

        return DICOMClient.from_profile(self.profile())


# --------------------------------------------------------------------------------------------


class EchoOneAssociation(Case):
    """Associate, `count` C-ECHO, release."""

    def run(self) -> dict[str, Any]:
        from pacsbrowser.core.client import VerificationService

        count = self.config.get("count", 50)

        async def work() -> None:
            client = self.client()
            await client.associate()
            service = VerificationService(client)
            for _ in range(count):
                await service.echo()
            await client.release()

        started = time.perf_counter()
        self.loop.run_until_complete(work())
        return {"seconds": time.perf_counter() - started}


class EchoManyAssociations(Case):
    """`count` times: associate, one C-ECHO, release."""

    def run(self) -> dict[str, Any]:
        from pacsbrowser.core.client import VerificationService

        count = self.config.get("count", 50)

        async def work() -> None:
            for _ in range(count):
                await VerificationService(self.client()).verify()

        started = time.perf_counter()
        self.loop.run_until_complete(work())
        return {"seconds": time.perf_counter() - started}


class FindStudies(Case):
    """Every study (no key), streamed: time to the first result handed over and to the last."""

    def run(self) -> dict[str, Any]:
        from pacsbrowser.core.query import QueryService
        from pacsbrowser.core.records import QueryKeys

        state: dict[str, Any] = {"first": None, "count": 0}

        async def work() -> None:
            service = QueryService(self.client(), self.profile())
            async with service.find_studies(QueryKeys.studies()) as found:
                async for batch in found.batches():
                    if state["first"] is None:
                        state["first"] = time.perf_counter() - started
                    state["count"] += len(batch)

        started = time.perf_counter()
        self.loop.run_until_complete(work())
        elapsed = time.perf_counter() - started
        if state["count"] != self.config["expected"]:
            raise RuntimeError(f"found {state['count']} studies, expected {self.config['expected']}")
        return {"seconds": elapsed, "first": state["first"], "count": state["count"]}


class Store(Case):
    """The files of a folder to the PACS over `parallel` associations (StoreService)."""

    def run(self) -> dict[str, Any]:
        from pacsbrowser.core.store import StoreService

        parallel = self.config["parallel"]
        folder = self.config["folder"]

        async def work():
            return await StoreService(self.profile(), parallel=parallel).store([folder])

        started = time.perf_counter()
        summary = self.loop.run_until_complete(work())
        elapsed = time.perf_counter() - started
        if len(summary.stored) != self.config["expected"]:
            problems = "; ".join(f"{r.name}: {r.reason}" for r in summary.problems[:3])
            raise RuntimeError(f"stored {len(summary.stored)} of {self.config['expected']}: {problems}")
        return {"seconds": elapsed, "associations": summary.associations}


class Receive(Case):
    """Our Storage SCP (ArchiveServer over a fresh Archive); the harness sends with storescu between
    `arm` and `collect`, and times the sender."""

    scp: Any = None
    archive: Any = None

    def arm(self) -> dict[str, Any]:
        from pacsbrowser.core.archive import Archive
        from pacsbrowser.core.server import ArchiveServer

        folder = self.tmp / f"archive-{time.monotonic_ns()}"
        self.archive = Archive(folder, durable=self.config.get("durable", True))
        self.scp = ArchiveServer(0, "PACSBROWSER", self.archive, host="127.0.0.1")
        self.loop.run_until_complete(self.scp.start())
        return {"port": self.scp.address[1]}

    def collect(self) -> dict[str, Any]:
        expected = self.config["expected"]
        started = time.perf_counter()
        deadline = time.monotonic() + 60
        while self.scp.stats.stored + self.scp.stats.failed < expected and time.monotonic() < deadline:
            time.sleep(0.001)
        stored = self.scp.stats.stored
        self.archive.flush()
        indexed = time.perf_counter() - started
        self.loop.run_until_complete(self.scp.stop())
        counts = self.archive.counts()
        self.archive.close()
        set_aside(self.archive.root, self.spent)
        self.scp = self.archive = None
        if stored != expected:
            raise RuntimeError(f"received {stored} of {expected}")
        return {"indexed_after": indexed, "counts": counts}

    def teardown(self) -> None:
        if self.scp is not None:
            self.loop.run_until_complete(self.scp.stop())
        if self.archive is not None:
            self.archive.close()
        super().teardown()


class Get(Case):
    """RetrieveService.get_study into a fresh Archive (as the application does: plan with a series
    and an instance query, then one C-GET; files written as received, fsync'd, indexed)."""

    def service(self, archive: Any) -> Any:
        from pacsbrowser.core.retrieve import RetrieveService

        return RetrieveService(self.profile(), archive)

    def extra(self, summary: Any) -> dict[str, Any]:
        return {"associations": summary.associations}

    def run(self) -> dict[str, Any]:
        from pacsbrowser.core.archive import Archive

        archive = Archive(self.tmp / f"archive-{time.monotonic_ns()}")
        try:
            service = self.service(archive)
            started = time.perf_counter()
            summary = self.loop.run_until_complete(service.get_study(self.config["study"]).wait())
            elapsed = time.perf_counter() - started
        finally:
            archive.close()
            set_aside(archive.root, self.spent)
        if not summary.complete or summary.received != self.config["expected"]:
            raise RuntimeError(f"received {summary.received} of {self.config['expected']}: {summary}")
        return {"seconds": elapsed, "transfer_seconds": summary.transfer_seconds, **self.extra(summary)}


class Move(Case):
    """RetrieveService.move_study to our own Storage SCP (started before the clock, on the port the
    PACS knows as PACSBROWSER) over a fresh Archive; ends when the PACS has answered and what
    arrived is indexed."""

    def run(self) -> dict[str, Any]:
        from pacsbrowser.core.archive import Archive
        from pacsbrowser.core.retrieve import RetrieveService
        from pacsbrowser.core.server import ArchiveServer

        archive = Archive(self.tmp / f"archive-{time.monotonic_ns()}")
        scp = ArchiveServer(self.config["listener_port"], "PACSBROWSER", archive, host="127.0.0.1")
        try:
            self.loop.run_until_complete(scp.start())
            service = RetrieveService(self.profile(), archive, scp=scp)
            started = time.perf_counter()
            summary = self.loop.run_until_complete(service.move_study(self.config["study"], "PACSBROWSER").wait())
            elapsed = time.perf_counter() - started
        finally:
            self.loop.run_until_complete(scp.stop())
            archive.close()
            set_aside(archive.root, self.spent)
        if not summary.complete or summary.received != self.config["expected"]:
            raise RuntimeError(f"received {summary.received} of {self.config['expected']}: {summary}")
        return {"seconds": elapsed, "transfer_seconds": summary.transfer_seconds}


class Thumbnails(Case):
    """ThumbnailService (process pool of `workers`, kept between repetitions as in the running
    application) rendering every file at 128 px into a fresh ThumbnailCache (PNG files)."""

    service: Any = None

    def setup(self) -> dict[str, Any]:
        from pacsbrowser.core.thumbnails import ThumbnailService

        self.service = ThumbnailService(workers=self.config["workers"])
        self.paths = sorted(Path(self.config["folder"]).rglob("*.dcm"))
        return {}

    def _pool_pids(self) -> list[int]:
        pool = getattr(self.service, "_pool", None)
        return [p.pid for p in (getattr(pool, "_processes", None) or {}).values()]

    def run(self) -> dict[str, Any]:
        from pacsbrowser.core.thumbcache import ThumbnailCache

        self.service.cache = ThumbnailCache(self.tmp / f"cache-{time.monotonic_ns()}")
        cpu_before = sum(_proc_cpu(pid) for pid in self._pool_pids())
        count = 0

        async def work() -> None:
            nonlocal count
            async for _, thumbnail in self.service.thumbnails(self.paths, size=128):
                if thumbnail.is_placeholder:
                    raise RuntimeError(f"a placeholder: {thumbnail!r}")
                count += 1

        started = time.perf_counter()
        self.loop.run_until_complete(work())
        elapsed = time.perf_counter() - started
        pids = self._pool_pids()
        pool_cpu = sum(_proc_cpu(pid) for pid in pids) - cpu_before
        pool_rss = sum(_proc_kb(pid, "VmHWM") for pid in pids)
        set_aside(Path(self.service.cache.directory), self.spent)
        if count != len(self.paths):
            raise RuntimeError(f"{count} thumbnails of {len(self.paths)}")
        return {"seconds": elapsed, "pool_cpu": pool_cpu, "pool_rss_kb": pool_rss, "pool_pids": pids}

    def teardown(self) -> None:
        if self.service is not None:
            self.service.close()
        super().teardown()


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


CASES: dict[str, type[Case]] = {
    "echo_one": EchoOneAssociation,
    "echo_many": EchoManyAssociations,
    "find": FindStudies,
    "store": Store,
    "receive": Receive,
    "get": Get,
    "move": Move,
    "thumbnails": Thumbnails,
}


def polling_baseline() -> None:
    """With PACSBROWSER_BENCH_POLLING=1 (`python -m benchmarks --polling`): associations keep
    pynetdicom's polling reactors and logging handlers, as before core.dicom.responsive, to
    measure what it changed (before/after in benchmarks/RESULTS.md)."""
    if os.environ.get("PACSBROWSER_BENCH_POLLING") != "1":
        return
    from pacsbrowser.core.dicom import ae
    from pacsbrowser.core.dicom import server as scp

    ae.make_responsive = scp.make_responsive = lambda assoc: assoc


def serve(answer_fd: int, make_case: Callable[[dict[str, Any]], tuple[Any, dict[str, Any]]]) -> None:
    """The worker protocol, for this module's cases and benchmarks.gui's: one JSON request a line
    on stdin (`setup`, then a case's method such as `run`, then `quit`), one JSON answer a line on
    `answer_fd`, each with the process's peak RSS and CPU so far. `make_case(request)` gives the
    case and what `setup` answers besides."""
    answers = os.fdopen(answer_fd, "w", buffering=1)
    case: Any = None

    def reply(ok: bool, **data: Any) -> None:
        answers.write(json.dumps({"ok": ok, **data, **_usage()}, default=str) + "\n")
        answers.flush()

    for line in sys.stdin:
        try:
            request = json.loads(line)
            cmd = request.pop("cmd")
            if cmd == "setup":
                import pacsbrowser.core.logs  # noqa: F401 - quiets pynetdicom like the app

                polling_baseline()
                case, extra = make_case(request)
                reply(True, rss_now_kb=_status_kb("VmRSS"), **extra)
            elif cmd == "quit":
                if case is not None:
                    case.teardown()
                reply(True)
                break
            else:
                assert case is not None, "setup first"
                reply(True, **getattr(case, cmd)())
        except Exception as exc:  # noqa: BLE001 - to the harness, which stops
            traceback.print_exc()
            reply(False, error=f"{exc.__class__.__name__}: {exc}")


def main(argv: list[str]) -> int:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def make_case(request: dict[str, Any]) -> tuple[Case, dict[str, Any]]:
        case = CASES[request["case"]](loop, request)
        return case, case.setup()

    serve(int(argv[0]), make_case)
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
