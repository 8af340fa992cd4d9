"""Starting the daemon process, early when `tp connect` will need it.

A daemon's start is mostly imports (gRPC, the official client, ~0.5 s of CPU) and so is
the `tp` CLI's own start (~0.25 s). `tp connect` without a running daemon therefore
starts it first thing (`spawn_early`, before the CLI imports the rest of itself), so
that both import on their own cores; `daemon_client.start_daemon` then claims that
process and waits for its ready line. A command that ends without claiming it (bad
arguments) stops it again (`abandon`): nothing is left behind.

Only the standard library and `tp_daemon.paths` are imported here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence

from tp_daemon import paths

Spawned = tuple["subprocess.Popen[bytes]", int]
"""The daemon process and the read end of its ready pipe."""

_early: list[Spawned] = []
"""The daemon `spawn_early` started and nobody claimed yet (at most one)."""


def spawn(proxy_mode: bool = False) -> Spawned:
    """Start `python -m tp_daemon` detached, with the write end of a ready pipe."""
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "tp_daemon", "--ready-fd", str(write_end)]
    if proxy_mode:
        argv.append("--proxy-mode")
    try:
        with open(paths.log_path(), "ab") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True,
                                    pass_fds=(write_end,))
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)  # only the daemon holds it now: its exit means EOF here
    return proc, read_end


def spawn_early(argv: Sequence[str]) -> None:
    """`tp connect` (not `--help`) where no daemon socket exists: start the daemon now."""
    if list(argv[:1]) != ["connect"] or {"-h", "--help"} & set(argv):
        return
    if _early or paths.socket_path().exists():
        return
    with contextlib.suppress(OSError):  # start_daemon tries again and says why
        _early.append(spawn())


def pending() -> bool:
    """Whether an early daemon waits to be claimed."""
    return bool(_early)


def claim() -> Spawned | None:
    """The early daemon, once (None when there is none)."""
    return _early.pop() if _early else None


def abandon() -> None:
    """Stop an early daemon that no command claimed."""
    got = claim()
    if got is None:
        return
    proc, read_end = got
    os.close(read_end)
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
