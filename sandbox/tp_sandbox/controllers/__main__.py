"""`python -m tp_sandbox.controllers --kubeconfig PATH [--heartbeat FILE]`: run the
controllers until SIGTERM/SIGINT.

With `--heartbeat`, the main thread writes the time to FILE every `heartbeat_interval`
while every informer has listed at least once: the supervisor and `tp sandbox status`
call the controllers stalled when it gets old (a hung or stopped process)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from tp_protocol.settings import get_settings

from .errors import ControllerError
from .kube import Kube
from .manager import CONTROLLERS, Manager, select


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tp_sandbox.controllers",
                                     description="Kubernetes controllers of the sandbox.")
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the cluster")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    parser.add_argument("--controllers", default="*",
                        help=f"'*' or a list of {', '.join(CONTROLLERS)} (prefix - to drop)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--heartbeat", default=None, type=Path,
                        help="file to write the time to while the controllers run")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    try:
        names = select(args.controllers)
    except ValueError as exc:
        parser.error(str(exc))
    settings = get_settings().controllers
    try:
        kube = Kube.from_kubeconfig(args.kubeconfig, settings.request_timeout,
                                    settings.connection_pool_size, args.context)
    except ControllerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    manager = Manager(kube, settings, names)
    manager.start()
    try:
        while not stop.wait(settings.heartbeat_interval):
            if args.heartbeat is not None and all(
                    inf.synced.is_set() for inf in manager.informers.all()):
                with contextlib.suppress(OSError):
                    args.heartbeat.write_text(f"{time.time():.3f}\n")
    finally:
        manager.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
