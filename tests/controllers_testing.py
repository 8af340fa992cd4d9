"""A real API server on loopback plus the controllers process, with official
`kubernetes` clients (the API server process is the one of tests/apiserver_process.py)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import waiting
from apiserver_process import ApiServerProcess, new_namespace, start_apiserver, stop_process
from kubernetes import client, config

ADMIN_TOKEN = "admin-token-for-controller-tests"


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """The shared poller; a 404 from the API means "not there yet"."""
    return waiting.wait_for(cond, timeout, what, ignore=lambda e: isinstance(
        e, client.ApiException) and e.status == 404)


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


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def web(name: str = "web", replicas: int = 2, image: str = "busybox",
        strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {
                         "maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{
                                      "name": "c", "image": image,
                                      "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


def mark_ready(core: client.CoreV1Api, ns: str, name: str, ip: str, ready: bool = True) -> None:
    core.patch_namespaced_pod_status(name, ns, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                        "lastTransitionTime": now()}]}})


def rs_of(apps: client.AppsV1Api, ns: str) -> list[Any]:
    return sorted(apps.list_namespaced_replica_set(ns).items, key=lambda r: r.metadata.name)


def pods_of(core: client.CoreV1Api, ns: str, live: bool = True) -> list[Any]:
    return [p for p in core.list_namespaced_pod(ns).items
            if not (live and p.metadata.deletion_timestamp)]
