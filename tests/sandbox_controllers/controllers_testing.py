"""A real API server on loopback plus the controllers process, with official
`kubernetes` clients (the API server process is the one of tests/apiserver_process.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from apiserver_process import ApiServerProcess, new_namespace, start_apiserver, stop_process
from kubernetes import client, config

ADMIN_TOKEN = "admin-token-for-controller-tests"


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


@dataclass
class Cluster(ApiServerProcess):
    """The API server, and how to start the controllers against it."""

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
    settings = {"controllers": {"resync_interval": 5.0, "retry_backoff_max": 1.0}}
    cluster = start_apiserver(state_dir, ADMIN_TOKEN, settings, Cluster)
    yield cluster
    stop_process(cluster.proc)
    if os.environ.get("TP_SHOW_LOGS"):
        print(cluster.log.read_text())
        print((state_dir / "controllers.log").read_text())


@pytest.fixture(scope="session")
def controllers(cluster: Cluster) -> Iterator[subprocess.Popen[bytes]]:
    proc = cluster.start_controllers()
    yield proc
    stop_process(proc)


@pytest.fixture(scope="session")
def kube(cluster: Cluster, controllers: subprocess.Popen[bytes]) -> client.ApiClient:
    return config.new_client_from_config(str(cluster.kubeconfig))


@pytest.fixture
def namespace(core: client.CoreV1Api) -> str:
    return new_namespace(core, "c")
