"""Mirror benchmark, in one run against the sandbox (root):

    python bench/mirror.py [-n REQUESTS] [-r ROUNDS]     ($TP_SANDBOX_NAME reuses an instance)

The added latency a wiretap puts on the caller: p50/p99 of requests from a pod of the demo
app through the traffic-agent, with a wiretap that copies every request to the local code
in the laptop, against the SAME agent without a mirror (a personal intercept that matches
none of them keeps the agent on its parsing path, so only the mirror differs). Rounds
alternate (no mirror, mirror, no mirror, ...) so that drift of the machine hits both sides.
Also: whether every copy arrived with both answers, and the drops the agent counted.
Target: under 0.3 ms added at p50.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import subprocess
import sys
import time
from typing import Any

TP = [sys.executable, "-m", "tp_jupyter.cli"]
SVC = "dataprocessingservice"

PROBE = r"""
import http.client, json, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection(host, port, timeout=20)
out = []
for i in range(n + 20):
    t = time.perf_counter()
    c.request("GET", "/color")
    c.getresponse().read()
    if i >= 20:   # warm-up excluded
        out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=500,
                        help="requests per round (after 20 warm-up ones)")
    parser.add_argument("-r", "--rounds", type=int, default=3,
                        help="rounds of each kind, alternating")
    args = parser.parse_args()

    from kubernetes import client, config
    from kubernetes.stream import stream
    from tp_sandbox import lifecycle
    from tp_sandbox.paths import Instance

    instance = Instance.from_env()
    created = not lifecycle.status(instance).up
    if created:
        instance = Instance(f"b{secrets.token_hex(3)}")
        lifecycle.up(instance, laptops=1, progress=lambda _: None)
    ns = f"bench-{secrets.token_hex(3)}"
    local_app: subprocess.Popen[bytes] | None = None

    def laptop(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(lifecycle.exec_argv(instance, 1, argv),
                              env=lifecycle.exec_env(instance, 1), capture_output=True,
                              text=True, check=False, **kw)

    def tp(*argv: str, timeout: float = 180) -> str:
        done = laptop([*TP, *argv], timeout=timeout)
        if done.returncode:
            raise SystemExit(f"tp {argv[0]} failed: {done.stderr.strip()}")
        return done.stdout

    cfg = client.Configuration()
    config.load_kube_config(str(instance.kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    core = client.CoreV1Api(api)
    try:
        lifecycle.demo(instance, namespace=ns, progress=lambda _: None)
        local_app = subprocess.Popen(
            lifecycle.exec_argv(instance, 1, [sys.executable, "-m",
                                              "tp_sandbox.demo.dataprocessingservice"]),
            env={**lifecycle.exec_env(instance, 1), "COLOR": "blue", "PORT": "3000"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: laptop(["curl", "-s", "127.0.0.1:3000/color"]).returncode == 0, 30)
        tp("connect")
        # the agent on its parsing path, matching nothing the probe sends
        tp("intercept", SVC, "-n", ns, "-p", "3000", "--mount", "false",
           "--http-match", "x-bench=never")
        caller = core.list_namespaced_pod(
            ns, label_selector="app=verylargejavaservice").items[0].metadata.name

        def from_pod() -> list[float]:
            out = stream(core.connect_get_namespaced_pod_exec, caller, ns,
                         command=["python3", "-c", PROBE, SVC, "3000", str(args.requests)],
                         stdout=True, stderr=True, stdin=False, tty=False)
            return list(json.loads(str(out).strip().splitlines()[-1]))

        plain: list[float] = []
        mirrored: list[float] = []
        copies = 0
        for _ in range(args.rounds):
            plain += from_pod()
            tp("wiretap", SVC, "-n", ns, "-p", "3000", "--name", "bench-wt")
            mirrored += from_pod()
            copies += args.requests + 20
            status = json.loads(tp("status", "--format", "json"))
            wt = next(ic for ic in status["intercepts"] if ic["name"] == "bench-wt")
            tp("leave", "bench-wt")
        rows = json.loads(tp("traffic", "bench-wt", "--format", "json"))["rows"]
        both = [r for r in rows if r["mode"] == "mirror" and r["local_status"] == 200
                and r["status"] == 200]
        print(f"{'requests from a pod (ms)':44} {'p50':>8} {'p99':>8} {'mean':>8}")
        for label, values in (("same agent, no mirror (baseline)", plain),
                              ("with a wiretap copying every request", mirrored)):
            print(f"{label:44} {pct(values, .5):8.3f} {pct(values, .99):8.3f} "
                  f"{statistics.fmean(values):8.3f}")
        added = pct(mirrored, .5) - pct(plain, .5)
        print(f"added by the mirror: p50 {added:+.3f} ms (target < 0.3 ms), ratio "
              f"{pct(mirrored, .5) / pct(plain, .5):.2f}x; p99 "
              f"{pct(mirrored, .99) - pct(plain, .99):+.3f} ms")
        print(f"copies: {copies} sent by callers, {len(both)} rows with both answers kept by "
              f"the daemon, last round's counters: {wt['mirror']}")
        return 0 if added < 0.3 else 1
    finally:
        laptop([*TP, "uninstall", "--everything"], timeout=240)
        laptop([*TP, "quit"], timeout=60)
        if local_app is not None:
            local_app.terminate()
            local_app.wait(timeout=10)
        with contextlib.suppress(Exception):
            core.delete_namespace(ns)
        api.close()
        if created:
            lifecycle.down(instance, keep_logs=False)


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
