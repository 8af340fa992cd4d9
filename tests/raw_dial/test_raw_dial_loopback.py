"""Raw dials on loopback: the manager's raw dial listener and the daemon's dialer, real TLS
and real sockets in this process (the sandbox tests cover the LoadBalancer path)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from raw_dial_testing import raw_ends
from tp_cluster.manager.rawdial import RawDials
from tp_cluster.manager.state import State
from tp_cluster.manager.tls import Identity, make_identity
from tp_daemon.kube import DirectTarget
from tp_daemon.rawdial import RawDialer
from tp_daemon.tunnel import TunnelBroken
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import get_settings
from tp_protocol.tunnel import TunnelRefused


@dataclass
class Rig:
    state: State
    identity: Identity
    raw: RawDials
    session: mpb.SessionInfo
    dialer: RawDialer
    echo_port: int


async def _answer_at_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads until the client's half-close, then says how much it got."""
    data = await reader.read()
    writer.write(b"got %d" % len(data))
    await writer.drain()
    writer.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    settings = dataclasses.replace(get_settings().connect, raw_dial_connect_timeout=2.0)
    server = await asyncio.start_server(_answer_at_eof, "127.0.0.1", 0)
    try:
        async with raw_ends("raw-test", settings) as ends:
            yield Rig(ends.state, ends.identity, ends.raw, ends.session, ends.dialer,
                      server.sockets[0].getsockname()[1])
    finally:
        server.close()


async def test_a_raw_dial_carries_bytes_both_ways_and_half_closes(rig: Rig) -> None:
    stream = await rig.dialer.dial(rig.session, "127.0.0.1", rig.echo_port)
    assert stream is not None
    payload = bytes(range(256)) * 4096  # 1 MiB, more than a chunk
    await stream.send(payload)
    await stream.close_write()  # the server answers only after this EOF
    answer = b""
    while data := await stream.recv():
        answer += data
    await stream.close()
    assert answer == b"got %d" % len(payload)
    assert (rig.dialer.raw_dials, rig.dialer.grpc_dials, rig.raw.dials) == (1, 0, 1)


async def test_a_raw_dial_to_a_port_nothing_listens_on_is_refused_with_the_reason(
        rig: Rig) -> None:
    closed = await asyncio.start_server(_answer_at_eof, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    with pytest.raises(TunnelBroken, match="refused") as caught:
        await rig.dialer.dial(rig.session, "127.0.0.1", port)
    assert isinstance(caught.value.__cause__, TunnelRefused)
    assert caught.value.__cause__.code == "refused"
    assert rig.dialer.note == ""  # the raw path works: only this destination failed


async def test_a_wrong_secret_or_a_departed_session_is_refused_and_dials_nothing(
        rig: Rig) -> None:
    wrong = mpb.SessionInfo(session_id=rig.session.session_id, dial_secret=bytes(32),
                            raw_dial_port=rig.session.raw_dial_port)
    with pytest.raises(TunnelBroken, match="no_session"):
        await rig.dialer.dial(wrong, "127.0.0.1", rig.echo_port)
    rig.state.depart(rig.session.session_id)
    with pytest.raises(TunnelBroken, match="no_session"):
        await rig.dialer.dial(rig.session, "127.0.0.1", rig.echo_port)
    assert rig.raw.dials == 0


async def test_a_manager_that_offers_no_raw_port_gets_grpc_tunnels_and_one_note(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    older = mpb.SessionInfo(session_id=rig.session.session_id)
    assert await rig.dialer.dial(older, "127.0.0.1", rig.echo_port) is None
    assert await rig.dialer.dial(older, "127.0.0.1", rig.echo_port) is None
    assert "offers no raw dial port" in rig.dialer.note
    assert (rig.dialer.raw_dials, rig.dialer.grpc_dials) == (0, 2)
    said = [r for r in caplog.records if "raw dials not used" in r.getMessage()]
    assert len(said) == 1
    # a re-arrival at a manager that offers the port uses it
    stream = await rig.dialer.dial(rig.session, "127.0.0.1", rig.echo_port)
    assert stream is not None
    await stream.close()
    assert rig.dialer.note == "" and rig.dialer.raw_dials == 1


async def test_a_raw_port_that_did_not_answer_is_tried_again_after_the_retry_interval(
        rig: Rig) -> None:
    closed = await asyncio.start_server(_answer_at_eof, "127.0.0.1", 0)
    nothing = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    away = mpb.SessionInfo(session_id=rig.session.session_id,
                           dial_secret=rig.session.dial_secret, raw_dial_port=nothing)
    rig.dialer.settings = dataclasses.replace(rig.dialer.settings,
                                              raw_dial_retry_interval=0.5)
    assert await rig.dialer.dial(away, "127.0.0.1", rig.echo_port) is None
    assert "connection refused" in rig.dialer.note
    # within the retry interval: gRPC, without trying the port
    assert await rig.dialer.dial(rig.session, "127.0.0.1", rig.echo_port) is None
    assert rig.raw.dials == 0
    # once the interval passed the port is tried again, and it works
    for _ in range(100):  # up to 5 s
        stream = await rig.dialer.dial(rig.session, "127.0.0.1", rig.echo_port)
        if stream is not None:
            break
        await asyncio.sleep(0.05)
    assert stream is not None
    await stream.close()
    assert rig.dialer.note == "" and rig.raw.dials == 1


async def test_a_raw_port_with_another_certificate_is_not_used(rig: Rig) -> None:
    other = make_identity("raw-test", 1)  # the same name, not the pinned certificate
    dialer = RawDialer(DirectTarget(f"127.0.0.1:{rig.session.raw_dial_port}", other.cert,
                                    other.server_name), rig.dialer.settings)
    assert await dialer.dial(rig.session, "127.0.0.1", rig.echo_port) is None
    assert "not the certificate the cluster published" in dialer.note
    assert rig.raw.dials == 0
