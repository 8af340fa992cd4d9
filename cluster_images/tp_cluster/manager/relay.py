"""`Relay` streams: intercepted requests multiplexed between agents and clients.

Each agent and each client keeps one Relay stream (manager.proto, "Relay rules"). An
agent's `open` for intercept X becomes a `dial` on the stream of X's client, with the
request bytes in the same frame; after that the hub only renames connection ids and
moves frames between the two streams' outboxes, so a matched request costs one message
each way instead of two Tunnel handshakes through the port-forward.

The checks are the Tunnel's: the stream's `hello` names a session of the caller's own
identity; an agent reaches only intercepts of its own workload; a client only answers
connections the hub routed to it. A client without a Relay stream (or an intercept that
is gone) gets the agent an `error` it answers as before (`no_relay`: use a Tunnel).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tp_protocol import manager_pb2 as pb
from tp_protocol.aio import spawn
from tp_protocol.relay import Outbox, frame_error

from tp_cluster.manager.state import Session, State

log = logging.getLogger(__name__)


_FORWARDED = {True: frozenset({None, "close_write", "error"}),                # from agents
              False: frozenset({None, "opened", "close_write", "error"})}     # from clients
"""Frame kinds passed on, by sender (None: data)."""


@dataclass(eq=False)
class Peer:
    """One Relay stream: its session, its outbox and the connections it carries."""

    session: Session
    outbox: Outbox
    routes: dict[int, Route] = field(default_factory=dict)


@dataclass(eq=False)
class Route:
    """One relayed connection: its id on the agent's stream and on the client's."""

    agent: Peer
    agent_conn: int
    client: Peer
    client_conn: int
    agent_closed: bool = False
    client_closed: bool = False

    def end(self) -> None:
        self.agent.routes.pop(self.agent_conn, None)
        self.client.routes.pop(self.client_conn, None)


class RelayHub:
    def __init__(self, state: State, buffer_bytes: int) -> None:
        self.state = state
        self.buffer_bytes = buffer_bytes
        self.clients: dict[str, Peer] = {}
        self._ids = itertools.count(1)

    async def serve(self, requests: AsyncIterator[Any], write: Callable[[Any], Awaitable[None]],
                    session_of: Callable[[str], Awaitable[Session]]) -> None:
        """One Relay stream, from its `hello` to its end (StateError if refused)."""
        first = await anext(requests, None)
        frames = list(first.frames) if first is not None else []
        hello = frames[0] if frames else None
        if hello is None or hello.WhichOneof("kind") != "hello":
            await write(pb.RelayBatch(frames=[frame_error(0, "bad_request",
                                                          "a relay starts with `hello`")]))
            return
        session = await session_of(hello.hello.session_id)
        peer = Peer(session, Outbox(self.buffer_bytes))
        if session.kind == "client":
            self.clients[session.id] = peer  # a newer stream of the session replaces the older
        pump = spawn(peer.outbox.pump(write), f"relay-out {session.id}", log)
        try:
            for frame in frames[1:]:  # hello's batch may carry the first frames
                self._frame(peer, frame)
            async for batch in requests:
                for frame in batch.frames:
                    self._frame(peer, frame)
                # back-pressure: a slow far side slows this stream's reading
                for route in list(peer.routes.values()):
                    other = route.client if peer is route.agent else route.agent
                    await other.outbox.room()
        finally:
            if self.clients.get(session.id) is peer:
                del self.clients[session.id]
            for route in list(peer.routes.values()):
                other, conn = ((route.client, route.client_conn) if peer is route.agent
                               else (route.agent, route.agent_conn))
                other.outbox.put(frame_error(conn, "reset", "the other side's relay ended"))
                route.end()
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump

    def _frame(self, peer: Peer, frame: Any) -> None:
        kind = frame.WhichOneof("kind")
        if kind == "open":
            if peer.session.kind == "agent":
                self._open(peer, frame)
            return
        route = peer.routes.get(frame.conn)
        if route is None:
            return  # ended already (e.g. the other side's error crossed this frame)
        if kind not in _FORWARDED[peer is route.agent]:
            return  # e.g. an agent's `dial`: only the manager names what a client dials
        if peer is route.agent:
            frame.conn, other = route.client_conn, route.client
            route.agent_closed |= kind == "close_write"
        else:
            frame.conn, other = route.agent_conn, route.agent
            route.client_closed |= kind == "close_write"
        other.outbox.put(frame)
        if kind == "error" or (route.agent_closed and route.client_closed):
            route.end()

    def _open(self, agent: Peer, frame: Any) -> None:
        to_client = frame.open
        ic = self.state.intercepts.get(to_client.intercept_id)
        if ic is None or (ic.spec.namespace, ic.spec.workload) != agent.session.workload:
            agent.outbox.put(frame_error(frame.conn, "gone",
                                         f"intercept {to_client.intercept_id!r} is gone"))
            return
        client = self.clients.get(ic.client_session)
        if client is None or ic.client_session not in self.state.sessions:
            agent.outbox.put(frame_error(frame.conn, "no_relay",
                                         "the intercept's client keeps no relay stream"))
            return
        old = agent.routes.pop(frame.conn, None)
        if old is not None:
            old.end()
        conn = next(self._ids)
        route = Route(agent, frame.conn, client, conn)
        agent.routes[frame.conn] = route
        client.routes[conn] = route
        client.outbox.put(pb.RelayFrame(conn=conn, data=frame.data, dial=pb.DialRequest(
            dial_id=f"r-{conn}", intercept_id=ic.id, target_host=ic.spec.target_host,
            target_port=ic.spec.target_port, source_ip=to_client.source_ip,
            source_port=to_client.source_port)))
