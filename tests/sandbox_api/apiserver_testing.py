"""A real API server process on loopback with a throwaway state dir, and official
`kubernetes` clients for it (admin, and helpers to build clients from other tokens)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from kubernetes import client, config
from tp_sandbox.pki import default_sans, ensure_pki

ADMIN_TOKEN = "admin-token-for-tests"
START_TIMEOUT = 30.0
WATCH_HISTORY = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, ca: Path, deadline_s: float, proc: subprocess.Popen[bytes]) -> None:
    http = urllib3.PoolManager(ca_certs=str(ca), cert_reqs="CERT_REQUIRED")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"apiserver exited with {proc.returncode}")
        try:
            if http.request("GET", url + "/readyz", timeout=1.0).data == b"ok":
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"apiserver at {url} not ready after {deadline_s}s")


def write_kubeconfig(path: Path, url: str, ca: Path, token: str) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sandbox",
        "clusters": [{"name": "sandbox", "cluster": {"server": url,
                                                      "certificate-authority": str(ca)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "admin",
                                                      "namespace": "default"}}],
    }))


@dataclass
class Server:
    url: str
    port: int
    state_dir: Path
    kubeconfig: Path
    ca: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def raw(self, method: str, path: str, *, token: str | None = ADMIN_TOKEN,
            headers: dict[str, str] | None = None, body: bytes | None = None,
            timeout: float = 10.0) -> urllib3.BaseHTTPResponse:
        """A plain HTTPS request, for what the typed client does not expose."""
        http = urllib3.PoolManager(ca_certs=str(self.ca), cert_reqs="CERT_REQUIRED")
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        return http.request(method, self.url + path, headers=hdrs, body=body,
                            timeout=timeout, retries=False)

    def client_for(self, token: str) -> client.ApiClient:
        cfg = client.Configuration()
        cfg.host = self.url
        cfg.ssl_ca_cert = str(self.ca)
        cfg.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(cfg)


def start_server(state_dir: Path, extra_listen: list[str] | None = None) -> Server:
    ips, dns = default_sans("172.30.0.1", "10.96.0.1", "cluster.local")
    ensure_pki(state_dir / "pki", ips, dns)
    (state_dir / "tokens.json").write_text(json.dumps(
        {ADMIN_TOKEN: {"user": "admin", "groups": ["system:masters"]}}))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    log = state_dir / "apiserver.log"
    argv = [sys.executable, "-m", "tp_sandbox.apiserver", "--state-dir", str(state_dir),
            "--listen", f"127.0.0.1:{port}"]
    for extra in extra_listen or []:
        argv += ["--listen", extra]
    # A short watch history so that the 410 test can outrun it quickly.
    settings = state_dir / "settings.json"
    settings.write_text(json.dumps({"apiserver": {"watch_history": WATCH_HISTORY,
                                                  "watch_bookmark_interval": 1.0}}))
    env = {**os.environ, "TP_SETTINGS": str(settings)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    ca = state_dir / "pki" / "ca.crt"
    try:
        wait_ready(url, ca, START_TIMEOUT, proc)
    except BaseException:
        stop_server(proc)
        raise
    kubeconfig = state_dir / "kubeconfig"
    write_kubeconfig(kubeconfig, url, ca, ADMIN_TOKEN)
    return Server(url, port, state_dir, kubeconfig, ca, proc, log)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("apiserver"))
    yield srv
    stop_server(srv.proc)
    if os.environ.get("TP_SHOW_APISERVER_LOG"):
        print(srv.log.read_text())


@pytest.fixture(scope="session")
def kube(server: Server) -> client.ApiClient:
    return config.new_client_from_config(str(server.kubeconfig))


@pytest.fixture
def core(kube: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


@pytest.fixture
def apps(kube: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube)


_counter = iter(range(10**6))


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"t{os.getpid() % 10000}-{next(_counter)}"
    core.create_namespace({"metadata": {"name": name}})
    yield name


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition"
             ) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)
