"""What a repetition wrote, set aside rather than deleted before the next one.

A case writes 500 files per repetition on each side (our archive, getscu's or storescp's output
folder) and used to delete them before the next repetition. On an ext4 file system without a
journal (the lab machine's root, a virtual machine's disk), the kernel does not hand out an inode
freed less than 60 seconds ago: allocating one walks the free inodes of the folder's group and
reads each one's place in the inode table to see when it was freed (fs/ext4/ialloc.c,
find_inode_bit and recently_deleted). So every file made in the next repetition paid for the
previous one's deletion, in kernel time that varied with how many had been freed in the last
minute. Measured on a 500-image C-GET: the thread that makes our archive's temporary files ahead
used 0.16 to 0.51 s of CPU per repetition with the deletions, 0.03 s without them. DCMTK paid more
for it than we did (its files are made on the thread that receives): in one pass each, before and
after this change, storescp took 0.57 s and then 0.32 s to receive the study, getscu 0.36 s and
0.35 s, while ours went from 0.63 to 0.65 s (C-GET) and from 1.32 to 1.24 s (receive). A case
should measure the transfer, not the clean-up of the repetition before it.

`set_aside(folder, spent)` empties the files (their blocks are freed at once, their inodes stay
allocated) and moves the folder under `spent`, which goes with the lab's temporary directory at
the end of the run.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

_names = itertools.count()


def set_aside(folder: Path, spent: Path) -> None:
    """Empty every file under `folder` and move `folder` into `spent` (made when missing). Best
    effort, like the `shutil.rmtree(ignore_errors=True)` it replaces: a missing folder is nothing
    to do, and whatever cannot be emptied or moved stays where the lab's removal finds it."""
    if not folder.is_dir():
        return
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                os.truncate(os.path.join(parent, name), 0)
            except OSError:
                pass
    try:
        spent.mkdir(parents=True, exist_ok=True)
        os.rename(folder, spent / f"{os.getpid()}-{next(_names)}-{folder.name}")
    except OSError:
        pass


__all__ = ["set_aside"]
