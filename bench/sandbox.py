"""Sandbox benchmark: how fast `up` serves, how fast the demo is Ready, and port-forward
throughput against its physical baseline, measured side by side in the same run.

    python bench/sandbox.py [--mib 64] [--keep]

Brings up a fresh named instance (removed at the end unless --keep), then prints:
- seconds from `up` to the API serving /readyz (target < 10 s);
- with the node: seconds from `up` to the node Ready, and `tp sandbox demo` to Ready;
- MiB/s of the official client's pod port-forward and of direct TCP node->pod for the
  same pod and payload, and their ratio (port-forward / direct).
"""

from __future__ import annotations

import argparse
import importlib.util
import secrets
import socket
import sys
import time
from typing import Any

from tp_sandbox import kubeconfig as kc
from tp_sandbox import lifecycle, netns
from tp_sandbox.paths import Instance

SERVER = """
import socket, sys
n = int(sys.argv[1])
chunk = b"x" * 65536
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 9000)); srv.listen(8)
while True:
    c, _ = srv.accept()
    left = n
    while left > 0:
        c.sendall(chunk[:min(left, len(chunk))]); left -= min(left, len(chunk))
    c.close()
"""


def node_built() -> bool:
    try:
        return importlib.util.find_spec("tp_sandbox.node.__main__") is not None
    except ImportError:
        return False


def read_all(sock: Any, total: int) -> float:
    """Seconds to receive `total` bytes from `sock`."""
    start = time.perf_counter()
    got = 0
    while got < total:
        data = sock.recv(1 << 20)
        if not data:
            break
        got += len(data)
    elapsed = time.perf_counter() - start
    if got < total:
        raise RuntimeError(f"stream ended after {got} of {total} bytes")
    return elapsed


def throughput(instance: Instance, nbytes: int) -> tuple[float, float]:
    """(direct MiB/s, port-forward MiB/s) for one pod streaming `nbytes` per connection."""
    from kubernetes import client
    from kubernetes.stream import portforward

    name, ns = "bench-source", "default"
    with kc.api_client(instance.kubeconfig) as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod(ns, client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(containers=[client.V1Container(
                name="source", image="python:3.11",
                command=["python3", "-c", SERVER, str(nbytes)])])))
        deadline = time.monotonic() + 60
        while True:
            pod = core.read_namespaced_pod(name, ns)
            if pod.status and pod.status.pod_ip and pod.status.phase == "Running":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("bench pod did not run within 60 s")
            time.sleep(0.2)
        ip = pod.status.pod_ip
        time.sleep(0.5)  # the server binds right after start; no readiness probe here
        with netns.socket_in(instance.node_netns) as s:
            s.connect((ip, 9000))
            direct = read_all(s, nbytes)
        pf = portforward(core.connect_get_namespaced_pod_portforward, name, ns, ports="9000")
        try:
            sock = pf.socket(9000)
            sock.setblocking(True)
            forwarded = read_all(sock, nbytes)
            sock.close()
        finally:
            pf.close()
        core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
    mib = nbytes / (1 << 20)
    return mib / direct, mib / forwarded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="payload per stream (MiB)")
    parser.add_argument("--keep", action="store_true", help="leave the instance up")
    args = parser.parse_args()
    has_node = node_built()
    instance = Instance(f"b{secrets.token_hex(3)}")
    marks: dict[str, float] = {}
    started = time.monotonic()

    def progress(line: str) -> None:
        if line.startswith("API server ready"):
            marks["api"] = time.monotonic() - started

    try:
        result = lifecycle.up(instance, laptops=1, node=has_node, progress=progress)
        print(f"up -> API serving:        {marks.get('api', result.seconds):6.2f} s "
              f"(target < 10 s)")
        if not has_node:
            print("node not built yet: demo and throughput skipped")
            return 0
        print(f"up -> node Ready:         {result.seconds:6.2f} s")
        demo = lifecycle.demo(instance, progress=lambda _: None)
        print(f"demo -> Available:        {demo.seconds:6.2f} s "
              f"(up -> demo Ready {result.seconds + demo.seconds:.2f} s)")
        direct, forwarded = throughput(instance, args.mib << 20)
        print(f"direct TCP node->pod:     {direct:8.1f} MiB/s (baseline)")
        print(f"port-forward (official):  {forwarded:8.1f} MiB/s")
        print(f"ratio port-forward/direct: {forwarded / direct:.3f}")
    finally:
        if not args.keep:
            lifecycle.down(instance, keep_logs=False)
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(120)
    sys.exit(main())
