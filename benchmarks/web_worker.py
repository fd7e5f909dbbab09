"""Our side of the DICOMweb benchmark, in a process of its own: `python -m benchmarks.web_worker <fd>`
(the protocol of benchmarks.worker). Cases: `wado` (WebRetrieveService.get_study: QIDO planning,
one WADO-RS request streamed into the archive) and `cget` (benchmarks.worker's Get: RetrieveService
planning with C-FIND, one C-GET), each into a fresh Archive (fsync'd writes, indexing)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from typing import Any

from .worker import Case, Get, serve


class Wado(Case):
    def profile(self):
        from pacsbrowser.core.records import DICOMwebEndpoint, ServerProfile

        return ServerProfile.dicomweb("bench", DICOMwebEndpoint(self.config["url"]))

    def run(self) -> dict[str, Any]:
        from pacsbrowser.core.archive import Archive
        from pacsbrowser.core.web.wado import WebRetrieveService

        archive = Archive(self.tmp / f"archive-{time.monotonic_ns()}")
        try:
            service = WebRetrieveService(self.profile(), archive)
            started = time.perf_counter()
            summary = self.loop.run_until_complete(service.get_study(self.config["study"]).wait())
            elapsed = time.perf_counter() - started
        finally:
            archive.close()
            shutil.rmtree(archive.root, ignore_errors=True)
        if not summary.complete or summary.received != self.config["expected"]:
            raise RuntimeError(f"received {summary.received} of {self.config['expected']}: {summary}")
        return {"seconds": elapsed, "transfer_seconds": summary.transfer_seconds, "bytes": summary.bytes_received}


CASES = {"wado": Wado, "cget": Get}


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
