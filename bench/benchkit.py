"""What the sandbox benchmarks share (bench/intercept.py, mirror.py, hold.py, faults.py):
the demo app in a fresh namespace of a sandbox, laptop 1 running the local copy of the
app ("blue", port 3000) and connected with `tp connect`, everything removed afterwards;
and percentiles.

    with demo_sandbox() as sb:          # $TP_SANDBOX_NAME reuses an instance
        sb.tp("intercept", SVC, "-n", sb.ns, "-p", "3000", ...)
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

TP = [sys.executable, "-m", "tp_jupyter.cli"]
SVC = "dataprocessingservice"

PROBE = r"""
import http.client, json, sys, time
host, port, n, header = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection(host, port, timeout=20)
hs = dict([header.split(":", 1)]) if header else {}
out = []
for i in range(n + 20):
    t = time.perf_counter()
    c.request("GET", "/color", headers=hs)
    c.getresponse().read()
    if i >= 20:   # warm-up excluded
        out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""
"""`python -c PROBE HOST PORT N HEADER`: N keep-alive GET /color (after 20 warm-up ones,
with HEADER "name:value" or none if empty); prints their milliseconds as JSON."""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def wait(condition: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s")
        time.sleep(0.2)


@dataclass
class Sandbox:
    instance: Any
    ns: str
    core: Any   # kubernetes CoreV1Api with the sandbox's kubeconfig

    def laptop(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run `argv` in laptop 1 to completion, output captured."""
        from tp_sandbox import lifecycle

        return subprocess.run(lifecycle.exec_argv(self.instance, 1, argv),
                              env=lifecycle.exec_env(self.instance, 1), capture_output=True,
                              text=True, check=False, **kw)

    def popen(self, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start `argv` in laptop 1 in the background (the caller stops it)."""
        from tp_sandbox import lifecycle

        env = {**lifecycle.exec_env(self.instance, 1), **kw.pop("env", {})}
        return subprocess.Popen(lifecycle.exec_argv(self.instance, 1, argv), env=env, **kw)

    def tp(self, *argv: str, timeout: float = 180) -> str:
        """`tp ARGV` in laptop 1; its output, or exit with its error."""
        done = self.laptop([*TP, *argv], timeout=timeout)
        if done.returncode:
            raise SystemExit(f"tp {argv[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def caller_pod(self) -> str:
        """The demo's verylargejavaservice pod, the in-cluster caller of the benchmarks."""
        pods = self.core.list_namespaced_pod(self.ns, label_selector="app=verylargejavaservice")
        return str(pods.items[0].metadata.name)


@contextlib.contextmanager
def demo_sandbox(*, uninstall: bool = True) -> Iterator[Sandbox]:
    """The sandbox of $TP_SANDBOX_NAME if up, else a new one (taken down afterwards);
    the demo app in namespace bench-xxxxxx; laptop 1 connected, its local app answering.
    Afterwards: `tp uninstall --all-agents -n NS` (unless `uninstall` is False), `tp quit`, the
    local app stopped, the namespace deleted."""
    from kubernetes import client, config
    from tp_sandbox import lifecycle
    from tp_sandbox.paths import Instance

    instance = Instance.from_env()
    created = not lifecycle.status(instance).up
    if created:
        instance = Instance(f"b{secrets.token_hex(3)}")
        lifecycle.up(instance, laptops=1, progress=lambda _: None)
    cfg = client.Configuration()
    config.load_kube_config(str(instance.kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    sb = Sandbox(instance, f"bench-{secrets.token_hex(3)}", client.CoreV1Api(api))
    local_app: subprocess.Popen[Any] | None = None
    try:
        lifecycle.demo(instance, namespace=sb.ns, progress=lambda _: None)
        local_app = sb.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                             env={"COLOR": "blue", "PORT": "3000"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: sb.laptop(["curl", "-s", "127.0.0.1:3000/color"]).returncode == 0, 30)
        sb.tp("connect")
        yield sb
    finally:
        if uninstall:
            # the developer's part: the manager stays, as the admin installed it at `up`
            sb.laptop([*TP, "uninstall", "--all-agents", "-n", sb.ns], timeout=240)
        sb.laptop([*TP, "quit"], timeout=60)
        if local_app is not None:
            local_app.terminate()
            local_app.wait(timeout=10)
        with contextlib.suppress(Exception):
            sb.core.delete_namespace(sb.ns)
        api.close()
        if created:
            lifecycle.down(instance, keep_logs=False)
