"""One named background thread of the front, stopped and joined the same way everywhere.

    worker = Worker("tp-traffic-watch", loop)   # loop() runs until worker.stopping is set
    worker.start(); ...; worker.stop(wake)       # wake() interrupts what loop() waits on

The live traffic feed and the panel's refresh each run one. Errors: none raised; a thread
that outlives `notebook.handler_stop_timeout` is logged (it is a daemon thread and dies
with the kernel).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tp_protocol.settings import get_settings

log = logging.getLogger(__name__)


class Worker:
    """A daemon thread named `name` (tp-...) that runs `target` once, when started."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._target = target
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._target, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, wake: Callable[[], None] | None = None) -> None:
        """Set `stopping`, call `wake` (to interrupt what the thread waits on), join it."""
        self.stopping.set()
        if wake is not None:
            wake()
        if self._thread is not None:
            self._thread.join(get_settings().notebook.handler_stop_timeout)
            if self._thread.is_alive():
                log.error("the %s thread did not stop in time", self.name)
            self._thread = None
