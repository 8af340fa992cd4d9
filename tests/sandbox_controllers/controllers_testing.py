"""A real API server on loopback plus the controllers process, with official
`kubernetes` clients (the approach of tests/sandbox_api/conftest.py)."""

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
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from tp_sandbox.pki import default_sans, ensure_pki

ADMIN_TOKEN = "admin-token-for-controller-tests"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `cond` until truthy (returned) or raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = cond()
        except client.ApiException as exc:
            last = exc
            if exc.status != 404:
                raise
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s (last: {last!r})")
        time.sleep(0.05)


def _ready(url: str, ca: Path, proc: subprocess.Popen[bytes]) -> None:
    http = urllib3.PoolManager(ca_certs=str(ca), cert_reqs="CERT_REQUIRED")

    def ok() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"apiserver exited with {proc.returncode}")
        try:
            return http.request("GET", url + "/readyz", timeout=1.0).data == b"ok"
        except urllib3.exceptions.HTTPError:
            return False

    wait_for(ok, START_TIMEOUT, "apiserver /readyz")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Cluster:
    url: str
    state_dir: Path
    kubeconfig: Path
    apiserver: subprocess.Popen[bytes]
    settings: Path

    def start_controllers(self, *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.state_dir / "controllers.log", "ab")  # noqa: SIM115 - owned by proc
        env = {**os.environ, "TP_SETTINGS": str(self.settings)}
        return subprocess.Popen(
            [sys.executable, "-m", "tp_sandbox.controllers", "--kubeconfig",
             str(self.kubeconfig), "--log-level", "DEBUG", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state_dir = tmp_path_factory.mktemp("controllers")
    ips, dns = default_sans("172.30.0.1", "10.96.0.1", "cluster.local")
    ensure_pki(state_dir / "pki", ips, dns)
    (state_dir / "tokens.json").write_text(json.dumps(
        {ADMIN_TOKEN: {"user": "admin", "groups": ["system:masters"]}}))
    settings = state_dir / "settings.json"
    settings.write_text(json.dumps({"controllers": {"resync_interval": 5.0,
                                                    "retry_backoff_max": 1.0}}))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with open(state_dir / "apiserver.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tp_sandbox.apiserver", "--state-dir", str(state_dir),
             "--listen", f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "TP_SETTINGS": str(settings)})
    ca = state_dir / "pki" / "ca.crt"
    try:
        _ready(url, ca, proc)
    except BaseException:
        _stop(proc)
        raise
    kubeconfig = state_dir / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sandbox",
        "clusters": [{"name": "sandbox", "cluster": {"server": url,
                                                      "certificate-authority": str(ca)}}],
        "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "admin",
                                                      "namespace": "default"}}],
    }))
    yield Cluster(url, state_dir, kubeconfig, proc, settings)
    _stop(proc)
    if os.environ.get("TP_SHOW_LOGS"):
        print((state_dir / "apiserver.log").read_text())
        print((state_dir / "controllers.log").read_text())


@pytest.fixture(scope="session")
def controllers(cluster: Cluster) -> Iterator[subprocess.Popen[bytes]]:
    proc = cluster.start_controllers()
    yield proc
    _stop(proc)


@pytest.fixture(scope="session")
def kube(cluster: Cluster, controllers: subprocess.Popen[bytes]) -> client.ApiClient:
    return config.new_client_from_config(str(cluster.kubeconfig))


@pytest.fixture
def core(kube: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


@pytest.fixture
def apps(kube: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube)


_counter = iter(range(10**6))


@pytest.fixture
def namespace(core: client.CoreV1Api) -> str:
    name = f"c{os.getpid() % 10000}-{next(_counter)}"
    core.create_namespace({"metadata": {"name": name}})
    return name
