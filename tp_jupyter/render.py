"""How the front's results look: CLI text everywhere, HTML in a notebook, transient progress.

    Rendered        mixin of every result object: IPython's text/plain is `str(result)`,
                    the text the CLI prints; text/html defaults to that text, escaped
    progress(shell) a context manager: progress lines in one transient display that
                    empties when done

Without `_repr_pretty_` IPython's text/plain of a result dataclass would be its repr (a
protobuf dump for `tp list`); with it a terminal IPython and a notebook's plain-text view
read like the seed document, and nbval can compare them.

Long operations (connect, intercept) report progress on stderr, as the CLI prints it.
In a notebook the lines depend on timing (how long a rollout waits), so `progress`
shows them in one display that is updated in place and emptied at the end: the user sees
what is happening, and the cell keeps only its result.

Errors: none of its own; a failing display update is logged, never raised (it must not
turn a working intercept into a failed cell).
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


class Rendered:
    """Results render themselves: `str()` is the CLI's text, shown as IPython's text/plain
    and as the repr. A dataclass subclass says `repr=False`: IPython takes the first
    `__repr__` or `_repr_pretty_` along the MRO, and a generated repr would win."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return html.escape(str(self))


class _ProgressStream(io.TextIOBase):
    """Stands in for sys.stderr during an operation: each line replaces the display."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            text = self._partial + s
            *lines, self._partial = text.split("\n")
        for line in lines:
            if line.strip():
                self.show(line)
        return len(s)

    def show(self, line: str) -> None:
        try:
            self.handle.update({"text/plain": line,
                                "text/html": f"<span style='color:#666'>{html.escape(line)}"
                                             "&hellip;</span>"}, raw=True)
        except Exception:
            log.exception("showing progress failed")

    def clear(self) -> None:
        try:
            self.handle.update({"text/plain": "", "text/html": ""}, raw=True)
        except Exception:
            log.exception("clearing the progress line failed")


@contextlib.contextmanager
def progress(shell: Any, enabled: bool = True) -> Iterator[None]:
    """In a notebook kernel: stderr lines become one transient progress line (see above).

    Elsewhere (terminal IPython, tests without a kernel), or not `enabled` (commands that
    report no progress: no empty line below every cell), stderr is left alone.
    """
    if not enabled or getattr(shell, "kernel", None) is None:
        yield
        return
    from IPython.display import display

    # the same empty bundle first and last: the saved notebook keeps nothing that varies
    handle = display({"text/plain": "", "text/html": ""}, raw=True,  # type: ignore[no-untyped-call]
                     display_id=True)
    stream = _ProgressStream(handle)
    saved = sys.stderr
    sys.stderr = stream
    try:
        yield
    finally:
        sys.stderr = saved
        stream.clear()
