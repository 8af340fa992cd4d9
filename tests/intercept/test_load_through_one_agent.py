"""Mixed load through one traffic-agent routes every request exactly (root).

Two developers' personal intercepts (laptop 1: `x-dev: alice` -> local "alice", laptop 2:
`x-dev: bob` -> local "bob") on the demo's dataprocessingservice, plus unmatched
requests that the pod answers ("green"), in bench/load.py's mix (25 % alice, 25 % bob,
50 % unmatched: no header or `x-dev: carol`), sent at once from three client pods over
keep-alive and fresh connections: 10,000 requests, none misrouted, none failed.
Correctness under concurrency, not speed (bench/load.py measures the rates).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1200)]

TP = f"{sys.executable} -m tp_jupyter.cli"
SVC = "dataprocessingservice"
PODS = 3
REQUESTS = 10_000

CLIENT = r"""
import http.client, json, sys, threading
n, connections = int(sys.argv[1]), int(sys.argv[2])
want = {"alice": "alice", "bob": "bob", "": "green", "carol": "green"}
kinds = list(want)
counts = {"ok": 0, "misrouted": 0, "failed": 0}
lock = threading.Lock()
def run(k):
    conn = None
    for i in range(k, n, connections):
        kind = kinds[i % len(kinds)]
        outcome = "failed"
        try:
            if conn is None or i % 7 == 0:   # mostly keep-alive, some fresh connections
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection("dataprocessingservice", 3000, timeout=20)
            conn.request("GET", "/color", headers={"x-dev": kind} if kind else {})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                outcome = "ok" if json.loads(body) == want[kind] else "misrouted"
        except Exception:
            conn = None
        with lock:
            counts[outcome] += 1
threads = [threading.Thread(target=run, args=(k,)) for k in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(counts))
"""


def _local_app(lap: Laptop, who: str) -> subprocess.Popen[str]:
    proc = lap.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                     env={"COLOR": who, "PORT": "3000"}, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    wait_for(lambda: who in lap.run("curl -sS -m 5 http://127.0.0.1:3000/color").stdout, 30,
             f"the local app of {who}")
    return proc


@pytest.fixture(scope="module")
def two_developers(sandbox: Any, apps: Any, core: Any) -> Iterator[str]:
    """The demo with alice's and bob's personal intercepts and three client pods."""
    from tp_sandbox import lifecycle

    if not sandbox.has_node:
        pytest.skip("the sandbox runs without a node")
    ns = f"load-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=ns, progress=lambda _: None)
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "clients"},
        "spec": {"replicas": PODS, "selector": {"matchLabels": {"app": "clients"}},
                 "template": {"metadata": {"labels": {"app": "clients"}},
                              "spec": {"containers": [{
                                  "name": "client", "image": "python",
                                  "command": ["python3", "-c",
                                              "import time; time.sleep(1e9)"]}]}}}})
    laptops, local = [Laptop(sandbox, 1), Laptop(sandbox, 2)], []
    try:
        for lap, who in zip(laptops, ("alice", "bob"), strict=True):
            local.append(_local_app(lap, who))
            connected = lap.run(f"{TP} connect", timeout=180)
            assert connected.returncode == 0, connected.stderr
            made = lap.run(f"{TP} intercept {SVC} -n {ns} -p 3000 --mount false "
                           f"--http-match x-dev={who}", timeout=180)
            assert made.returncode == 0, made.stderr
        yield ns
    finally:
        for lap in laptops:
            lap.run(f"{TP} leave {SVC}", timeout=60)
            lap.run(f"{TP} quit", timeout=30)
        for proc in local:
            proc.terminate()
            proc.wait(timeout=10)
        core.delete_namespace(ns)


def test_ten_thousand_mixed_requests_from_three_pods_are_all_routed_exactly(
        two_developers: str, core: Any, sandbox: Any) -> None:
    from kubernetes import client, config
    from kubernetes.stream import stream

    ns = two_developers

    def running() -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod(
            ns, label_selector="app=clients").items if p.status.phase == "Running"]

    pods = wait_for(lambda: len(running()) == PODS and running(), 90, "the client pods")
    results: dict[str, dict[str, int]] = {}

    def send(pod: str, n: int) -> None:
        # an ApiClient of its own: stream() patches its client's request method while it
        # runs, so concurrent streams on the shared client would leave it patched
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(sandbox.kubeconfig), client_configuration=cfg)
        with client.ApiClient(cfg) as api:
            out = stream(client.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, ns,
                         command=["python3", "-c", CLIENT, str(n), "8"], stdout=True,
                         stderr=True, stdin=False, tty=False, _request_timeout=900)
        results[pod] = json.loads(str(out).strip().splitlines()[-1])

    shares = [REQUESTS // PODS + (i < REQUESTS % PODS) for i in range(PODS)]
    threads = [threading.Thread(target=send, args=(pod, n)) for pod, n in zip(pods, shares,
                                                                                strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(960)
    assert len(results) == PODS, results
    total = {k: sum(r[k] for r in results.values()) for k in ("ok", "misrouted", "failed")}
    assert total == {"ok": REQUESTS, "misrouted": 0, "failed": 0}
