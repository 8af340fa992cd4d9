"""The daemon's Replay with edits (method, path, body) and of a request it keeps no row of
(a row read from a HAR file), against the real manager, agent and API server."""

from __future__ import annotations

import asyncio
import http.client
from typing import Any

import pytest
from daemon_testing import Daemon, create_workload, intercept_request, serve_from, until
from tp_cluster import injector
from tp_daemon.errors import InterceptUsage
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb

pytestmark = pytest.mark.timeout(30)


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"x-id": "me"})
        return conn.getresponse().status
    finally:
        conn.close()


async def test_a_kept_row_replays_with_another_method_path_and_body(
        daemon: Daemon, kube: Any, namespace: str, start_agent: Any, local_server: int
        ) -> None:
    create_workload(kube, namespace, "web")
    serve_from(kube, namespace, "web", {"web-new": ["app", injector.AGENT_CONTAINER]})
    agent = await start_agent(namespace)
    await daemon.intercepts.intercept(intercept_request("web", local_server))
    assert await asyncio.to_thread(_get, agent.port, "/books") == 200
    row = await until(lambda: next(iter(daemon.intercepts.history), None), "the row")

    edited = await daemon.intercepts.replay(dpb.ReplayRequest(
        traffic_id=row.id, target=dpb.REPLAY_TARGET_LOCAL, method="POST", path="/books?x=1",
        body=b"Dune", has_body=True))
    assert edited.record.response_body_prefix == b"local POST /books?x=1 Dune"
    assert edited.record.method == "POST" and edited.record.source == "replay"


async def test_a_request_from_a_har_file_replays_through_your_intercept_or_is_refused(
        daemon: Daemon, kube: Any, namespace: str, start_agent: Any, local_server: int
        ) -> None:
    create_workload(kube, namespace, "web")
    serve_from(kube, namespace, "web", {"web-new": ["app", injector.AGENT_CONTAINER]})
    await start_agent(namespace)
    made = await daemon.intercepts.intercept(intercept_request("web", local_server))
    given = mpb.TrafficRecord(method="PUT", path="/shelf", request_body_prefix=b"Emma",
                              request_headers=[mpb.Header(name="x-from", value="har")])
    sent = await daemon.intercepts.replay(dpb.ReplayRequest(
        traffic_id="har-0", target=dpb.REPLAY_TARGET_LOCAL, request=given))
    assert sent.record.response_body_prefix == b"local PUT /shelf Emma"   # the only one
    assert sent.record.intercept_name == made.intercept.spec.name
    given.intercept_name = "nope"
    with pytest.raises(InterceptUsage, match=r"no intercept of yours is named 'nope': say "
                                             r"which one to replay it through \(yours: "):
        await daemon.intercepts.replay(dpb.ReplayRequest(
            target=dpb.REPLAY_TARGET_LOCAL, request=given))
