"""Sessions: arrive, remain, depart, and TTL expiry that takes intercepts along."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb
from waiting import wait_until as wait_for

pytestmark = pytest.mark.timeout(30)


def client_info(name: str = "dev@laptop", namespace: str = "demo") -> Any:
    return pb.ClientInfo(name=name, namespace=namespace, install_id="i-1", version=VERSION)


async def test_version_reports_the_manager_version(manager: Any) -> None:
    info = await manager.stub.Version(empty_pb2.Empty(), timeout=5)
    assert (info.name, info.version) == ("traffic-manager", VERSION)


async def test_a_client_arrives_remains_and_departs(manager: Any) -> None:
    session = await manager.stub.ArriveAsClient(client_info(), timeout=5)
    assert session.session_id and session.ttl_seconds == 1.0
    await manager.stub.Remain(pb.RemainRequest(session=session), timeout=5)
    await manager.stub.Depart(session, timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await manager.stub.Remain(pb.RemainRequest(session=session), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "arrive again" in (err.value.details() or "")


async def test_a_client_that_keeps_remaining_outlives_the_ttl(manager: Any) -> None:
    session = await manager.stub.ArriveAsClient(client_info(), timeout=5)
    deadline = time.monotonic() + 2.5 * session.ttl_seconds
    while time.monotonic() < deadline:
        await manager.stub.Remain(pb.RemainRequest(session=session), timeout=5)
        await asyncio.sleep(session.ttl_seconds / 4)
    assert session.session_id in manager.server.state.sessions


async def test_a_silent_client_expires_and_its_intercepts_are_removed(manager: Any) -> None:
    silent = await manager.stub.ArriveAsClient(client_info("silent@a"), timeout=5)
    spec = pb.InterceptSpec(workload="dataprocessingservice", namespace="demo", target_port=3000)
    await manager.stub.CreateIntercept(pb.CreateInterceptRequest(session=silent, spec=spec),
                                       timeout=5)
    assert len(manager.server.state.intercepts) == 1
    await wait_for(lambda: silent.session_id not in manager.server.state.sessions)
    assert manager.server.state.intercepts == {}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await manager.stub.Remain(pb.RemainRequest(session=silent), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_watch_sees_the_intercept_of_an_expired_client_go_away(manager: Any) -> None:
    session = await manager.stub.ArriveAsClient(client_info(), timeout=5)
    spec = pb.InterceptSpec(workload="web", namespace="demo", target_port=8080)
    await manager.stub.CreateIntercept(pb.CreateInterceptRequest(session=session, spec=spec),
                                       timeout=5)
    stream = manager.stub.WatchIntercepts(session, timeout=10)
    first = await stream.read()
    assert [ic.spec.name for ic in first.intercepts] == ["web-demo"]
    # no Remain: the session expires; the stream ends without further snapshots
    assert await stream.read() == grpc.aio.EOF
    assert session.session_id not in manager.server.state.sessions


async def test_an_unknown_session_cannot_get_cluster_info(manager: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await manager.stub.GetClusterInfo(pb.SessionInfo(session_id="c-nope"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_cluster_info_reports_the_discovered_ranges(manager: Any) -> None:
    session = await manager.stub.ArriveAsClient(client_info(), timeout=5)
    info = await manager.stub.GetClusterInfo(session, timeout=5)
    assert list(info.pod_cidrs) == ["10.244.0.0/24"]
    assert (info.service_cidr, info.cluster_domain, info.dns_ip, info.kube_api_ip) == (
        "10.96.0.0/16", "cluster.local", "10.96.0.10", "10.96.0.1")
    assert (info.manager_namespace, info.manager_version) == ("ambassador", VERSION)
