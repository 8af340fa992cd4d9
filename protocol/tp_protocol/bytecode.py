"""A bytecode cache for our own processes where the environment forbids writing one.

An installed wheel ships (or compiles at install) the .pyc of every module; an editable
install under `PYTHONDONTWRITEBYTECODE=1` compiles each of our modules again at every
start (~0.1 s of CPU for the daemon, ~0.1 s for the `tp` CLI, on the path of `tp connect`).
`enable_cache` points `sys.pycache_prefix` at a folder of the user's cache instead: the
source trees and site-packages stay untouched (which is what the variable protects),
while our processes start from compiled code as an installed wheel's would. The cost:
the first start with an empty cache compiles everything it imports (third-party modules
too, their own `__pycache__` is not read under a prefix), once. An explicit
`PYTHONPYCACHEPREFIX` or an environment that writes bytecode is left as it is.

Only entry points call this (the daemon's `__main__`, the `tp` console script's `main`),
never a library import: it changes the whole interpreter.
"""

from __future__ import annotations

import sys
from pathlib import Path


def enable_cache(directory: Path) -> bool:
    """Compile into (and load from) `directory` when bytecode writing is off; True when
    the prefix was set."""
    if not sys.dont_write_bytecode or sys.pycache_prefix is not None:
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:  # no writable cache: compiling at each start is only slower
        return False
    sys.pycache_prefix = str(directory)
    sys.dont_write_bytecode = False
    return True
