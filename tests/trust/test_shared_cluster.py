"""A shared cluster you can trust: the traffic-manager authenticates and authorizes (root).

Laptop 1 acts as `alice`, laptop 2 as `bob` (the sandbox's users with ClusterRole `edit`,
`kubeconfig-<user>` of each laptop); the admin installs the manager once. Callers without
credentials reach the manager through a port-forward, as a pod in the cluster could.
The tests of this module run in order and share state.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2
from manager_testing import forwarded
from sandbox_testing import Laptop, wait_for
from tp_cluster.manifests import GRPC_PORT
from tp_protocol import manager_pb2 as pb
from tp_protocol import manager_pb2_grpc
from tp_protocol.auth import with_credentials

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

TP = f"{sys.executable} -m tp_jupyter.cli"
SVC = "dataprocessingservice"
MANAGER_NS = "ambassador"
SECRET_VALUE = "s3cr3t-db-password"


def _user_kubeconfig(sandbox: Any, k: int, user: str) -> Path:
    return Path(sandbox.instance.laptop_dir(k)) / f"kubeconfig-{user}"


def _token(kubeconfig: Path) -> str:
    doc = yaml.safe_load(kubeconfig.read_text())
    return str(doc["users"][0]["user"]["token"])


def _tp(lap: Laptop, args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


@pytest.fixture(scope="module")
def demo(sandbox: Any, apps: Any, core: Any) -> Iterator[str]:
    """The demo app; dataprocessingservice gets DB_PASSWORD from a Secret."""
    from tp_sandbox import lifecycle

    namespace = f"trust-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "db"},
        "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()}})
    apps.patch_namespaced_deployment(SVC, namespace, {"spec": {"template": {"spec": {
        "containers": [{"name": SVC, "env": [{"name": "DB_PASSWORD", "valueFrom": {
            "secretKeyRef": {"name": "db", "key": "password"}}}]}]}}}})

    def rolled_out() -> bool:
        d = apps.read_namespaced_deployment(SVC, namespace)
        st = d.status
        return bool(st.observed_generation >= d.metadata.generation
                    and st.updated_replicas == st.ready_replicas == st.replicas == 1)

    wait_for(rolled_out, 60, f"{SVC} with DB_PASSWORD")
    yield namespace
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def installed(sandbox: Any, demo: str) -> None:
    """The admin installs the manager once (a developer with `edit` cannot): `tp sandbox
    up` did; the admin's connect finds it (or installs it again)."""
    admin = Laptop(sandbox, 1)
    connected = _tp(admin, f"connect --kubeconfig {admin.admin_kubeconfig}", timeout=180)
    assert connected.returncode == 0, connected.stderr
    assert _tp(admin, "quit", timeout=30).returncode == 0


def _developer(sandbox: Any, k: int, user: str, namespace: str) -> Iterator[Laptop]:
    lap = Laptop(sandbox, k)
    app = lap.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                    env={"COLOR": user, "PORT": "3000"}, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    connected = _tp(lap, f"connect --kubeconfig {_user_kubeconfig(sandbox, k, user)} "
                         f"-n {namespace}", timeout=180)
    assert connected.returncode == 0, connected.stderr
    yield lap
    _tp(lap, "quit", timeout=30)
    app.terminate()
    app.wait(timeout=10)


@pytest.fixture(scope="module")
def alice(sandbox: Any, demo: str, installed: None) -> Iterator[Laptop]:
    yield from _developer(sandbox, 1, "alice", demo)


@pytest.fixture(scope="module")
def bob(sandbox: Any, demo: str, installed: None, alice: Laptop) -> Iterator[Laptop]:
    yield from _developer(sandbox, 2, "bob", demo)


@pytest.fixture(scope="module")
def intercepted(alice: Laptop, demo: str, tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, Any]:
    """alice intercepts the service; her session id is what a leak would give away."""
    env_json = tmp_path_factory.mktemp("alice") / "env.json"
    proc = _tp(alice, f"intercept {SVC} -n {demo} -p 3000 --http-match x-dev=alice "
                      f"--name alice --env-json {env_json}")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(_tp(alice, "status --format json").stdout)
    return {"session": status["connection"]["session_id"],
            "env": json.loads(env_json.read_text())}


@pytest.fixture(scope="module")
def manager_port(kube: Any, core: Any, installed: None) -> Iterator[int]:
    pod = next(p.metadata.name for p in core.list_namespaced_pod(
        MANAGER_NS, label_selector="app=traffic-manager").items
        if p.status.phase == "Running")
    with forwarded(kube, MANAGER_NS, pod, GRPC_PORT) as port:
        yield port


@pytest.fixture
async def channel(manager_port: int) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{manager_port}") as chan:
        yield chan


def _stub(channel: grpc.aio.Channel, token: str = "") -> Any:
    stub = manager_pb2_grpc.ManagerStub(channel)
    return with_credentials(stub, lambda: token) if token else stub


async def _code(call: Any) -> grpc.StatusCode:
    """The status a unary call or a stream's first read ends with."""
    try:
        if hasattr(call, "read"):
            await call.read()
        else:
            await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _every_rpc(stub: Any, session: Any) -> dict[str, grpc.StatusCode]:
    """Every Manager RPC once (streams: their first answer), naming `session`."""
    info = pb.SessionInfo(session_id=session)
    t = 20
    calls = {
        "Version": stub.Version(empty_pb2.Empty(), timeout=t),
        "ArriveAsClient": stub.ArriveAsClient(pb.ClientInfo(name="x", namespace="default"),
                                              timeout=t),
        "ArriveAsAgent": stub.ArriveAsAgent(pb.AgentInfo(name=SVC, namespace="default"),
                                            timeout=t),
        "Remain": stub.Remain(pb.RemainRequest(session=info), timeout=t),
        "Depart": stub.Depart(info, timeout=t),
        "GetClusterInfo": stub.GetClusterInfo(info, timeout=t),
        "LookupDNS": stub.LookupDNS(pb.DNSRequest(session=info, name="kubernetes"),
                                    timeout=t),
        "ResolveDial": stub.ResolveDial(pb.ResolveDialRequest(
            session=info, dial=pb.Dial(protocol="tcp", ip="10.96.0.1", port=443)), timeout=t),
        "PrepareIntercept": stub.PrepareIntercept(pb.InterceptSpec(
            workload=SVC, namespace="default"), timeout=t),
        "CreateIntercept": stub.CreateIntercept(pb.CreateInterceptRequest(
            session=info, spec=pb.InterceptSpec(workload=SVC, namespace="default")),
            timeout=t),
        "RemoveIntercept": stub.RemoveIntercept(pb.RemoveInterceptRequest(
            session=info, name="alice"), timeout=t),
        "UninstallAgents": stub.UninstallAgents(pb.UninstallAgentsRequest(
            session=info, namespace="default", workloads=[SVC]), timeout=t),
        "ListIntercepts": stub.ListIntercepts(pb.ListInterceptsRequest(session=info),
                                              timeout=t),
        "ListWorkloads": stub.ListWorkloads(pb.ListWorkloadsRequest(session=info),
                                            timeout=t),
        "ReviewIntercept": stub.ReviewIntercept(pb.ReviewInterceptRequest(
            session=info, intercept_id=f"{session}:alice"), timeout=t),
        "WatchIntercepts": stub.WatchIntercepts(info, timeout=t),
        "ReceiveDials": stub.ReceiveDials(info, timeout=t),
        "WatchWorkloads": stub.WatchWorkloads(pb.ListWorkloadsRequest(session=info),
                                              timeout=t),
        "WatchInterceptsForAgent": stub.WatchInterceptsForAgent(info, timeout=t),
        "WatchTraffic": stub.WatchTraffic(pb.WatchTrafficRequest(session=info), timeout=t),
        "WatchTrafficBatches": stub.WatchTrafficBatches(pb.WatchTrafficRequest(session=info),
                                                        timeout=t),
        "GatherLogs": stub.GatherLogs(pb.GatherLogsRequest(session=info), timeout=t),
    }

    async def one_report() -> AsyncIterator[Any]:
        yield pb.TrafficReport(session=info)

    calls["ReportTraffic"] = stub.ReportTraffic(one_report(), timeout=t)

    async def one_hello() -> AsyncIterator[Any]:
        yield pb.RelayBatch(frames=[pb.RelayFrame(hello=info)])

    calls["Relay"] = stub.Relay(one_hello(), timeout=t)
    codes = {name: await _code(call) for name, call in calls.items()}
    tunnel = stub.Tunnel(timeout=t)
    try:
        await tunnel.write(pb.TunnelMessage(open=pb.TunnelOpen(
            session=info, dial=pb.Dial(protocol="tcp", ip="10.96.0.1", port=443))))
    except grpc.aio.AioRpcError as exc:
        codes["Tunnel"] = exc.code()
    else:
        codes["Tunnel"] = await _code(tunnel)
    return codes


async def test_a_caller_without_credentials_is_refused_on_every_rpc(
        channel: grpc.aio.Channel, intercepted: dict[str, Any]) -> None:
    codes = await _every_rpc(_stub(channel), intercepted["session"])
    every = set(pb.DESCRIPTOR.services_by_name["Manager"].methods_by_name)
    assert set(codes) == every
    assert {name: code for name, code in codes.items()
            if code != grpc.StatusCode.UNAUTHENTICATED} == {}


async def test_a_made_up_token_is_refused_too(channel: grpc.aio.Channel) -> None:
    stub = _stub(channel, "not-a-token")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Version(empty_pb2.Empty(), timeout=20)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "refused" in (err.value.details() or "")


async def test_another_developer_with_a_leaked_session_id_is_refused(
        sandbox: Any, channel: grpc.aio.Channel, intercepted: dict[str, Any],
        bob: Laptop) -> None:
    stub = _stub(channel, _token(_user_kubeconfig(sandbox, 2, "bob")))
    codes = await _every_rpc(stub, intercepted["session"])
    for name in ("Remain", "Depart", "GetClusterInfo", "LookupDNS", "CreateIntercept",
                 "RemoveIntercept", "UninstallAgents", "ListIntercepts", "ListWorkloads",
                 "WatchIntercepts", "ReceiveDials", "WatchWorkloads", "WatchTraffic",
                 "GatherLogs", "WatchTrafficBatches", "Relay", "ResolveDial"):
        assert codes[name] == grpc.StatusCode.PERMISSION_DENIED, (name, codes[name])
    # the Tunnel names the refusal in-band
    tunnel = stub.Tunnel(timeout=20)
    await tunnel.write(pb.TunnelMessage(open=pb.TunnelOpen(
        session=pb.SessionInfo(session_id=intercepted["session"]),
        dial=pb.Dial(protocol="tcp", ip="10.96.0.1", port=443))))
    answer = await tunnel.read()
    assert answer.error.code == "forbidden", answer


async def test_listings_show_others_intercepts_without_session_id_or_environment(
        sandbox: Any, channel: grpc.aio.Channel, intercepted: dict[str, Any], demo: str,
        bob: Laptop) -> None:
    stub = _stub(channel, _token(_user_kubeconfig(sandbox, 2, "bob")))
    mine = await stub.ArriveAsClient(pb.ClientInfo(name="bob-probe", namespace=demo),
                                     timeout=20)
    try:
        listed = await stub.ListIntercepts(pb.ListInterceptsRequest(session=mine),
                                           timeout=20)
        workloads = await stub.ListWorkloads(pb.ListWorkloadsRequest(session=mine,
                                                                     namespace=demo),
                                             timeout=20)
        watched = await stub.WatchWorkloads(pb.ListWorkloadsRequest(
            session=mine, namespace=demo), timeout=20).read()
    finally:
        await stub.Depart(mine, timeout=20)
    held = [ic for w in [*workloads.workloads, *watched.workloads] for ic in w.intercepts]
    shown = [ic for ic in listed.intercepts if ic.spec.name == "alice"] + held
    assert len(shown) == 3
    for ic in shown:
        assert (ic.spec.name, ic.spec.workload, ic.spec.owner) == ("alice", SVC, "alice")
        assert [m.regex for m in ic.spec.header_matches] == ["alice"]
        assert not (ic.id or ic.client_session or ic.environment or ic.mounts
                    or ic.volumes_token)
        assert intercepted["session"] not in ic.SerializeToString().decode("latin-1")


def test_the_owner_alone_gets_the_environment_with_the_secret(
        intercepted: dict[str, Any]) -> None:
    # (the listings above show others nothing of it)
    assert intercepted["env"]["DB_PASSWORD"] == SECRET_VALUE


async def test_bob_cannot_remove_alices_intercept(channel: grpc.aio.Channel,
                                                  intercepted: dict[str, Any], demo: str,
                                                  alice: Laptop, bob: Laptop) -> None:
    stub = _stub(channel, _token(_user_kubeconfig(bob.sandbox, 2, "bob")))
    mine = await stub.ArriveAsClient(pb.ClientInfo(name="bob-probe", namespace=demo),
                                     timeout=20)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:  # his own session: no such intercept
            await stub.RemoveIntercept(pb.RemoveInterceptRequest(session=mine, name="alice"),
                                       timeout=20)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await stub.Depart(mine, timeout=20)
    assert "intercepted" in _tp(bob, f"list -n {demo}").stdout
    assert "intercepted" in _tp(alice, f"list -n {demo}").stdout


async def test_an_agent_token_of_another_workload_cannot_act_for_this_one(
        channel: grpc.aio.Channel, core: Any, demo: str, intercepted: dict[str, Any]) -> None:
    other = core.list_namespaced_pod(demo, label_selector="app=verylargejavaservice").items[0]
    token = core.create_namespaced_service_account_token("default", demo, {
        "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                    "name": other.metadata.name, "uid": other.metadata.uid},
                 "expirationSeconds": 600}}).status.token
    stub = _stub(channel, token)
    for pod in (other.metadata.name, f"{SVC}-not-this-pod"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ArriveAsAgent(pb.AgentInfo(name=SVC, namespace=demo, kind="Deployment",
                                                  pod_name=pod), timeout=20)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, pod
    # as the agent of its own workload it arrives, and sees only that workload's intercepts
    own = await stub.ArriveAsAgent(pb.AgentInfo(
        name="verylargejavaservice", namespace=demo, kind="Deployment",
        pod_name=other.metadata.name), timeout=20)
    try:
        snapshot = await stub.WatchInterceptsForAgent(own, timeout=20).read()
        assert list(snapshot.intercepts) == []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReviewIntercept(pb.ReviewInterceptRequest(
                session=own, intercept_id=f"{intercepted['session']}:alice",
                state=pb.INTERCEPT_STATE_ACTIVE), timeout=20)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await stub.Depart(own, timeout=20)


def test_uninstalling_an_agent_someone_else_intercepts_needs_force_and_names_them(
        alice: Laptop, bob: Laptop, demo: str, intercepted: dict[str, Any]) -> None:
    refused = _tp(bob, f"uninstall --agent {SVC} -n {demo}")
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("tp: ") and "alice" in last and "--force" in last, refused.stderr
    assert "intercepted" in _tp(alice, f"list -n {demo}").stdout  # untouched
    forced = _tp(bob, f"uninstall --agent {SVC} -n {demo} --force --format json")
    assert forced.returncode == 0, forced.stderr
    ended = json.loads(forced.stdout)["ended"]
    assert [(e["name"], e["owner"], e["workload"], e["namespace"]) for e in ended] == [
        ("alice", "alice", SVC, demo)]
    assert ended[0]["client"], ended
    wait_for(lambda: "intercepted" not in _tp(alice, f"list -n {demo}").stdout, 60,
             "alice's intercept to end")


def test_tp_list_names_the_owner_of_an_intercept_that_is_not_yours(
        alice: Laptop, bob: Laptop, demo: str) -> None:
    made = _tp(alice, f"intercept {SVC} -n {demo} -p 3000 --http-match x-dev=alice "
                      "--name alice2 --mount false", timeout=180)
    assert made.returncode == 0, made.stderr
    theirs = _tp(bob, f"list -n {demo}").stdout.splitlines()
    assert f"{SVC}: intercepted by alice" in theirs, theirs
    by = [line.split(":", 1)[1].strip() for line in theirs
          if line.strip().startswith("Intercepted by")]
    assert len(by) == 1 and by[0].startswith("alice ("), theirs
    mine = _tp(alice, f"list -n {demo}").stdout
    assert f"{SVC}: intercepted\n" in mine and "Intercepted by" not in mine, mine


def test_a_forced_uninstall_says_whose_intercepts_it_ended(
        alice: Laptop, bob: Laptop, demo: str) -> None:
    forced = _tp(bob, f"uninstall --agent {SVC} -n {demo} --force")
    assert forced.returncode == 0, forced.stderr
    lines = forced.stdout.splitlines()
    assert f"Removed the traffic-agent from Deployment/{SVC}.{demo}" in lines, lines
    ended = [line for line in lines if line.startswith("Ended the intercept")]
    assert len(ended) == 1 and ended[0].startswith("Ended the intercept alice2 of alice ("), lines
    assert ended[0].endswith(f") on {SVC}.{demo}"), lines
    wait_for(lambda: "intercepted" not in _tp(alice, f"list -n {demo}").stdout, 60,
             "alice's second intercept to end")


def test_a_developer_cannot_install_the_manager_and_is_told_who_can(
        sandbox: Any, bob: Laptop) -> None:
    other_ns = f"tp-trust-{secrets.token_hex(2)}"
    assert _tp(bob, "quit", timeout=30).returncode == 0
    attempt = _tp(bob, f"connect --kubeconfig {_user_kubeconfig(sandbox, 2, 'bob')} "
                       f"--manager-namespace {other_ns}", timeout=120)
    assert attempt.returncode != 0
    last = attempt.stderr.strip().splitlines()[-1]
    assert "not installed" in last and "admin" in last, attempt.stderr

