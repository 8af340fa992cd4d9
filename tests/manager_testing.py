"""A real traffic-manager in-process on loopback, shared by tests/agent and tests/manager.

Imported by this unique module name (tests/ is on sys.path: `pythonpath` in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
from tp_cluster.manager.clusterinfo import ClusterFacts
from tp_cluster.manager.dns import ClusterResolver
from tp_cluster.manager.server import ManagerServer
from tp_protocol import manager_pb2_grpc
from tp_protocol.auth import with_credentials
from tp_protocol.settings import get_settings

FACTS = ClusterFacts(pod_cidrs=["10.244.0.0/24"], service_cidr="10.96.0.0/16",
                     cluster_domain="cluster.local", dns_ip="10.96.0.10",
                     kube_api_ip="10.96.0.1")

SERVER_FIELDS = ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields")
"""Server-managed metadata: never compared when asking "is it exactly as before?"."""


@contextmanager
def fast_settings(**intercept: float) -> Iterator[Any]:
    """Short session TTL, reap sweep and dial-accept timeout, plus the given `intercept`
    fields; restored afterwards (settings are process-wide)."""
    settings = get_settings()
    saved = (dataclasses.replace(settings.connect), dataclasses.replace(settings.intercept))
    settings.connect.session_ttl = 1.0
    settings.connect.manager_reap_interval = 0.1
    settings.intercept.dial_accept_timeout = 2.0
    for name, value in intercept.items():
        if not hasattr(settings.intercept, name):
            raise AttributeError(f"settings.intercept has no field {name!r}")
        setattr(settings.intercept, name, value)
    try:
        yield settings
    finally:
        settings.connect, settings.intercept = saved


@dataclasses.dataclass
class Manager:
    server: ManagerServer
    port: int
    stub: Any
    channel: Any


@asynccontextmanager
async def running_manager(resolver: ClusterResolver, *, grace: float,
                          listen: str = "127.0.0.1:0", token: str = "",
                          **server_options: Any) -> AsyncIterator[Manager]:
    """A started `ManagerServer` reporting FACTS, with a channel and stub to it (whose
    calls carry `token`: a manager with kube= authenticates them with TokenReview);
    `server_options` go to ManagerServer (kube=, agent_manager_address=)."""

    async def facts() -> ClusterFacts:
        return FACTS

    server = ManagerServer(facts, resolver, "ambassador", listen=listen, **server_options)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = with_credentials(manager_pb2_grpc.ManagerStub(channel), lambda: token)
        yield Manager(server, port, stub, channel)
    finally:
        await channel.close()
        await server.stop(grace=grace)


def _pump(src: Any, dst: Any) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(256 * 1024):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def forwarded(api: Any, namespace: str, pod: str, port: int) -> Iterator[int]:
    """A loopback port bridged to the pod's port by the official client's port-forward."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    from kubernetes import client
    from kubernetes.stream import portforward

    core = client.CoreV1Api(api)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            pf = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace,
                             ports=str(port))
            remote = pf.socket(port)
            remote.setblocking(True)
            conn.setblocking(True)
            for a, b in ((conn, remote), (remote, conn)):
                threading.Thread(target=_pump, args=(a, b), daemon=True,
                                 name=f"pf-pump-{pod}").start()

    thread = threading.Thread(target=serve, name="pf-accept", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def token_of(api_client: Any) -> str:
    """The bearer token an official-client `ApiClient` sends (the sandbox's kubeconfigs
    carry tokens): what a test's calls to a manager with kube= present."""
    value = str(api_client.configuration.auth_settings()["BearerToken"]["value"])
    return value.partition(" ")[2]


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without status and server-managed metadata."""
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    for key in SERVER_FIELDS:
        obj["metadata"].pop(key, None)
    # the deployment controller counts rollouts here (injection and restore are two,
    # and it may not have counted yet when the "before" copy was taken)
    annotations = obj["metadata"].pop("annotations", None) or {}
    annotations.pop("deployment.kubernetes.io/revision", None)
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return obj
