"""Personal intercepts' requests on the Relay stream (issue 11: no handshake per request).

The real traffic-manager and agent, and the daemon's real `ClientRelay` beside a small
daemon that only answers Tunnel dials: what goes through which path is visible in the
local server's connections and in the daemon's count of accepted Tunnels.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agent_fixtures import read_responses
from agenttest import Http, wait_for
from tp_daemon.intercepts.relay import ClientRelay
from tp_protocol.settings import get_settings

pytestmark = pytest.mark.timeout(60)


class _Counting(asyncio.Protocol):
    """A keep-alive HTTP server answering "<name> conn=<connection number>"."""

    numbers = itertools.count(1)

    def __init__(self, name: str) -> None:
        self.name = name
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.number = next(self.numbers)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            body = f"{self.name} conn={self.number}".encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.fixture
async def counting_server() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Counting("alice"), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.fixture
async def relay_of(manager: Any) -> AsyncIterator[Any]:
    """Runs the daemon's ClientRelay for a FakeDaemon's session."""
    tasks: list[asyncio.Task[None]] = []

    async def start(daemon: Any) -> None:
        relay = ClientRelay(get_settings().intercept)
        tasks.append(asyncio.create_task(relay.run(manager.stub, daemon.session)))
        hub = manager.server.servicer.relay
        await wait_for(lambda: daemon.session.session_id in hub.clients,
                       what="the client's relay stream")

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_matched_requests_of_one_caller_share_one_local_connection_without_tunnels(
        agent: Any, daemons: Any, relay_of: Any, counting_server: int) -> None:
    alice = await daemons("alice")
    await relay_of(alice)
    await alice.intercept("web-alice", counting_server, matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    http = await Http.connect(agent.port)
    bodies = []
    for i in range(5):
        _, _, body = await http.request("GET", f"/m{i}", {"x-dev": "alice"})
        bodies.append(body)
        # unmatched requests in between go to the app and leave the kept connection alone
        assert (await http.request("GET", f"/u{i}"))[2] == f"app GET /u{i} ".encode()
    await http.close()
    assert len(set(bodies)) == 1 and bodies[0].startswith(b"alice conn="), bodies
    assert alice.accepted == 0  # no Tunnel was accepted: every request went on the relay


async def test_a_caller_on_a_new_connection_gets_its_own_local_connection(
        agent: Any, daemons: Any, relay_of: Any, counting_server: int) -> None:
    alice = await daemons("alice")
    await relay_of(alice)
    await alice.intercept("web-alice", counting_server, matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    seen = []
    for _ in range(2):
        http = await Http.connect(agent.port)
        seen.append((await http.request("GET", "/x", {"x-dev": "alice"}))[2])
        await http.close()
    assert seen[0] != seen[1], seen


async def test_a_refused_local_port_answers_502_with_the_reason_through_the_relay(
        agent: Any, daemons: Any, relay_of: Any, free_local_port: int) -> None:
    alice = await daemons("alice")
    await relay_of(alice)
    await alice.intercept("web-alice", free_local_port, matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    http = await Http.connect(agent.port)
    status, headers, body = await http.request("GET", "/down", {"x-dev": "alice"})
    assert status == 502 and headers["x-tp-error"] == "1"
    assert b"refused: nothing answers on the workstation's" in body
    assert b"tp leave web-alice" in body and body.count(b"\n") == 1
    assert (await http.request("GET", "/after"))[2] == b"app GET /after "
    await http.close()
    assert alice.accepted == 0


async def test_without_a_relay_stream_matched_requests_still_go_through_a_tunnel(
        agent: Any, daemons: Any, counting_server: int) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-alice", counting_server, matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    http = await Http.connect(agent.port)
    status, _, body = await http.request("GET", "/t", {"x-dev": "alice"})
    await http.close()
    assert status == 200 and body.startswith(b"alice conn=")
    assert alice.accepted == 1


async def test_the_manager_passes_an_agent_only_data_close_and_error_never_a_dial(
        agent: Any, daemons: Any, manager: Any) -> None:
    """Only the manager names what a workstation dials: an agent's own `dial` is dropped."""
    from tp_protocol import manager_pb2 as pb

    alice = await daemons("alice")
    intercept = await alice.intercept("web-alice", 9, matches={"x-dev": "alice"})
    client = manager.stub.Relay()
    await client.write(pb.RelayBatch(frames=[pb.RelayFrame(hello=alice.session)]))
    hub = manager.server.servicer.relay
    await wait_for(lambda: alice.session.session_id in hub.clients, what="alice's relay")
    rogue = manager.stub.Relay()
    await rogue.write(pb.RelayBatch(frames=[
        pb.RelayFrame(hello=agent.agent.link.session),
        pb.RelayFrame(conn=1, open=pb.ToClient(intercept_id=intercept.id), data=b"first"),
        pb.RelayFrame(conn=1, dial=pb.DialRequest(target_host="10.0.0.1", target_port=22)),
        pb.RelayFrame(conn=1, data=b"second")]))
    seen = []
    while len(seen) < 2:
        seen.extend((await client.read()).frames)
    assert seen[0].WhichOneof("kind") == "dial" and seen[0].data == b"first"
    assert seen[0].dial.target_port == 9   # the intercept's target, named by the manager
    assert seen[1].WhichOneof("kind") is None and seen[1].data == b"second"
    rogue.cancel()
    client.cancel()


async def _left_while_the_agent_still_routes_to_it(agent: Any, manager: Any, alice: Any) -> None:
    """The manager removes alice's intercept; the agent has not heard yet (its registry
    is put back as it was), so its next matched request races the leave."""
    stale = agent.agent.registry.on_port(agent.port)
    manager.server.state.remove_intercept(alice.session.session_id, "web-alice")
    await wait_for(lambda: not agent.agent.registry.on_port(agent.port),
                   what="the agent to hear of the leave")
    agent.agent.registry.replace(stale)


async def _intercepted_then_left(agent: Any, manager: Any, daemons: Any, relay_of: Any,
                                 local_port: int, *, relay: bool) -> Any:
    """Alice intercepts `x-dev: alice` (with a Relay stream or none), then leaves while
    the agent still routes to her."""
    alice = await daemons("alice")
    if relay:
        await relay_of(alice)
    await alice.intercept("web-alice", local_port, matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    await _left_while_the_agent_still_routes_to_it(agent, manager, alice)
    return alice


@pytest.mark.parametrize("relay", [True, False], ids=["relay", "no-relay-stream"])
async def test_a_request_racing_a_leave_is_answered_by_the_app_not_a_502(
        agent: Any, manager: Any, daemons: Any, relay_of: Any, counting_server: int, *,
        relay: bool) -> None:
    alice = await _intercepted_then_left(agent, manager, daemons, relay_of, counting_server,
                                         relay=relay)
    http = await Http.connect(agent.port)
    got = await http.request("GET", "/late", {"x-dev": "alice"})
    assert (got[0], got[2]) == (200, b"app GET /late ")
    # a body too (within intercept.capture_body_limit, what the agent keeps of it: a
    # larger one racing a leave gets the 502 with the reason): sent again, whole
    status, _, body = await http.request("POST", "/late", {"x-dev": "alice"}, b"x" * 3000)
    await http.close()
    assert (status, body) == (200, b"app POST /late " + b"x" * 3000), body[:300]
    assert alice.accepted == 0


async def _plain_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     head: bytes) -> tuple[int, bytes]:
    """(status, body) of one whole bodiless request head written in one piece (llhttp
    takes it, so a matched one goes to the developer as read)."""
    writer.write(head)
    [(response, body, _)] = await read_responses(reader)
    return response.status_code, body


@pytest.mark.parametrize("relay", [True, False], ids=["relay", "no-relay-stream"])
async def test_a_plain_get_sent_as_read_racing_a_leave_is_answered_by_the_app(
        agent: Any, manager: Any, daemons: Any, relay_of: Any, counting_server: int, *,
        relay: bool) -> None:
    alice = await _intercepted_then_left(agent, manager, daemons, relay_of, counting_server,
                                         relay=relay)
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
    got = await _plain_get(
        reader, writer, b"GET /late HTTP/1.1\r\nhost: web\r\nx-dev: alice\r\n\r\n")
    writer.close()
    assert got == (200, b"app GET /late ")
    assert alice.accepted == 0


async def test_a_plain_get_sent_as_read_to_a_refused_local_port_gets_the_502_and_keeps_going(
        agent: Any, daemons: Any, relay_of: Any, free_local_port: int) -> None:
    alice = await daemons("alice")
    await relay_of(alice)
    await alice.intercept("web-alice", free_local_port, matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
    status, body = await _plain_get(
        reader, writer, b"GET /down HTTP/1.1\r\nhost: web\r\nx-dev: alice\r\n\r\n")
    assert status == 502 and b"refused: nothing answers on the workstation's" in body
    # the same keep-alive connection goes on
    after = await _plain_get(reader, writer, b"GET /after HTTP/1.1\r\nhost: web\r\n\r\n")
    writer.close()
    assert after == (200, b"app GET /after ")
    assert alice.accepted == 0
