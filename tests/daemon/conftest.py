"""Fixtures of the daemon's intercept unit tests: no root, no network namespaces.

A real sandbox API server process on loopback (no controllers, no node: the tests write
the Pods and Endpoints a rollout would produce), the REAL traffic-manager in-process
with its kube adapter on it, a REAL traffic-agent in-process (its pod address is
loopback, so the manager's tunnels reach its volume port), a real local HTTP server
as the intercept's target, and the daemon's `Intercepts` with a small owner that
arrives as a client and dials through the manager's Tunnel, as the Session does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver_process import (
    ApiServerProcess,
    apps,  # noqa: F401
    core,  # noqa: F401
    free_port,
    new_namespace,
    start_apiserver,
    stop_process,
)
from daemon_testing import Daemon, Owner, until
from http_testing import http_server
from kubernetes import client, config
from manager_testing import Manager, running_manager
from manager_testing import fast_settings as fast_settings_for
from tp_cluster.agent.config import AgentConfig, MountConfig, PortConfig, ServicePort
from tp_cluster.agent.runtime import Agent
from tp_cluster.kube import Kube
from tp_cluster.manager.dns import ClusterResolver
from tp_daemon.intercepts import Intercepts
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as mpb

ADMIN_TOKEN = "admin-token-for-daemon-tests"


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.ApiClient]:
    """A client of a sandbox API server process started for this run (no controllers)."""
    server = start_apiserver(tmp_path_factory.mktemp("apiserver"), ADMIN_TOKEN, {},
                             ApiServerProcess)
    try:
        yield config.new_client_from_config(str(server.kubeconfig))
    finally:
        stop_process(server.proc)
        if os.environ.get("TP_SHOW_LOGS"):
            print(server.log.read_text())


@pytest.fixture
def namespace(core: client.CoreV1Api) -> str:  # noqa: F811
    return new_namespace(core, "d")


@pytest.fixture
def fast_settings() -> Iterator[Any]:
    with fast_settings_for(activate_timeout=10.0, manager_rollout_poll=0.1,
                           daemon_stream_retry=0.1, local_dial_timeout=2.0) as settings:
        settings.connect.session_ttl = 10.0
        yield settings


@pytest.fixture
async def manager(fast_settings: Any, kube: client.ApiClient) -> AsyncIterator[Manager]:
    async with running_manager(ClusterResolver("127.0.0.1", "cluster.local", 1.0),
                               grace=0.5, kube=Kube(kube), token=ADMIN_TOKEN) as manager:
        yield manager


@pytest.fixture
async def http_servers() -> AsyncIterator[dict[str, int]]:
    """Ports of the developer's code on the workstation ("local": the intercept's target)
    and of the app container behind the agent ("app")."""
    started = {name: await http_server(name) for name in ("local", "app")}
    yield {name: port for name, (_, port) in started.items()}
    for runner, _ in started.values():
        await runner.cleanup()


@pytest.fixture
def local_server(http_servers: dict[str, int]) -> int:
    return http_servers["local"]


@pytest.fixture
def app_port(http_servers: dict[str, int]) -> int:
    return http_servers["app"]


@pytest.fixture
async def daemon(manager: Manager, namespace: str, fast_settings: Any
                 ) -> AsyncIterator[Daemon]:
    session = await manager.stub.ArriveAsClient(mpb.ClientInfo(
        name="dev@laptop", namespace=namespace, version=VERSION), timeout=5)
    owner = Owner(fast_settings.connect, manager.stub, session, namespace)
    progress: list[str] = []
    intercepts = Intercepts(owner, fast_settings.intercept,
                            lambda op, message, fraction, done: progress.append(message))
    intercepts.start()
    yield Daemon(intercepts, owner, progress)
    await intercepts.stop()
    with contextlib.suppress(Exception):
        await manager.stub.Depart(session, timeout=2)


@pytest.fixture
def volume_root(tmp_path: Path) -> Path:
    """What the injector would mount into the agent: the app's /var/data volume."""
    root = tmp_path / "agent-mounts"
    (root / "var" / "data").mkdir(parents=True)
    (root / "var" / "data" / "config.txt").write_text("color=blue\n")
    return root


@dataclasses.dataclass
class AgentHandle:
    agent: Agent
    port: int


@pytest.fixture
async def start_agent(manager: Manager, app_port: int, volume_root: Path, tmp_path: Path
                      ) -> AsyncIterator[Any]:
    """Starts the real agent of `web` in a namespace (its pod address is loopback); it
    has no pod, so it presents the admin token (who may change the workload)."""
    started: list[Agent] = []
    token_file = tmp_path / "agent-token"
    token_file.write_text(ADMIN_TOKEN)

    async def start(namespace: str, workload: str = "web") -> AgentHandle:
        port = free_port()
        cfg = AgentConfig(
            name=workload, namespace=namespace, kind="Deployment", pod_name=f"{workload}-new",
            pod_ip="127.0.0.1", manager_address=f"127.0.0.1:{manager.port}",
            ports=(PortConfig("http", port, app_port, (ServicePort("http", 80),)),),
            mounts=(MountConfig("data", "/var/data", True),), app_container="app",
            app_env={"COLOR": "blue"}, listen_host="127.0.0.1",
            mount_root=str(volume_root), token_file=str(token_file))
        agent = Agent(cfg)
        await agent.start()
        started.append(agent)
        await until(agent.link.arrived.is_set, "the agent to arrive")
        return AgentHandle(agent, port)

    yield start
    for agent in started:
        await agent.stop(grace=0.5)
