"""The raw dial's two ends on loopback for tests/raw_dial (imported by this unique module
name): the manager's listener (`RawDials`, real TLS 1.3) with an arrived client session,
and the daemon's dialer pinned to its certificate."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tp_cluster.manager.rawdial import RawDials
from tp_cluster.manager.state import State
from tp_cluster.manager.tls import Identity, make_identity
from tp_daemon.kube import DirectTarget
from tp_daemon.rawdial import RawDialer
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import ConnectSettings


@dataclass
class RawEnds:
    state: State
    identity: Identity
    raw: RawDials
    session: mpb.SessionInfo
    """The client's session as ArriveAsClient answers it (id, dial secret, raw port)."""
    dialer: RawDialer


@contextlib.asynccontextmanager
async def raw_ends(name: str, settings: ConnectSettings) -> AsyncIterator[RawEnds]:
    """The listener on 127.0.0.1 and a dialer for one arrived client; stopped afterwards."""
    identity = make_identity(name, 1)
    state = State(ttl=60)
    client = state.arrive_client(mpb.ClientInfo(name="me"))
    raw = RawDials(state, identity, "127.0.0.1:0", settings)
    port = await raw.start()
    session = mpb.SessionInfo(session_id=client.id, dial_secret=client.dial_secret,
                              raw_dial_port=port)
    dialer = RawDialer(DirectTarget(f"127.0.0.1:{port}", identity.cert,
                                    identity.server_name), settings)
    try:
        yield RawEnds(state, identity, raw, session, dialer)
    finally:
        await raw.stop()
