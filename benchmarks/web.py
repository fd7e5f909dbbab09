"""WADO-RS against C-GET, both ours, in one run: `python -m benchmarks.web [--reps N] [--count 500]`.

One Orthanc 1.10.1 with its DICOMweb plugin 1.7 (Debian's orthanc-dicomweb) holds the benchmarks'
500-image CT study (256 x 256 x 16 bit, two series, 64 MB); the same study is retrieved into a
fresh archive by WebRetrieveService (QIDO-RS planning, one WADO-RS multipart/related request
streamed to the archive) and by RetrieveService (C-FIND planning, one C-GET), each in a worker
process of its own (benchmarks/web_worker.py), alternating which goes first; medians after one
warm-up. Writes benchmarks/RESULTS-web.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

WEB_RESULTS = Path(__file__).with_name("RESULTS-web.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.lab.peers import shim_path
    from tests.lab.web import WebOrthancPeer

    from . import data, procs

    root = Path(tempfile.mkdtemp(prefix="pacsbrowser-bench-web-"))
    # as benchmarks/lab.py: C-FIND (and QIDO) answered from Orthanc's index, not by reading every file
    peer = WebOrthancPeer(aet="BENCHWEB", workdir=root / "orthanc", extra_config={"StorageAccessOnFind": "Never"})
    rows: dict[str, dict[str, list[float]]] = {}
    load_before = os.getloadavg()[0]
    try:
        started = time.perf_counter()
        study = data.big_study(root / "data", args.count)
        peer.start()
        peer.load(study.paths)
        if peer.instance_count() != args.count:
            raise SystemExit(f"Orthanc holds {peer.instance_count()} instances, expected {args.count}")
        print(f"lab ready in {time.perf_counter() - started:.1f} s: {args.count} images, "
              f"{study.bytes / 1e6:.0f} MB", flush=True)
        procs.set_workdir(root / "tools")
        logdir = root / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        config = {"host": peer.host, "port": peer.port, "aet": peer.aet, "url": peer.url,
                  "study": study.study_uids[0], "expected": args.count}
        env = {"LD_PRELOAD": str(shim_path()), "LOOPBACK_BIND_PARENT": str(os.getpid())}
        workers = {case: procs.Worker("benchmarks.web_worker", {**config, "case": case, "tmp": str(root / case)},
                                      logdir / f"{case}.log", env=env) for case in ("wado", "cget")}
        last_cpu = {case: worker.ready["cpu"] for case, worker in workers.items()}
        try:
            for rep in range(args.reps + 1):
                for case in (("wado", "cget") if rep % 2 == 0 else ("cget", "wado")):
                    answer = workers[case].call("run", timeout=600)
                    cpu, last_cpu[case] = answer["cpu"] - last_cpu[case], answer["cpu"]
                    if rep:  # the first round is a warm-up
                        row = rows.setdefault(case, {"seconds": [], "cpu": [], "rss": []})
                        row["seconds"].append(answer["seconds"])
                        row["cpu"].append(cpu)
                        row["rss"].append(answer["rss_kb"] / 1024)
                    print(f"{'warm-up' if not rep else f'rep {rep}'} {case}: {answer['seconds']:.3f} s", flush=True)
        finally:
            for worker in workers.values():
                worker.close()
    finally:
        procs.kill_all()
        peer.stop()
        shutil.rmtree(root, ignore_errors=True)

    load_after = os.getloadavg()[0]

    def med(case: str, what: str) -> float:
        return statistics.median(rows[case][what])

    wado, cget = med("wado", "seconds"), med("cget", "seconds")
    lines = [
        "# DICOMweb: WADO-RS against C-GET, both ours (`python -m benchmarks.web`)",
        "",
        f"Written on {time.strftime('%Y-%m-%d %H:%M')}. One Orthanc 1.10.1 with its DICOMweb plugin 1.7 holds "
        f"the {args.count}-image CT study of the benchmarks (256 x 256 x 16 bit, two series); each side retrieves "
        "it into a fresh archive (fsync'd writes, indexing) in a worker process of its own, planning included "
        "(QIDO-RS or C-FIND: series, then instances per series; `StorageAccessOnFind: Never`). Medians of "
        f"{args.reps} repetitions after a warm-up, alternating which goes first. Peak RSS: the worker's "
        "high-water mark (it includes the interpreter and its libraries).",
        "",
        "| case | time | images/s | CPU s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
        *(f"| {label} | {med(case, 'seconds'):.3f} s | {args.count / med(case, 'seconds'):.0f} | "
          f"{med(case, 'cpu'):.2f} | {max(rows[case]['rss']):.0f} |"
          for case, label in (("wado", "WADO-RS (WebRetrieveService.get_study)"),
                              ("cget", "C-GET (RetrieveService.get_study)"))),
        "",
        f"WADO-RS / C-GET: {wado / cget:.2f}x in time (lower is better for WADO-RS), "
        f"{med('wado', 'cpu') / med('cget', 'cpu'):.2f}x in CPU seconds of our process.",
        "",
        f"Load average of the machine (2 cores) at the start and the end of the run: {load_before:.1f} and "
        f"{load_after:.1f}. Every repetition (s): WADO-RS {', '.join(f'{x:.2f}' for x in rows['wado']['seconds'])}; "
        f"C-GET {', '.join(f'{x:.2f}' for x in rows['cget']['seconds'])}.",
        "",
    ]
    print("\n" + "\n".join(lines))
    if args.count == 500:
        WEB_RESULTS.write_text("\n".join(lines))
        print(f"written to {WEB_RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
