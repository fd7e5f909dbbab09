"""The demo PACS: a separate archive of generated studies (core.demo.generate), served on a free
loopback port as DEMO_PACS, with a "Demo PACS" server profile pointing at it.

    demo = DemoPacs()                 # the demo archive under the user data dir (PACSBROWSER_DEMO_DIR)
    profile = await demo.start()      # creates the archive the first time, serves it, saves the profile
    ...                               # search and retrieve with the profile like any PACS
    await demo.stop()

The archive is made once: into a temporary folder renamed into place when complete, so an
interrupted first start leaves nothing half made. The port changes from run to run; the profile is
saved again with it on every start. C-GET needs nothing more; C-MOVE goes to our own listener
(the profile's listener port, AE PACSBROWSER).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import platformdirs

from ..archive import Archive
from ..config import ProfileStore
from ..executor import run_blocking
from ..records import DEFAULT_CALLING_AE, RetrieveMethod, ServerProfile
from ..server import ArchiveServer
from .generate import datasets, encode, instance_count

log = logging.getLogger(__name__)

DEMO_AE = "DEMO_PACS"
PROFILE_NAME = "Demo PACS"
LOOPBACK = "127.0.0.1"


def default_demo_dir() -> Path:
    """`PACSBROWSER_DEMO_DIR`, or the user data directory's ``demo-archive`` folder."""
    override = os.environ.get("PACSBROWSER_DEMO_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("pacsbrowser", appauthor=False)) / "demo-archive"


def demo_exists(root: Path) -> bool:
    return (root / "index.sqlite").is_file()


def create_demo_archive(root: Path) -> int:
    """Generate the demo archive at `root` unless it exists; how many instances it holds."""
    if demo_exists(root):
        return instance_count()
    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".demo-", dir=root.parent))
    try:
        archive = Archive(building, durable=False)
        try:
            for ds, syntax in datasets():
                archive.store(encode(ds, syntax), syntax, sop_class_uid=str(ds.SOPClassUID),
                              sop_instance_uid=str(ds.SOPInstanceUID), source_ae=DEMO_AE)
            archive.flush()
        finally:
            archive.close()
        if demo_exists(root):  # made meanwhile by another process
            return instance_count()
        if root.exists():
            shutil.rmtree(root)
        building.rename(root)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info("demo archive created at %s (%d instances)", root, instance_count())
    return instance_count()


def demo_profile(port: int, listener_port: int = 11112) -> ServerProfile:
    return ServerProfile(name=PROFILE_NAME, host=LOOPBACK, port=port, called_ae=DEMO_AE,
                         retrieve_method=RetrieveMethod.GET, listener_port=listener_port)


class DemoPacs:
    """The demo archive served on loopback; `store` (None: the user's profiles) gets the profile
    unless `save_profile` is False."""

    def __init__(self, root: Path | None = None, *, store: ProfileStore | None = None,
                 save_profile: bool = True, port: int = 0) -> None:
        self.root = root or default_demo_dir()
        self.store = store
        self.save_profile = save_profile
        self.port = port
        self.archive: Archive | None = None
        self.server: ArchiveServer | None = None
        self.profile: ServerProfile | None = None

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.is_running

    async def start(self) -> ServerProfile:
        """Create the archive if needed, serve it, save the "Demo PACS" profile; the profile."""
        if self.running:
            assert self.profile is not None
            return self.profile
        await run_blocking(create_demo_archive, self.root, name="demo-create")
        archive = await run_blocking(Archive, self.root, name="demo-open")
        store = self.store or ProfileStore()
        listener_port = 11112
        try:
            listener_port = store.get(PROFILE_NAME).listener_port
        except Exception:  # noqa: BLE001 - no saved profile yet (or unreadable): the default
            pass
        server = ArchiveServer(self.port, DEMO_AE, archive, host=LOOPBACK, query_retrieve=True,
                               destinations={DEFAULT_CALLING_AE: (LOOPBACK, listener_port)})
        try:
            await server.start()
        except BaseException:
            await run_blocking(archive.close, name="demo-close")
            raise
        self.archive, self.server = archive, server
        self.profile = demo_profile(server.address[1], listener_port)
        if self.save_profile:
            store.add(self.profile, replace_existing=True)
        log.info("demo PACS %s serving on %s:%d", DEMO_AE, LOOPBACK, server.address[1])
        return self.profile

    async def stop(self) -> None:
        server, archive = self.server, self.archive
        self.server = self.archive = None
        if server is not None:
            await server.stop()
        if archive is not None:
            await run_blocking(archive.close, name="demo-close")


__all__ = ["DEMO_AE", "PROFILE_NAME", "DemoPacs", "create_demo_archive", "default_demo_dir", "demo_profile"]
