"""The cases over the retrieve and thumbnail modules: get, move, thumbnails."""

from __future__ import annotations

from .cases import Context, Measured, Row, WorkerSide, _finish, alternate, orthanc_target
from .procs import BenchError, dcmtk_cmd, proc_cpu, proc_peak_rss_kb, run_tools
from .spent import set_aside


def _require(module: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise NotImplementedError(f"{module} cannot be imported: {exc}") from exc


def case_get(ctx: Context) -> list[Row]:
    _require("pacsbrowser.core.retrieve")
    lab = ctx.lab
    assert lab.big is not None
    target = orthanc_target(ctx)
    n = len(lab.big.paths)
    study = lab.big.study_uids[0]
    row = Row("get", f"get: one study of {n} images (C-GET)", "getscu (+B, -pdu 131072)")
    out = ctx.tmp("getscu")
    command = dcmtk_cmd("getscu", "-S", "-aet", "PACSBROWSER", "-aec", target["aet"], "-k", "QueryRetrieveLevel=STUDY",
                        "-k", f"StudyInstanceUID={study}", "-od", out, "+B", "-pdu", "131072",
                        target["host"], target["port"])

    def theirs() -> Measured:
        set_aside(out, ctx.spent)
        out.mkdir(parents=True)
        measured = run_tools([command], timeout=300)
        got = sum(1 for _ in out.iterdir())
        if got != n:
            raise BenchError(f"getscu wrote {got} of {n} files")
        return measured

    with ctx.worker("get", **target, study=study, expected=n) as worker:
        alternate(ctx, [row], WorkerSide(worker), theirs)
        _finish([row], worker)
    row.note = ("ours includes planning (into an empty archive: one study-level C-FIND for the SOP classes and "
                "the count; with something held, the series and instance listing, so that only what is missing "
                "is fetched) and archive writes fsync'd, renamed and indexed in batches before the job ends; "
                "getscu writes plain files")
    return [row]


def case_move(ctx: Context) -> list[Row]:
    _require("pacsbrowser.core.retrieve")
    lab = ctx.lab
    assert lab.big is not None and lab.storescp is not None
    target = orthanc_target(ctx)
    n = len(lab.big.paths)
    study = lab.big.study_uids[0]
    storescp = lab.storescp
    row = Row("move", "move: the same study to our SCP / to storescp (C-MOVE)", "movescu -> storescp (+B)")
    command = dcmtk_cmd("movescu", "-S", "-aet", "MOVESCU", "-aec", target["aet"], "-aem", storescp.aet,
                        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
                        target["host"], target["port"])

    def theirs() -> Measured:
        storescp.clear()
        cpu_before = proc_cpu(storescp.pid)
        measured = run_tools([command], timeout=300)
        got = storescp.received()
        if got != n:
            raise BenchError(f"storescp received {got} of {n} files")
        # the receiving side is what matters here (movescu only waits): storescp's CPU and memory
        measured.cpu += proc_cpu(storescp.pid) - cpu_before
        measured.rss_kb = max(measured.rss_kb, proc_peak_rss_kb(storescp.pid))
        return measured

    with ctx.worker("move", **target, study=study, expected=n, listener_port=lab.move_port) as worker:
        alternate(ctx, [row], WorkerSide(worker), theirs)
        _finish([row], worker)
    row.note = ("ours: RetrieveService.move_study to our ArchiveServer (listening before the clock starts), "
                "planning (a count C-FIND), archive writes fsync'd before each reply (folder fsyncs shared) and "
                "indexing included; DCMTK: movescu until its "
                "final response, storescp receiving (its CPU added to movescu's)")
    return [row]


def case_thumbnails(ctx: Context) -> list[Row]:
    _require("pacsbrowser.core.thumbnails")
    lab = ctx.lab
    assert lab.big is not None
    paths = lab.big.paths
    n = len(paths)
    out = ctx.tmp("dcmj2pnm")
    rows = []
    for workers in (1, 2):
        row = Row(f"thumbnails_{workers}", f"thumbnails: {n} images at 128 px, {workers} at a time",
                  "dcmj2pnm, a process per file" + (", 2 at a time" if workers == 2 else ", in turn"))

        def theirs(workers: int = workers) -> Measured:
            set_aside(out, ctx.spent)
            out.mkdir(parents=True)
            commands = [dcmtk_cmd("dcmj2pnm", "+Sxv", 128, "+Wi", 1, "+on", path, out / f"{i}.png")
                        for i, path in enumerate(paths)]
            total = Measured(0.0)
            for start in range(0, n, workers):
                one = run_tools(commands[start:start + workers], timeout=60)
                total.seconds += one.seconds
                total.cpu += one.cpu
                total.rss_kb = max(total.rss_kb, one.rss_kb)
            got = sum(1 for _ in out.iterdir())
            if got != n:
                raise BenchError(f"dcmj2pnm wrote {got} of {n} files")
            return total

        with ctx.worker("thumbnails", folder=str(lab.big.root), workers=workers) as worker:
            side = WorkerSide(worker)

            def ours(side: WorkerSide = side) -> Measured:  # bound now: `side` changes per loop
                m = side()
                m.cpu += m.extra["pool_cpu"]
                m.rss_kb += m.extra["pool_rss_kb"]  # the worker processes too: the memory it takes
                return m

            # 500 dcmj2pnm processes take ~14 s a repetition: 3 counted repetitions keep `make bench`
            # within its 10 minutes
            alternate(ctx, [row], ours, theirs, reps=min(ctx.reps, 3))
            _finish([row], worker)
        rows.append(row)
    rows[0].note = ("ours: ThumbnailService with its process pool kept between repetitions (as in the running "
                    "application), rendering to PNG files in a fresh ThumbnailCache; peak RSS = the worker "
                    "process + its render processes. dcmj2pnm reads one file per run, so no loop in one process "
                    "is possible; `+Sxv 128 +Wi 1 +on`: 128 px wide, the file's first window, PNG")
    return rows
