"""The lean pods/portforward WebSocket of pod routes (`tp_daemon.podws`), against the
sandbox's API server and kubelet: a pod's echo server through it, both directions at
once with large frames; what the kubelet and the API server report; pings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_testing import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(180)]

ECHO = r"""
import asyncio
async def echo(reader, writer):
    while data := await reader.read(1 << 20):
        writer.write(data)
        await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 8080)
    await server.serve_forever()
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def echo_pod(sandbox: Any, core: Any) -> Iterator[tuple[str, str]]:
    """(namespace, pod) of a pod whose port 8080 echoes what it gets."""
    import secrets

    if not sandbox.has_node:
        pytest.skip("the sandbox runs without a node")
    namespace = f"podws-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "echo"},
        "spec": {"containers": [{"name": "echo", "image": "python",
                                 "command": ["python3", "-c", ECHO]}]}})
    wait_for(lambda: core.read_namespaced_pod("echo", namespace).status.pod_ip, 60,
             "the echo pod's address")
    # until the server listens, the kubelet ends each port-forward with an error
    wait_for(lambda: asyncio.run(_echoes(sandbox, namespace)), 60, "the echo server",
             ignore=lambda e: isinstance(e, ConnectionError))
    yield namespace, "echo"
    core.delete_namespace(namespace)


def _endpoint(sandbox: Any) -> Any:
    from tp_daemon.kube import Kube

    return Kube(str(sandbox.kubeconfig), "", "", api_timeout=10).endpoint()


async def _echoes(sandbox: Any, namespace: str) -> bool:
    from tp_daemon.podws import PodSocket
    from tp_daemon.portforward import PodPort

    ws = await PodSocket.open(_endpoint(sandbox), PodPort(namespace, "echo", 8080),
                              heartbeat=None)
    try:
        await ws.send(b"ping")
        async with asyncio.timeout(5):
            return bytes(await ws.recv()) == b"ping"
    finally:
        await ws.close()


async def test_megabytes_sent_while_the_echo_comes_back_arrive_intact(
        sandbox: Any, echo_pod: tuple[str, str]) -> None:
    from tp_daemon.podws import PodSocket
    from tp_daemon.portforward import PodPort

    namespace, pod = echo_pod
    payload = os.urandom(24 * 1024 * 1024)
    ws = await PodSocket.open(_endpoint(sandbox), PodPort(namespace, pod, 8080),
                              heartbeat=15)

    async def send() -> None:
        # frames of every length class: 7-bit, 16-bit and 64-bit lengths, and their edges
        at, sizes = 0, itertools.cycle((1, 124, 125, 126, 65534, 65535, 65536, 300_000,
                                         1_000_000))
        while at < len(payload):
            size = next(sizes)
            await ws.send(payload[at:at + size])
            at += size
    sender = asyncio.create_task(send())
    got = hashlib.sha256()
    received = 0
    async with asyncio.timeout(120):
        while received < len(payload):
            piece = await ws.recv()
            assert piece, f"the port-forward ended after {received} bytes: {ws.error!r}"
            got.update(piece)
            received += len(piece)
    await sender
    await ws.close()
    assert received == len(payload)
    assert got.hexdigest() == hashlib.sha256(payload).hexdigest()


async def test_a_port_nobody_listens_on_ends_the_stream_with_the_kubelets_error(
        sandbox: Any, echo_pod: tuple[str, str]) -> None:
    from tp_daemon.podws import PodSocket
    from tp_daemon.portforward import PodPort

    namespace, pod = echo_pod
    ws = await PodSocket.open(_endpoint(sandbox), PodPort(namespace, pod, 8099),
                              heartbeat=None)
    async with asyncio.timeout(20):
        assert await ws.recv() == b""
    assert "8099" in ws.error
    await ws.close()


async def test_an_unknown_pod_and_a_wrong_token_are_refused_with_the_api_servers_status(
        sandbox: Any, echo_pod: tuple[str, str]) -> None:
    from tp_daemon.podws import HandshakeError, PodSocket
    from tp_daemon.portforward import PodPort

    namespace, _ = echo_pod
    endpoint = _endpoint(sandbox)
    with pytest.raises(HandshakeError) as missing:
        await PodSocket.open(endpoint, PodPort(namespace, "nobody", 8080), heartbeat=None)
    assert missing.value.status == 404
    stranger = dataclasses.replace(endpoint, headers={"authorization": "Bearer not-a-token"})
    with pytest.raises(HandshakeError) as refused:
        await PodSocket.open(stranger, PodPort(namespace, "echo", 8080), heartbeat=None)
    assert refused.value.status == 401


async def test_an_idle_port_forward_is_pinged_and_stays_usable(
        sandbox: Any, echo_pod: tuple[str, str]) -> None:
    from tp_daemon.podws import PodSocket
    from tp_daemon.portforward import PodPort

    namespace, pod = echo_pod
    ws = await PodSocket.open(_endpoint(sandbox), PodPort(namespace, pod, 8080),
                              heartbeat=0.2)
    deadline = time.monotonic() + 20
    while ws.pongs < 3:  # each ping answered, or the heartbeat would have ended it
        assert time.monotonic() < deadline, "fewer than 3 pings answered in 20 s"
        await asyncio.sleep(0.05)
    await ws.send(b"still there")
    async with asyncio.timeout(10):
        assert bytes(await ws.recv()) == b"still there"
    await ws.close()


HALF_CLOSE = r"""
import socket, sys, time
sock = socket.create_connection((sys.argv[1], 8080), timeout=30)
sock.sendall(b"hello")
sock.shutdown(socket.SHUT_WR)
t, got = time.monotonic(), b""
while data := sock.recv(65536):
    got += data
print(got.decode(), round(time.monotonic() - t, 1))
"""


SLOW_READER = r"""
import hashlib, os, socket, sys, threading
payload = os.urandom(16 * 1024 * 1024)
sock = socket.create_connection((sys.argv[1], 8080), timeout=60)
sender = threading.Thread(target=sock.sendall, args=(payload,))
sender.start()
sender.join(60)  # nothing read meanwhile: the echo piles up in the daemon and behind it
got = hashlib.sha256()
n = 0
while n < len(payload):
    data = sock.recv(65536)
    if not data:
        break
    got.update(data)
    n += len(data)
print(n == len(payload) and got.hexdigest() == hashlib.sha256(payload).hexdigest())
"""


@pytest.fixture(scope="module")
def connected(sandbox: Any) -> Iterator[Any]:
    """Laptop 1 connected by the API server's port-forward (pod routes on)."""
    import sys

    from sandbox_testing import Laptop

    lap = Laptop(sandbox, 1)
    tp = f"{sys.executable} -m tp_jupyter.cli"
    proc = lap.run(f"{tp} connect --kubeconfig {lap.admin_kubeconfig} "
                   "--manager-address port-forward", timeout=180)
    assert proc.returncode == 0, proc.stderr
    yield lap
    lap.run(f"{tp} quit", timeout=30)


def _echo_through(connected: Any, core: Any, echo_pod: tuple[str, str]) -> str:
    """The echo pod's IP, once the connected laptop reaches it."""
    namespace, pod = echo_pod
    ip = str(core.read_namespaced_pod(pod, namespace).status.pod_ip)
    wait_for(lambda: connected.run(["python3", "-c", HALF_CLOSE, ip], timeout=60).returncode
             == 0, 60, "the echo pod through the connection")
    return ip


def test_an_answer_the_client_does_not_read_yet_waits_and_then_arrives_intact(
        connected: Any, core: Any, echo_pod: tuple[str, str]) -> None:
    """16 MB echoed to a client that reads nothing until it sent them all: the daemon's
    writes to it back up, it stops reading the port-forward until they drained."""
    ip = _echo_through(connected, core, echo_pod)
    proc = connected.run(["python3", "-c", SLOW_READER, ip], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_a_client_that_stopped_sending_gets_the_answer_then_the_end_after_the_linger(
        connected: Any, core: Any, echo_pod: tuple[str, str]) -> None:
    """v4 port-forwards have no half-close, so the echo server never learns that the
    client stopped sending; the daemon ends the connection once the answer paused for
    `connect.pod_route_linger` seconds (2 s)."""
    import sys

    ip = _echo_through(connected, core, echo_pod)
    proc = connected.run(["python3", "-c", HALF_CLOSE, ip], timeout=60)
    assert proc.returncode == 0, proc.stderr
    answer, seconds = proc.stdout.split()
    assert answer == "hello"
    assert 1.5 <= float(seconds) < 10
    path = connected.run(f"{sys.executable} -m tp_jupyter.cli status --format json", timeout=30)
    assert json.loads(path.stdout)["data_path"]["pod_route_connections"] >= 2
