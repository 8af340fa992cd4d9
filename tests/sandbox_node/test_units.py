"""Unit-level tests of the node's pieces: logs, IPAM, $(VAR) expansion, downward API,
and pod networking in a node netns of our own (root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from tp_sandbox import netns
from tp_sandbox.node import kubeapi
from tp_sandbox.node.errors import (
    ApiConflict,
    ApiError,
    ApiGone,
    ApiNotFound,
    NodeUsageError,
    PodSetupError,
)
from tp_sandbox.node.logs import LogWriter, render, tail_records
from tp_sandbox.node.network import Ipam, setup_pod_network, teardown_pod_network, veth_name
from tp_sandbox.node.podconfig import Mount, expand, field_ref
from tp_sandbox.node.runtime import MountPoints
from tp_sandbox.paths import Instance

pytestmark = pytest.mark.timeout(60)


def test_api_failures_become_the_node_hierarchy_by_status(tmp_path: Path) -> None:
    def failing(status: int) -> None:
        raise ApiException(status=status, reason="Nope")

    for status, cls in ((404, ApiNotFound), (409, ApiConflict), (410, ApiGone), (500, ApiError)):
        with pytest.raises(cls) as err:
            kubeapi._translate("get thing", lambda s=status: failing(s))  # type: ignore[misc]
        assert type(err.value) is cls and err.value.status == status
        assert str(err.value).startswith(f"get thing: {status} ")
    with pytest.raises(NodeUsageError, match="--kubeconfig"):
        kubeapi.KubeApi.from_kubeconfig(tmp_path / "missing")


def test_logs_keep_lines_partial_lines_and_streams_in_order(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "c.log", 1 << 20)
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\nthree\n")
    w.close()
    data = (tmp_path / "c.log").read_bytes()
    assert render(data, False) == b"one\ntwerr\no\nthree\n"
    assert render(tail_records(data, 1), False) == b"three\n"
    assert render(data, True).split(b" ", 1)[0].endswith(b"Z")


def test_a_log_over_its_limit_keeps_its_newer_half(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "c.log", 4096)
    for i in range(1000):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    text = render((tmp_path / "c.log").read_bytes(), False).decode()
    assert os.path.getsize(tmp_path / "c.log") <= 4096
    assert text.endswith("line 999\n") and "line 0\n" not in text


def test_ipam_never_hands_out_a_live_address_and_rotates_released_ones() -> None:
    ipam = Ipam("10.244.0.0/29")
    a, b = ipam.allocate("a"), ipam.allocate("b")
    assert a == "10.244.0.2" and b == "10.244.0.3"
    ipam.release("a")
    c = ipam.allocate("c")
    assert c not in (a, b)
    for uid in "defg":
        if uid == "g":
            with pytest.raises(PodSetupError, match="no free pod address"):
                ipam.allocate(uid)
        else:
            ipam.allocate(uid)


def test_var_references_expand_like_kubernetes() -> None:
    env = {"A": "x", "B": "y"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "x-y-$(C)-$(A)"


def test_downward_api_field_refs_read_the_pod() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"app": "z"}},
           "spec": {"nodeName": "sandbox-node"}}
    assert field_ref(pod, "metadata.labels['app']", "10.244.0.9", "h") == "z"
    assert field_ref(pod, "status.podIP", "10.244.0.9", "h") == "10.244.0.9"
    assert field_ref(pod, "spec.serviceAccountName", "", "") == "default"
    with pytest.raises(PodSetupError, match="unsupported fieldRef"):
        field_ref(pod, "spec.bogus", "", "")


def test_mount_points_made_for_pods_go_away_with_the_last_pod(tmp_path: Path) -> None:
    mp = MountPoints()
    target = tmp_path / "a" / "b"
    mp.acquire("pod1", Mount("/src", str(target)))
    mp.acquire("pod2", Mount("/src", str(target)))
    mp.release("pod1")
    assert target.is_dir()
    mp.release("pod2")
    assert not (tmp_path / "a").exists()


def test_a_mount_point_reached_through_a_symlink_stays_while_another_namespace_mounts_it(
        tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")  # as /var/run -> /run
    mp = MountPoints()
    mp.acquire("pod1", Mount("/src", str(tmp_path / "link" / "x" / "y")))
    target = tmp_path / "real" / "x" / "y"
    holder = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f"mount --bind {tmp_path} {target} && echo mounted && exec sleep 60"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "mounted"
        mp.release("pod1")
        assert target.is_dir(), "rmdir would have detached the other namespace's mount"
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def node_instance() -> Iterator[Instance]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    inst = Instance("h5u")
    subprocess.run(["ip", "netns", "add", inst.node_netns], check=True)
    netns.run(inst.node_netns, ["ip", "link", "set", "lo", "up"])
    try:
        yield inst
    finally:
        for name in os.listdir(netns.NETNS_DIR):
            if name.startswith(inst.prefix):
                subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.root
def test_a_pod_netns_gets_a_routed_address_reachable_from_the_node(node_instance: Instance
                                                                   ) -> None:
    uid = "0123456789abcdef-uid"
    pod_ns = setup_pod_network(node_instance, uid, "10.244.0.7")
    assert netns.exists(pod_ns)
    routes = netns.run(pod_ns, ["ip", "route"]).stdout.decode()
    assert "default via 169.254.1.1 dev eth0" in routes and "onlink" in routes
    node_routes = netns.run(node_instance.node_netns, ["ip", "route"]).stdout.decode()
    assert f"10.244.0.7 dev {veth_name(uid)}" in node_routes
    # A listener in the pod answers a client in the node namespace.
    srv = netns.socket_in(pod_ns)
    srv.bind(("10.244.0.7", 9999))
    srv.listen(1)
    cli = netns.socket_in(node_instance.node_netns)
    cli.settimeout(5)
    cli.connect(("10.244.0.7", 9999))
    conn, peer = srv.accept()
    assert peer[0] == "169.254.1.1"
    for s in (conn, cli, srv):
        s.close()
    teardown_pod_network(node_instance, uid)
    assert not netns.exists(pod_ns)
    links = netns.run(node_instance.node_netns, ["ip", "link"]).stdout.decode()
    assert veth_name(uid) not in links
