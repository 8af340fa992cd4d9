"""End to end in the sandbox: install the manager, wait for Ready, reach it by port-forward."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from manager_testing import forwarded
from tp_cluster.manifests import GRPC_PORT
from tp_daemon.kube import Kube
from tp_protocol import VERSION, manager_pb2_grpc
from tp_protocol import manager_pb2 as pb
from tp_protocol.auth import with_credentials

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_the_manager_installs_turns_ready_and_answers_through_a_port_forward(
        sandbox: Any, kube: Any) -> None:
    # installed the way `tp connect` installs it: the daemon's adapter and the manifests
    adapter = Kube(str(sandbox.kubeconfig), "", "", api_timeout=20)
    namespace = f"tp-mgr-{secrets.token_hex(3)}"
    progress: list[str] = []

    def report(message: str, _fraction: float) -> None:
        progress.append(message)

    try:
        await asyncio.to_thread(adapter.install_manager, namespace, report)
        pod = await asyncio.to_thread(adapter.wait_manager_pod, namespace, 120.0, report)
        assert any("installing traffic-manager: Deployment" in line for line in progress)
        with forwarded(kube, namespace, pod, GRPC_PORT) as port:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                # the calls carry the admin's kubeconfig token, as the daemon's do
                stub = with_credentials(manager_pb2_grpc.ManagerStub(channel),
                                        adapter.bearer_token)
                version = await stub.Version(empty_pb2.Empty(), timeout=20)
                assert version.version == VERSION
                session = await stub.ArriveAsClient(pb.ClientInfo(
                    name="e2e", namespace="default", version=VERSION), timeout=10)
                info = await stub.GetClusterInfo(session, timeout=20)
                assert info.service_cidr == "10.96.0.0/16"
                assert list(info.pod_cidrs) == ["10.244.0.0/24"]
                assert (info.cluster_domain, info.dns_ip, info.kube_api_ip) == (
                    "cluster.local", "10.96.0.10", "10.96.0.1")
                answer = await stub.LookupDNS(pb.DNSRequest(
                    session=session, name="kubernetes", qtype=1), timeout=20)
                assert answer.cluster_name and answer.records[0].ip == "10.96.0.1"
                await stub.Depart(session, timeout=10)
    finally:
        adapter.remove_manager(namespace, 60.0)
