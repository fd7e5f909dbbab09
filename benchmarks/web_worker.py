"""Our side of the DICOMweb benchmark, in a process of its own: `python -m benchmarks.web_worker <fd>`
(the protocol of benchmarks.worker). Cases: `wado` (WebRetrieveService.get_study: QIDO planning,
one WADO-RS request streamed into the archive) and `cget` (benchmarks.worker's Get: RetrieveService
planning with C-FIND, one C-GET), each into a fresh Archive (fsync'd writes, indexing)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from .worker import Case, Get, serve


class Wado(Get):
    """WebRetrieveService.get_study (WADO-RS) into a fresh Archive, timed as the C-GET case is."""

    def profile(self):
        from pacsbrowser.core.records import DICOMwebEndpoint, ServerProfile

        return ServerProfile.dicomweb("bench", DICOMwebEndpoint(self.config["url"]))

    def service(self, archive: Any) -> Any:
        from pacsbrowser.core.web.wado import WebRetrieveService

        return WebRetrieveService(self.profile(), archive)

    def extra(self, summary: Any) -> dict[str, Any]:
        return {"bytes": summary.bytes_received}


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
