"""A real sandbox API server process on loopback with a throwaway state dir.

Shared by the API-server tests (`sandbox_api/apiserver_testing.py`) and the
controller tests (`sandbox_controllers/controllers_testing.py`); imported by this
unique module name (tests/ is on sys.path: `pythonpath` in pyproject.toml).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import urllib3
from kubernetes import client
from tp_sandbox.pki import default_sans, ensure_pki

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, ca: Path, deadline_s: float, proc: subprocess.Popen[bytes]) -> None:
    """Poll `/readyz` until it answers `ok`; fail early when the process exits."""
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


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


@dataclass
class ApiServerProcess:
    """A running API server: its address, files and process."""

    url: str
    port: int
    state_dir: Path
    kubeconfig: Path
    """Admin kubeconfig (bearer token `token`)."""
    ca: Path
    proc: subprocess.Popen[bytes]
    log: Path
    settings: Path
    """The `TP_SETTINGS` file the server was started with (reuse it for other processes)."""


P = TypeVar("P", bound=ApiServerProcess)


def start_apiserver(state_dir: Path, token: str, settings: dict[str, Any], cls: type[P],
                    extra_listen: list[str] | None = None) -> P:
    """PKI, a token file with the admin `token`, `settings` as TP_SETTINGS; wait for ready.

    `cls` is ApiServerProcess or a subclass that adds a folder's helpers.
    """
    ips, dns = default_sans("172.30.0.1", "10.96.0.1", "cluster.local")
    ensure_pki(state_dir / "pki", ips, dns)
    (state_dir / "tokens.json").write_text(json.dumps(
        {token: {"user": "admin", "groups": ["system:masters"]}}))
    settings_file = state_dir / "settings.json"
    settings_file.write_text(json.dumps(settings))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    log = state_dir / "apiserver.log"
    argv = [sys.executable, "-m", "tp_sandbox.apiserver", "--state-dir", str(state_dir),
            "--listen", f"127.0.0.1:{port}"]
    for extra in extra_listen or []:
        argv += ["--listen", extra]
    env = {**os.environ, "TP_SETTINGS": str(settings_file)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    ca = state_dir / "pki" / "ca.crt"
    try:
        wait_ready(url, ca, START_TIMEOUT, proc)
    except BaseException:
        stop_process(proc)
        raise
    kubeconfig = state_dir / "kubeconfig"
    write_kubeconfig(kubeconfig, url, ca, token)
    return cls(url, port, state_dir, kubeconfig, ca, proc, log, settings_file)


# -- client fixtures over a folder's own `kube` fixture (import them into its conftest) --


@pytest.fixture
def core(kube: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


@pytest.fixture
def apps(kube: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube)


_counter = itertools.count()


def new_namespace(core: client.CoreV1Api, prefix: str) -> str:
    """Create a namespace named uniquely for this process (tests never delete them:
    the server is thrown away with its state dir)."""
    name = f"{prefix}{os.getpid() % 10000}-{next(_counter)}"
    core.create_namespace({"metadata": {"name": name}})
    return name
