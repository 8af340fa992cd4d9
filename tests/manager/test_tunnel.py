"""Tunnel streams: dialing in-cluster destinations and handing intercepted connections over."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from typing import Any

import grpc
import pytest
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(60)


def close_write() -> Any:
    message = pb.TunnelMessage()
    message.close_write.SetInParent()
    return message


async def arrive(manager: Any, namespace: str = "demo") -> Any:
    return await manager.stub.ArriveAsClient(
        pb.ClientInfo(name="dev@laptop", namespace=namespace, version=VERSION), timeout=5)


def open_dial(session: Any, port: int, ip: str = "127.0.0.1") -> Any:
    return pb.TunnelMessage(open=pb.TunnelOpen(session=session, dial=pb.Dial(
        protocol="tcp", ip=ip, port=port)))


async def test_a_tunnel_carries_10_mb_intact_both_ways_with_half_close(
        manager: Any, echo_server: int) -> None:
    session = await arrive(manager)
    payload = os.urandom(10 * 1024 * 1024)
    stream = manager.stub.Tunnel(timeout=40)
    await stream.write(open_dial(session, echo_server))
    first = await stream.read()
    assert first.WhichOneof("kind") == "opened"
    assert first.opened.remote_address == f"127.0.0.1:{echo_server}"

    async def send() -> None:
        for i in range(0, len(payload), 100_000):
            await stream.write(pb.TunnelMessage(data=payload[i:i + 100_000]))
        await stream.write(close_write())  # half-close: the echo must still come back

    sender = asyncio.create_task(send(), name="test-sender")
    received = bytearray()
    while True:
        message = await stream.read()
        assert message != grpc.aio.EOF, "stream ended before close_write"
        kind = message.WhichOneof("kind")
        if kind == "close_write":
            break
        assert kind == "data", message
        received += message.data
    await sender
    await stream.done_writing()
    assert await stream.read() == grpc.aio.EOF
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


async def test_a_tunnel_to_a_closed_port_says_refused(manager: Any) -> None:
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = await arrive(manager)
    stream = manager.stub.Tunnel(timeout=10)
    await stream.write(open_dial(session, port))
    message = await stream.read()
    assert message.WhichOneof("kind") == "error"
    assert message.error.code == "refused" and f"127.0.0.1:{port}" in message.error.message


async def test_a_tunnel_without_a_session_is_refused(manager: Any, echo_server: int) -> None:
    stream = manager.stub.Tunnel(timeout=10)
    await stream.write(open_dial(pb.SessionInfo(session_id="c-unknown"), echo_server))
    message = await stream.read()
    assert message.error.code == "no_session"


async def test_a_tunnel_that_does_not_start_with_open_is_refused(manager: Any) -> None:
    stream = manager.stub.Tunnel(timeout=10)
    await stream.write(pb.TunnelMessage(data=b"hello"))
    message = await stream.read()
    assert message.error.code == "bad_request"


async def test_an_intercepted_connection_reaches_the_owning_client(manager: Any) -> None:
    client = await arrive(manager)
    spec = pb.InterceptSpec(workload="web", namespace="demo", target_port=3000)
    agent = await manager.stub.ArriveAsAgent(pb.AgentInfo(
        name="web", namespace="demo", pod_name="web-1", pod_ip="10.244.0.7", version=VERSION),
        timeout=5)
    intercept = await manager.stub.CreateIntercept(
        pb.CreateInterceptRequest(session=client, spec=spec), timeout=5)

    dials = manager.stub.ReceiveDials(client, timeout=20)
    # the dial stream registers asynchronously: wait until the manager counts it
    deadline = asyncio.get_running_loop().time() + 5
    while manager.server.state.sessions[client.session_id].dial_receivers == 0:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)

    agent_stream = manager.stub.Tunnel(timeout=20)
    await agent_stream.write(pb.TunnelMessage(open=pb.TunnelOpen(
        session=agent, to_client=pb.ToClient(intercept_id=intercept.id, source_ip="10.244.0.9",
                                             source_port=40000, service_port=80))))
    dial = await dials.read()
    assert (dial.intercept_id, dial.target_host, dial.target_port) == (
        intercept.id, "127.0.0.1", 3000)

    client_stream = manager.stub.Tunnel(timeout=20)
    await client_stream.write(pb.TunnelMessage(open=pb.TunnelOpen(
        session=client, accept_dial_id=dial.dial_id)))
    assert (await client_stream.read()).WhichOneof("kind") == "opened"
    assert (await agent_stream.read()).WhichOneof("kind") == "opened"

    await agent_stream.write(pb.TunnelMessage(data=b"GET / HTTP/1.1\r\n\r\n"))
    await agent_stream.write(close_write())
    assert (await client_stream.read()).data == b"GET / HTTP/1.1\r\n\r\n"
    assert (await client_stream.read()).WhichOneof("kind") == "close_write"
    await client_stream.write(pb.TunnelMessage(data=b"HTTP/1.1 200 OK\r\n\r\n"))
    await client_stream.write(close_write())
    assert (await agent_stream.read()).data == b"HTTP/1.1 200 OK\r\n\r\n"
    assert (await agent_stream.read()).WhichOneof("kind") == "close_write"
    assert await agent_stream.read() == grpc.aio.EOF
    assert await client_stream.read() == grpc.aio.EOF
    dials.cancel()


async def test_an_intercepted_connection_without_a_listening_client_gets_an_error(
        manager: Any) -> None:
    client = await arrive(manager)
    agent = await manager.stub.ArriveAsAgent(
        pb.AgentInfo(name="web", namespace="demo", pod_name="web-1"), timeout=5)
    intercept = await manager.stub.CreateIntercept(pb.CreateInterceptRequest(
        session=client, spec=pb.InterceptSpec(workload="web", namespace="demo",
                                              target_port=3000)), timeout=5)
    stream = manager.stub.Tunnel(timeout=10)
    await stream.write(pb.TunnelMessage(open=pb.TunnelOpen(
        session=agent, to_client=pb.ToClient(intercept_id=intercept.id))))
    message = await stream.read()
    assert message.error.code == "no_client" and "not receiving dials" in message.error.message
