"""The daemon API honours the caller's deadline: a call that cannot finish in the time it
was given answers in that time, says what it is still waiting for, and undoes itself."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from daemon_testing import Daemon, create_workload, intercept_request, serve_from, until
from manager_testing import Manager
from tp_daemon.intercepts import Intercepts
from tp_daemon.preload import Preload
from tp_daemon.server import DaemonService
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import daemon_pb2_grpc as dgrpc

pytestmark = pytest.mark.timeout(30)


class ConnectedService(DaemonService):
    """The real daemon service, with the intercept side of the test's connection (the
    Session itself needs a kubeconfig and a port-forward)."""

    intercepts: Intercepts

    async def _intercepts(self) -> Intercepts:
        return self.intercepts


@pytest.fixture
async def daemon_stub(daemon: Daemon, fast_settings: Any, tmp_path: Path
                      ) -> AsyncIterator[Any]:
    service = ConnectedService(fast_settings.connect, force_proxy=True,
                               preload=Preload([], "tp-test-preload").start())
    service.intercepts = daemon.intercepts
    # the progress the intercept side reports goes where the daemon's does
    daemon.intercepts.lifecycle.progress = service._publish
    server = grpc.aio.server()
    dgrpc.add_DaemonServicer_to_server(service, server)
    socket_path = tmp_path / "daemon.sock"
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()
    channel = grpc.aio.insecure_channel(f"unix:{socket_path}")
    yield dgrpc.DaemonStub(channel)
    await channel.close()
    await server.stop(0.5)
    await service.close()


async def test_an_intercept_that_cannot_finish_in_time_answers_in_time_with_what_it_waits_for(
        daemon_stub: Any, manager: Manager, kube: Any, *, namespace: str, start_agent: Any,
        local_server: int) -> None:
    create_workload(kube, namespace, "web")
    serve_from(kube, namespace, "web", {"web-old": ["app"]})  # the rollout never finishes
    await start_agent(namespace)
    started = time.monotonic()
    reply = await daemon_stub.Intercept(intercept_request("web", local_server), timeout=3.0)
    took = time.monotonic() - started
    assert took < 3.0
    assert reply.error.code == dpb.ERROR_CODE_TIMEOUT
    assert "did not finish within the" in reply.error.message
    assert "still waiting for: waiting: the traffic-agent took it; service web still " \
           "reaches pod web-old without the traffic-agent" in reply.error.message
    # undone in the background: nothing of this intercept is left at the manager
    await until(lambda: not manager.server.state.intercepts, "the intercept to be undone")


async def test_a_call_with_time_to_spare_is_unchanged(daemon_stub: Any, kube: Any,
                                                      namespace: str) -> None:
    create_workload(kube, namespace, "web")
    reply = await daemon_stub.List(dpb.ListRequest(namespace=namespace), timeout=10.0)
    assert not reply.HasField("error")
    assert [w.name for w in reply.workloads] == ["web"]

