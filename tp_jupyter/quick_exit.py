"""Ending the `tp` process without the interpreter's finalization once a connect printed.

After `tp connect` has printed its result, a normal exit still tears down every module
and gRPC's core: 15-50 ms (measured on the sandbox machine, most of it gRPC's shutdown)
on the time the user waits for the prompt. `exit_now` flushes stdout and stderr, runs the
atexit handlers and ends with `os._exit`; it falls back to a normal exit when another
thread is still alive (something may be left to finish). Only the standard library.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Exit with `code`: at once when only this thread is left, else normally."""
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can be said
            code = code or 1
    os._exit(code)
