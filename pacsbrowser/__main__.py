"""`pacsbrowser` with no sub-command starts the window; with one, the command line."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # thumbnail workers are processes; needed in frozen builds
    args = sys.argv[1:] if argv is None else argv
    if not args or _desktop_paths(args):
        from .ui.app import run_gui

        return run_gui(paths=args)
    from .cli import main as cli_main

    return cli_main(args)


def _desktop_paths(args: list[str]) -> bool:
    """Whether every argument is an absolute path that exists: files a desktop passes (.desktop %F)."""
    return all(os.path.isabs(arg) and os.path.exists(arg) for arg in args)


if __name__ == "__main__":
    sys.exit(main())
