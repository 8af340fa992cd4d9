"""`python -m tp_sandbox.controllers --kubeconfig PATH`: run the controllers until
SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
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
        stop.wait()
    finally:
        manager.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
