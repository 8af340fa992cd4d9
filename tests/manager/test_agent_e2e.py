"""End to end with a real traffic-agent: the in-process manager injects it into a sandbox
Deployment, the agent's pod arrives at the manager, reviews an intercept ACTIVE with
the app's environment, serves the app while nothing is intercepted, and uninstall puts
everything back.

Pods reach the manager (on the host's loopback) through a relay listening on the API
address inside the sandbox's node namespace, where pods' traffic is routed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from manager_testing import Manager, comparable, running_manager, token_of
from sandbox_testing import wait_for
from tp_cluster.kube import Kube
from tp_cluster.manager.dns import ClusterResolver
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb
from tp_protocol.settings import get_settings

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(120)]
S = pb.InterceptState


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


@contextlib.asynccontextmanager
async def relay_in_node(sandbox: Any, to_port: int) -> AsyncIterator[str]:
    """A listener on the API address in the node netns that relays to 127.0.0.1:to_port."""
    from tp_sandbox.netns import socket_in

    sock = socket_in(sandbox.instance.node_netns)
    sock.bind((get_settings().sandbox.api_address, 0))
    sock.listen(64)
    sock.setblocking(False)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # cancelled at teardown while agents still hold their connections: end quietly
        with contextlib.suppress(asyncio.CancelledError, OSError):
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", to_port)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    host, port = sock.getsockname()[:2]
    try:
        yield f"{host}:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def manager_for_pods(sandbox: Any, kube: Any) -> AsyncIterator[Manager]:
    if not sandbox.has_node:
        pytest.skip("needs the sandbox node (pods)")

    resolver = ClusterResolver("127.0.0.1", "cluster.local", 2.0)
    # the agent address must be known before the server starts; a relay port in between
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    async with relay_in_node(sandbox, port) as address, running_manager(
            resolver, grace=1.0, listen=f"127.0.0.1:{port}", kube=Kube(kube),
            agent_manager_address=address, token=token_of(kube)) as manager:
        yield manager


def _get_in_node(sandbox: Any, ip: str, port: int) -> bytes:
    from tp_sandbox.netns import socket_in

    with socket_in(sandbox.instance.node_netns) as sock:
        sock.settimeout(5)
        sock.connect((ip, port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def _ok(reply: bytes) -> bytes:
    return reply if reply.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")) else b""


async def test_a_real_agent_arrives_takes_an_intercept_and_uninstall_restores_the_app(
        manager_for_pods: Manager, sandbox: Any, kube: Any, namespace: str) -> None:
    m = manager_for_pods
    adapter = Kube(kube)
    adapter.apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{
                "name": "app", "image": "python",
                "command": ["python3", "-m", "http.server", "8080"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "GREETING", "value": "hello"}]}]}}}})
    adapter.core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    before = [comparable(o) for o in (adapter.get_deployment(namespace, "web"),
                                       adapter.get_service(namespace, "web")) if o]

    prepared = await m.stub.PrepareIntercept(pb.InterceptSpec(
        workload="web", namespace=namespace), timeout=90)
    assert (prepared.service_port, prepared.container_port) == (80, 8080)
    client = await m.stub.ArriveAsClient(pb.ClientInfo(
        name="dev@laptop", namespace=namespace, version=VERSION), timeout=5)
    watch = m.stub.WatchIntercepts(client, timeout=60)
    await m.stub.CreateIntercept(pb.CreateInterceptRequest(session=client, spec=pb.InterceptSpec(
        workload="web", namespace=namespace, target_port=3000)), timeout=10)
    while True:
        snapshot = await watch.read()
        assert snapshot != grpc.aio.EOF
        if not snapshot.intercepts:  # the one from before the intercept was created
            continue
        ic = snapshot.intercepts[0]
        assert ic.state != S.INTERCEPT_STATE_AGENT_ERROR, ic.message
        if ic.state == S.INTERCEPT_STATE_ACTIVE:
            break
    assert ic.environment["GREETING"] == "hello"
    assert ic.agent_pod.endswith(f".{namespace}") and ic.pod_ip.startswith("10.244.")

    # nothing intercepted any more: the agent hands requests to the app
    await m.stub.RemoveIntercept(pb.RemoveInterceptRequest(session=client,
                                                           name=ic.spec.name), timeout=5)
    svc = adapter.get_service(namespace, "web")
    assert svc is not None
    # ACTIVE means the Service reaches only the agent's pod, so this request is the agent's;
    # it answers from the app once its watch has seen the intercept go
    cluster_ip = svc["spec"]["clusterIP"]
    # a connection refused while the Service's endpoints settle counts as "not yet"
    reply = await asyncio.to_thread(wait_for, lambda: _ok(_get_in_node(sandbox, cluster_ip, 80)),
                                    30.0, "the agent to hand requests to the app again",
                                    ignore=lambda e: isinstance(e, OSError))
    assert reply.startswith(b"HTTP/1.0 200") or reply.startswith(b"HTTP/1.1 200"), reply[:200]

    result = await m.stub.UninstallAgents(pb.UninstallAgentsRequest(
        session=client, namespace=namespace, workloads=["web"]), timeout=30)
    assert list(result.restored) == [f"Deployment/web.{namespace}"]
    after = [comparable(o) for o in (adapter.get_deployment(namespace, "web"),
                                      adapter.get_service(namespace, "web")) if o]
    assert after == before
    watch.cancel()
