"""Write cost of the API server's persistent store, in one run:

    python bench/apiserver_store.py [-n OBJECTS] [--rounds R]

Starts two API servers on loopback with throwaway state dirs, one keeping its objects
in memory only (`store_file=""`), one in SQLite (the default), and creates the same
N ConfigMaps through the official client in each, alternating R rounds, then a SIGKILL
+ restart of the persistent one to time how long it takes to load them again.
Target: under 10% slower per create through the API.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client
from tp_sandbox.pki import default_sans, ensure_pki

TOKEN = "bench-admin-token"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str, ca: Path, timeout: float = 60.0) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1, context=ctx) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def start(state: Path, store_file: str) -> tuple[subprocess.Popen[bytes], str]:
    ensure_pki(state / "pki", *default_sans("172.30.0.1", "10.96.0.1", "cluster.local"))
    (state / "tokens.json").write_text(json.dumps(
        {TOKEN: {"user": "admin", "groups": ["system:masters"]}}))
    (state / "settings.json").write_text(json.dumps({"apiserver": {"store_file": store_file}}))
    port = _port()
    env = {**os.environ, "TP_SETTINGS": str(state / "settings.json")}
    with open(state / "apiserver.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tp_sandbox.apiserver", "--state-dir",
                                 str(state), "--listen", f"127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"https://127.0.0.1:{port}"
    _ready(url, state / "pki" / "ca.crt")
    return proc, url


def core_for(url: str, state: Path) -> client.CoreV1Api:
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = url, str(state / "pki" / "ca.crt")
    cfg.api_key = {"authorization": f"Bearer {TOKEN}"}
    return client.CoreV1Api(client.ApiClient(cfg))


def create(core: Any, namespace: str, n: int) -> float:
    core.create_namespace({"metadata": {"name": namespace}})
    body: dict[str, Any] = {"data": {"key": "x" * 200}}
    started = time.perf_counter()
    for i in range(n):
        core.create_namespaced_config_map(namespace, {**body, "metadata": {"name": f"c{i}"}})
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="ConfigMaps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {"memory": Path(tmp) / "memory", "sqlite": Path(tmp) / "sqlite"}
        servers = {}
        for kind, d in dirs.items():
            d.mkdir()
            servers[kind] = start(d, "" if kind == "memory" else "apiserver.db")
        times: dict[str, list[float]] = {k: [] for k in dirs}
        try:
            for r in range(args.rounds):
                for kind, d in dirs.items():
                    core = core_for(servers[kind][1], d)
                    times[kind].append(create(core, f"bench{r}", args.n))
            for kind, ts in times.items():
                per = statistics.median(ts) / args.n * 1e3
                print(f"{kind:<7} {args.n} creates: median {statistics.median(ts):.2f}s "
                      f"({per:.2f} ms each) over {args.rounds} rounds")
            overhead = statistics.median(times["sqlite"]) / statistics.median(times["memory"])
            print(f"persistent store: {100 * (overhead - 1):+.1f}% per create")
            proc = servers["sqlite"][0]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = time.monotonic()
            servers["sqlite"] = start(dirs["sqlite"], "apiserver.db")
            print(f"restart after SIGKILL with {args.rounds * args.n} ConfigMaps stored: "
                  f"ready in {time.monotonic() - killed:.2f}s")
            core = core_for(servers["sqlite"][1], dirs["sqlite"])
            kept = sum(len(core.list_namespaced_config_map(f"bench{r}").items) - 1
                       for r in range(args.rounds))
            print(f"ConfigMaps kept: {kept}/{args.rounds * args.n}")
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
