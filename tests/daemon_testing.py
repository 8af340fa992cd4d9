"""Helpers of the daemon's intercept unit tests (imported by this unique module name):
the owner `Intercepts` asks, the workloads and rollouts the tests write, polling."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from kubernetes import client
from tp_daemon.intercepts import Intercepts
from tp_daemon.streams import Stream
from tp_daemon.tunnel import TunnelStream
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.settings import ConnectSettings


@dataclasses.dataclass
class Owner:
    """What `Intercepts` asks of the daemon's Session: the manager and a Tunnel dial."""

    settings: ConnectSettings
    stub: mgrpc.ManagerStub
    session: mpb.SessionInfo
    ns: str

    def manager(self) -> tuple[mgrpc.ManagerStub, mpb.SessionInfo]:
        return self.stub, self.session

    def namespace(self) -> str:
        return self.ns

    async def dial(self, ip: str, port: int) -> Stream:
        return await TunnelStream.open(self.stub, self.session, ip, port,
                                       dial_timeout=self.settings.dial_timeout)

    def channel_trouble(self) -> None:
        """The Session rebuilds its channel; this owner's channel is the test's own."""


@dataclasses.dataclass
class Daemon:
    """The daemon's intercept side, connected; `progress` collects its messages."""

    intercepts: Intercepts
    owner: Owner
    progress: list[str]



def deployment(name: str, with_service: bool = True) -> tuple[dict[str, Any],
                                                             dict[str, Any] | None]:
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{
                                  "name": "app", "image": "python",
                                  "ports": [{"name": "http", "containerPort": 8080}]}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    return dep, svc if with_service else None


def create_workload(kube: client.ApiClient, namespace: str, name: str,
                    with_service: bool = True) -> None:
    dep, svc = deployment(name, with_service)
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, dep)
    if svc is not None:
        client.CoreV1Api(kube).create_namespaced_service(namespace, svc)


def serve_from(kube: client.ApiClient, namespace: str, service: str,
               pods: dict[str, list[str]]) -> None:
    """What a rollout leaves behind: these pods (name -> container names) exist with the
    Service's labels and are its ready endpoints (created or replaced)."""
    api = client.CoreV1Api(kube)
    existing = {p.metadata.name for p in api.list_namespaced_pod(namespace).items}
    for name in existing - set(pods):
        api.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    for name, containers in pods.items():
        if name not in existing:
            api.create_namespaced_pod(namespace, {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": service}},
                "spec": {"containers": [{"name": c, "image": "python"} for c in containers]}})
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": service},
                 "subsets": [{"addresses": [
                     {"ip": f"10.244.0.{i + 10}",
                      "targetRef": {"kind": "Pod", "name": name, "namespace": namespace}}
                     for i, name in enumerate(sorted(pods))],
                     "ports": [{"name": "http", "port": 8080}]}]}
    try:
        api.create_namespaced_endpoints(namespace, endpoints)
    except client.ApiException as e:
        if e.status != 409:
            raise
        api.replace_namespaced_endpoints(service, namespace, endpoints)


async def until(condition: Any, what: str, within: float = 10.0) -> Any:
    """Await `condition()` (sync or async) until truthy; fail with `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


def intercept_request(workload: str, port: int, **spec: Any) -> dpb.InterceptRequest:
    return dpb.InterceptRequest(spec=mpb.InterceptSpec(workload=workload, target_port=port,
                                                       **spec))
