"""The frame of our scripted in-process SCPs (tests/query's ScriptedSCP, tests/retrieve's RetrieveSCP):
a pynetdicom AE on 127.0.0.1 at a port the system picks, and a stop event that shutdown() sets so a
handler waiting on it returns."""

from __future__ import annotations

import threading
from typing import Any, Self

from pynetdicom import AE

LOOPBACK = "127.0.0.1"


class LoopbackSCP:
    """Subclasses build the AE and its event handlers in ``_application_entity``."""

    def __init__(self, ae_title: str) -> None:
        self.ae_title = ae_title
        self.host = LOOPBACK
        self.port = 0
        self._stop = threading.Event()
        self._ae: AE | None = None

    def _application_entity(self) -> tuple[AE, list[tuple[Any, Any]]]:
        raise NotImplementedError

    def start(self) -> Self:
        ae, handlers = self._application_entity()
        server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=handlers)
        self.port = server.server_address[1]
        self._ae = ae
        return self

    def shutdown(self) -> None:
        self._stop.set()
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
