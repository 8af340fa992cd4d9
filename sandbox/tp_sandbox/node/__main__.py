"""``python -m tp_sandbox.node --name NAME --kubeconfig PATH``: the sandbox's node.

Starts, in order: the kubelet (Node object, pods), its API socket, kube-proxy and the
cluster DNS; on SIGTERM/SIGINT stops them in reverse order. Stopping the kubelet stops
every container and removes the pod network namespaces (the sandbox is going down);
the Pod objects stay and are started again when the node comes back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import kubernetes

from .. import netns
from ..paths import Instance
from .errors import NodeError, NodeUsageError
from .kubelet import Kubelet
from .server import KubeletServer

log = logging.getLogger("tp_sandbox.node")


async def run(instance: Instance, kubeconfig: Path, with_services: bool) -> None:
    if not netns.exists(instance.node_netns):
        raise NodeUsageError(f"node network namespace {instance.node_netns} is missing: "
                             "run `tp sandbox up` first")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kubelet = Kubelet(instance, kubeconfig)
    server = KubeletServer(kubelet, instance.kubelet_socket)
    services: list[Any] = []
    try:
        await kubelet.start()
        await server.start()
        if with_services:
            from .dns import ClusterDNS
            from .proxy import ServiceProxy
            for cls in (ServiceProxy, ClusterDNS):
                client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
                    config_file=str(kubeconfig))
                component = cls(instance, client)
                await asyncio.to_thread(component.start)
                services.append(component)
        log.info("node %s up", instance.node_netns)
        await stop.wait()
        log.info("stopping")
    finally:
        for component in reversed(services):
            try:
                await asyncio.to_thread(component.stop)
            except Exception:
                log.exception("stopping %s failed", type(component).__name__)
        await server.stop()
        await kubelet.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tp_sandbox.node")
    parser.add_argument("--name", default="", help="sandbox instance name")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--no-services", action="store_true",
                        help="run only the kubelet (no kube-proxy, no cluster DNS)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")
    try:
        instance = Instance(args.name)
        asyncio.run(run(instance, args.kubeconfig, not args.no_services))
    except ValueError as exc:
        print(f"tp-sandbox node: {exc}", file=sys.stderr)
        return 2
    except NodeError as exc:
        print(f"tp-sandbox node: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
