"""The daemon's intercept side against the real manager, agent and API server, as a user
drives it: list, intercept (ACTIVE only when the manager says so), volumes, traffic,
replay, leave, and the undo of a failure. No root and no network namespaces."""

from __future__ import annotations

import asyncio
import http.client
from pathlib import Path
from typing import Any

import pytest
from daemon_testing import (
    Daemon,
    create_workload,
    intercept_request,
    serve_from,
    until,
)
from manager_testing import Manager
from tp_cluster import injector
from tp_cluster.manager import workloads
from tp_daemon.errors import DaemonError, InterceptFailed, InterceptUsage
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol.traffic import REDACTED

pytestmark = pytest.mark.timeout(30)
S = mpb.InterceptState


def http_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def states(listed: dpb.WorkloadList) -> dict[str, tuple[str, int]]:
    return {w.name: (w.kind, w.state) for w in listed.workloads}


async def state_of(daemon: Daemon, name: str) -> int:
    """The `tp list` state of one workload of the daemon's namespace."""
    listed = await daemon.intercepts.list_workloads(dpb.ListRequest())
    return next(w.state for w in listed.workloads if w.name == name)


async def web_and_lonely(daemon: Daemon, kube: Any, namespace: str
                         ) -> dict[str, dpb.WorkloadInfo]:
    """`web` (with a Service) and `lonely` (none), listed: their states are checked."""
    create_workload(kube, namespace, "web")
    create_workload(kube, namespace, "lonely", with_service=False)
    listed = await daemon.intercepts.list_workloads(dpb.ListRequest())
    assert states(listed) == {
        "lonely": ("Deployment", dpb.WORKLOAD_STATE_NOT_INTERCEPTABLE),
        "web": ("Deployment", dpb.WORKLOAD_STATE_READY_NOT_INSTALLED)}
    return {w.name: w for w in listed.workloads}


async def test_list_shows_each_workload_with_its_state_and_kind(
        daemon: Daemon, kube: Any, namespace: str) -> None:
    listed = await web_and_lonely(daemon, kube, namespace)
    assert listed["lonely"].reason.startswith("no Service selects the pods of lonely")


async def test_list_states_survive_a_reworded_manager(
        daemon: Daemon, kube: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state is the manager's enum: its human text may say anything."""
    original = injector.interceptable

    def reworded(*args: Any, **kwargs: Any) -> tuple[bool, str]:
        ok, reason = original(*args, **kwargs)
        return ok, "" if ok else "cannot take a traffic-agent, because: " + reason.upper()

    monkeypatch.setattr(workloads.injector, "interceptable", reworded)
    listed = await web_and_lonely(daemon, kube, namespace)
    assert listed["lonely"].reason.startswith(
        "cannot take a traffic-agent, because: NOT INTERCEPTABLE")


async def test_listing_an_unknown_namespace_says_what_to_do(daemon: Daemon) -> None:
    with pytest.raises(DaemonError, match="namespace nowhere not found; check the name with"):
        await daemon.intercepts.list_workloads(dpb.ListRequest(namespace="nowhere"))


async def test_a_bad_spec_fails_before_anything_changes_in_the_cluster(
        daemon: Daemon, manager: Manager, kube: Any, namespace: str) -> None:
    create_workload(kube, namespace, "web")
    with pytest.raises(InterceptUsage, match="invalid regex"):
        await daemon.intercepts.intercept(intercept_request(
            "web", 3000, header_matches=[mpb.HeaderMatch(name="x-id", regex="(")]))
    with pytest.raises(InterceptUsage, match="local port 0 is not a port"):
        await daemon.intercepts.intercept(intercept_request("web", 0))
    with pytest.raises(InterceptUsage, match="header name 'x id' is not a valid HTTP header"):
        await daemon.intercepts.intercept(intercept_request(
            "web", 3000, header_matches=[mpb.HeaderMatch(name="x id", regex="a")]))
    assert manager.server.state.intercepts == {}
    assert await state_of(daemon, "web") == dpb.WORKLOAD_STATE_READY_NOT_INSTALLED


async def test_an_intercept_is_active_only_once_the_service_reaches_agent_pods_only(
        daemon: Daemon, manager: Manager, kube: Any, *, namespace: str, start_agent: Any,
        local_server: int, tmp_path: Path) -> None:
    create_workload(kube, namespace, "web")
    serve_from(kube, namespace, "web", {"web-old": ["app"]})
    await start_agent(namespace)
    mount = tmp_path / "mnt"
    mount.mkdir()
    task = asyncio.create_task(daemon.intercepts.intercept(intercept_request(
        "web", local_server, mount_point=str(mount))))

    def disposition() -> str:
        ic = next(iter(manager.server.state.intercepts.values()), None)
        return ic.message if ic is not None and ic.state == S.INTERCEPT_STATE_WAITING else ""

    pending = await until(lambda: "web-old" in disposition() and disposition(),
                          "the manager to say which pod still lacks the agent")
    assert "service web still reaches pod web-old without the traffic-agent" in pending
    assert not task.done()

    serve_from(kube, namespace, "web", {"web-new": ["app", injector.AGENT_CONTAINER]})
    result = await asyncio.wait_for(task, 10)
    assert result.intercept.state == S.INTERCEPT_STATE_ACTIVE
    assert result.intercept.environment["COLOR"] == "blue"
    assert any("web-old" in line for line in daemon.progress)
    # the volumes come from the agent, through the manager's tunnel (live with sshfs where
    # FUSE works: read them off this loop, which serves the agent's SFTP too)
    config = mount / "var" / "data" / "config.txt"
    assert await asyncio.to_thread(config.read_text) == "color=blue\n"
    env = daemon.intercepts.env(result.intercept.spec.name)
    assert env.mount_point == str(mount)

    listed = await daemon.intercepts.list_workloads(dpb.ListRequest())
    web = next(w for w in listed.workloads if w.name == "web")
    assert web.state == dpb.WORKLOAD_STATE_INTERCEPTED
    assert [ic.spec.name for ic in web.intercepts] == [result.intercept.spec.name]

    await daemon.intercepts.leave(result.intercept.spec.name)
    # what we mounted or copied is gone, the folder we were given stays
    assert not await asyncio.to_thread(lambda: any(mount.iterdir()))
    assert await state_of(daemon, "web") == dpb.WORKLOAD_STATE_READY_INSTALLED


async def test_intercepted_traffic_reaches_the_local_server_is_recorded_and_replays(
        daemon: Daemon, kube: Any, namespace: str, start_agent: Any, local_server: int
        ) -> None:
    create_workload(kube, namespace, "web")
    serve_from(kube, namespace, "web", {"web-new": ["app", injector.AGENT_CONTAINER]})
    agent = await start_agent(namespace)
    await daemon.intercepts.intercept(intercept_request("web", local_server,
                                                        header_matches=[mpb.HeaderMatch(
                                                            name="x-id", regex="^me$")]))
    mine = await asyncio.to_thread(http_get, agent.port, "/hello", {
        "x-id": "me", "Authorization": "Bearer secret"})
    other = await asyncio.to_thread(http_get, agent.port, "/hello", {"x-id": "you"})
    assert mine == (200, b"local GET /hello ")
    assert other == (200, b"app GET /hello ")

    row = await until(lambda: next((r for r in daemon.intercepts.history
                                    if r.routed_to == mpb.ROUTED_TO_LOCAL), None),
                      "the intercepted request's traffic row")
    sent = {h.name.lower(): h.value for h in row.request_headers}
    assert sent["authorization"] == REDACTED  # credentials never travel in rows

    again = await daemon.intercepts.replay(dpb.ReplayRequest(
        traffic_id=row.id, target=dpb.REPLAY_TARGET_LOCAL))
    assert again.record.status == 200, again.record.error
    assert again.record.response_body_prefix.startswith(b"local GET /hello")
    replayed = {h.name.lower() for h in again.record.request_headers}
    assert "authorization" not in replayed  # a redacted value is not sent again


async def test_a_failed_intercept_leaves_nothing_behind(
        daemon: Daemon, manager: Manager, kube: Any, *, namespace: str, local_server: int,
        fast_settings: Any) -> None:
    """No agent ever arrives: the manager restores the workload, the daemon removes the
    intercept, and the error says what to look at."""
    fast_settings.intercept.activate_timeout = 1.0
    create_workload(kube, namespace, "web")
    with pytest.raises(DaemonError, match="did not arrive within 1s"):
        await daemon.intercepts.intercept(intercept_request("web", local_server))
    assert manager.server.state.intercepts == {}
    assert await state_of(daemon, "web") == dpb.WORKLOAD_STATE_READY_NOT_INSTALLED


async def test_an_agent_that_cannot_be_pulled_fails_the_intercept_with_the_pods_reason(
        daemon: Daemon, manager: Manager, kube: Any, namespace: str, local_server: int
        ) -> None:
    from kubernetes import client

    create_workload(kube, namespace, "web")
    api = client.CoreV1Api(kube)
    api.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-new",
                                                        "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "python"},
                                {"name": injector.AGENT_CONTAINER, "image": "nope"}]}})
    api.patch_namespaced_pod_status("web-new", namespace, {"status": {
        "phase": "Pending", "containerStatuses": [{
            "name": injector.AGENT_CONTAINER, "ready": False, "restartCount": 0,
            "image": "nope", "imageID": "",
            "state": {"waiting": {"reason": "ImagePullBackOff",
                                  "message": "pull access denied"}}}]}})
    with pytest.raises(DaemonError, match="ImagePullBackOff: pull access denied"):
        await daemon.intercepts.intercept(intercept_request("web", local_server))
    assert manager.server.state.intercepts == {}


async def test_leaving_an_unknown_intercept_says_so(daemon: Daemon) -> None:
    with pytest.raises(DaemonError, match="no intercept named 'ghost': see `tp list`"):
        await daemon.intercepts.leave("ghost")


def test_the_failure_classes_share_the_error_root() -> None:
    from tp_protocol.errors import TpJupyterError

    assert issubclass(InterceptFailed, TpJupyterError)


async def test_watching_workloads_gives_the_list_then_each_change(
        daemon: Daemon, manager: Manager, kube: Any, namespace: str) -> None:
    create_workload(kube, namespace, "web")
    _, session = daemon.owner.manager()
    call = manager.stub.WatchWorkloads(mpb.ListWorkloadsRequest(session=session), timeout=20)
    first = await call.read()
    assert [(w.name, w.state) for w in first.workloads] == [
        ("web", mpb.WORKLOAD_STATE_INTERCEPTABLE)]
    create_workload(kube, namespace, "lonely", with_service=False)
    second = await call.read()
    assert [(w.name, w.state) for w in second.workloads] == [
        ("lonely", mpb.WORKLOAD_STATE_NOT_INTERCEPTABLE),
        ("web", mpb.WORKLOAD_STATE_INTERCEPTABLE)]
    call.cancel()
