"""End to end: the real API server, controllers and node process (the shared `sandbox`
fixture), driven through the official client as a user would."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import portforward, stream
from sandbox_testing import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

MB = 1024 * 1024


def make_pod(core: Any, ns: str, name: str, containers: list[dict[str, Any]],
             **spec: Any) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": containers, "terminationGracePeriodSeconds": 2, **spec}}
    core.create_namespaced_pod(ns, body)


def pod_status(core: Any, ns: str, name: str) -> Any:
    return core.read_namespaced_pod(name, ns).status


def is_ready(core: Any, ns: str, name: str) -> bool:
    conds = pod_status(core, ns, name).conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conds)


def run_in(core: Any, ns: str, pod: str, container: str, cmd: list[str]) -> str:
    out: str = stream(core.connect_get_namespaced_pod_exec, pod, ns, container=container,
                      command=cmd, stderr=True, stdin=False, stdout=True, tty=False)
    return out


WEB = {"name": "web", "image": "python", "command": ["python3", "-m", "http.server", "8080"],
       "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
SLEEPER = {"name": "side", "image": "busybox", "command": ["sh", "-c", "echo started; sleep 3600"]}


def test_a_pod_runs_becomes_ready_and_its_containers_share_localhost(core: Any, namespace: str
                                                                    ) -> None:
    side = {**SLEEPER, "env": [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "value": "hi-$(APP)"}]}
    make_pod(core, namespace, "web", [WEB, side])
    wait_for(lambda: is_ready(core, namespace, "web"), 30, "pod web Ready")
    st = pod_status(core, namespace, "web")
    assert st.phase == "Running" and st.pod_ip.startswith("10.244.0.")
    assert st.host_ip == "172.30.0.1"
    assert {c.type for c in st.conditions} >= {"PodScheduled", "Initialized", "ContainersReady",
                                                "Ready"}
    for cs in st.container_statuses:
        assert cs.ready and cs.started and cs.container_id.startswith("tp://")
        assert cs.state.running is not None
    out = run_in(core, namespace, "web", "side",
                 ["sh", "-c", "echo $POD_IP $POD_NS $GREETING; hostname; "
                              "wget -qO- http://localhost:8080/ | head -c 15"])
    lines = out.splitlines()
    assert lines[0] == f"{st.pod_ip} {namespace} hi-web"
    assert lines[1] == "web"
    assert "<!DOCTYPE HTML>" in lines[2]
    resolv = run_in(core, namespace, "web", "side", ["cat", "/etc/resolv.conf"])
    assert "nameserver 10.96.0.10" in resolv
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in resolv


def test_config_map_secret_and_downward_api_volumes_are_visible(core: Any, namespace: str
                                                                ) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"},
                                                  "data": {"color": "blue"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "sec"},
                                              "stringData": {"password": "s3cret"}})
    c = {**SLEEPER, "volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/tp-test-cfg"},
        {"name": "sec", "mountPath": "/etc/tp-test-sec", "readOnly": True},
        {"name": "info", "mountPath": "/etc/tp-test-info"},
        {"name": "scratch", "mountPath": "/tp-test-scratch"}],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}}]}
    make_pod(core, namespace, "vols", [c], volumes=[
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "scratch", "emptyDir": {}}])
    wait_for(lambda: is_ready(core, namespace, "vols"), 30, "pod vols Ready")
    out = run_in(core, namespace, "vols", "side", ["sh", "-c",
                 "cat /etc/tp-test-cfg/color; echo; cat /etc/tp-test-sec/password; echo; "
                 "cat /etc/tp-test-info/name; echo; cat /etc/tp-test-info/labels; echo; "
                 "echo $CFG_color $PW; touch /etc/tp-test-sec/x 2>/dev/null || echo ro; "
                 "echo ok > /tp-test-scratch/f && cat /tp-test-scratch/f"])
    assert out.splitlines() == ["blue", "s3cret", "vols", 'app="vols"', "blue s3cret", "ro",
                                "ok"]
    # Mount points made for the pod exist only while it does.
    core.delete_namespaced_pod("vols", namespace)
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, 30, "pod vols gone")
    import os
    assert not os.path.exists("/etc/tp-test-cfg") and not os.path.exists("/tp-test-scratch")


def test_in_cluster_config_works_inside_a_pod(core: Any, namespace: str) -> None:
    # As in a real cluster, the default ServiceAccount may do nothing until a Role allows it.
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "pod-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]})
    make_pod(core, namespace, "incluster", [SLEEPER])
    wait_for(lambda: is_ready(core, namespace, "incluster"), 30, "pod Ready")
    out = run_in(core, namespace, "incluster", "side", [
        "python3", "-c",
        "from kubernetes import client, config; config.load_incluster_config(); "
        "ns = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read(); "
        "print([p.metadata.name for p in client.CoreV1Api().list_namespaced_pod(ns).items])"])
    assert out.strip() == "['incluster']", out


def test_a_crashing_container_reaches_crash_loop_back_off_with_growing_restarts(
        core: Any, namespace: str) -> None:
    make_pod(core, namespace, "crash", [{"name": "c", "image": "busybox",
                                         "command": ["sh", "-c", "echo boom; exit 3"]}])

    def restarted_twice() -> Any:
        cs = pod_status(core, namespace, "crash").container_statuses
        return cs and cs[0].restart_count >= 2 and cs[0]
    cs = wait_for(restarted_twice, 40, "two restarts")
    assert cs.last_state.terminated.exit_code == 3
    assert cs.last_state.terminated.reason == "Error"
    wait_for(lambda: (pod_status(core, namespace, "crash").container_statuses[0].state.waiting
                      or client.V1ContainerStateWaiting(reason="")).reason == "CrashLoopBackOff",
             20, "CrashLoopBackOff")
    previous = core.read_namespaced_pod_log("crash", namespace, container="c", previous=True)
    assert previous == "boom\n"


def test_an_unknown_image_waits_in_image_pull_back_off(core: Any, namespace: str) -> None:
    make_pod(core, namespace, "noimg", [{"name": "c", "image": "example.com/nope:1",
                                         "command": ["sh"]}])
    reasons = set()

    def seen_backoff() -> bool:
        statuses = pod_status(core, namespace, "noimg").container_statuses
        w = statuses[0].state.waiting if statuses else None
        if w is not None:
            reasons.add(w.reason)
        return "ImagePullBackOff" in reasons
    wait_for(seen_backoff, 20, "ImagePullBackOff")
    assert reasons <= {"ContainerCreating", "ErrImagePull", "ImagePullBackOff"}
    assert pod_status(core, namespace, "noimg").phase == "Pending"


def test_a_readiness_probe_gates_ready(core: Any, namespace: str) -> None:
    c = {**SLEEPER, "readinessProbe": {"exec": {"command": ["test", "-f", "/probe/ready"]},
                                       "periodSeconds": 1},
         "volumeMounts": [{"name": "p", "mountPath": "/probe"}]}
    make_pod(core, namespace, "gated", [c], volumes=[{"name": "p", "emptyDir": {}}])
    wait_for(lambda: pod_status(core, namespace, "gated").phase == "Running", 30, "Running")
    time.sleep(2)  # several probe periods: it must stay unready
    assert not is_ready(core, namespace, "gated")
    run_in(core, namespace, "gated", "side", ["touch", "/probe/ready"])
    wait_for(lambda: is_ready(core, namespace, "gated"), 10, "Ready after the file appears")


def test_deletion_sends_sigterm_then_sigkill_after_the_grace_period(
        core: Any, namespace: str, tmp_path: Any) -> None:
    events = tmp_path / "events"
    c = {"name": "stubborn", "image": "busybox", "command": ["sh", "-c",
         "trap 'echo TERM >> /out/events' TERM; echo up >> /out/events; "
         "while true; do sleep 0.1; done"],
         "volumeMounts": [{"name": "out", "mountPath": "/out"}]}
    make_pod(core, namespace, "stubborn", [c],
             volumes=[{"name": "out", "hostPath": {"path": str(tmp_path)}}])
    wait_for(lambda: events.exists() and "up" in events.read_text(), 30, "container up")
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", namespace)
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, 30, "pod gone")
    took = time.monotonic() - started
    assert "TERM" in events.read_text()
    assert 1.8 <= took < 10, took


def test_logs_tail_follow_and_exec_with_stdin_and_exit_code(core: Any, namespace: str) -> None:
    c = {"name": "talker", "image": "busybox", "command": ["sh", "-c",
         "for i in 1 2 3 4 5; do echo line $i; done; sleep 1; echo late; sleep 3600"]}
    make_pod(core, namespace, "talker", [c])
    def log_text() -> str:
        try:
            text: str = core.read_namespaced_pod_log("talker", namespace)
            return text
        except client.ApiException:  # 400 while the container is still being created
            return ""
    wait_for(lambda: "late" in log_text(), 30, "logs")
    assert core.read_namespaced_pod_log("talker", namespace, tail_lines=2) == "line 5\nlate\n"
    stamped = core.read_namespaced_pod_log("talker", namespace, timestamps=True, tail_lines=1)
    assert stamped.endswith("Z late\n")
    resp = core.read_namespaced_pod_log("talker", namespace, follow=True, tail_lines=1,
                                        _preload_content=False)
    assert resp.read(5) == b"late\n"
    resp.close()  # a followed stream never ends: drop the connection, do not reuse it

    ws = stream(core.connect_get_namespaced_pod_exec, "talker", namespace, container="talker",
                command=["sh", "-c", "read x; echo got:$x; exit 7"], stdin=True, stdout=True,
                stderr=True, tty=False, _preload_content=False)
    ws.write_stdin("hello\n")
    ws.run_forever(timeout=10)
    assert ws.read_stdout() == "got:hello\n"
    assert ws.returncode == 7


def test_port_forward_carries_100_mb_intact_through_the_api_server(core: Any, namespace: str
                                                                   ) -> None:
    size = 100 * MB
    server = ("import socket,hashlib\n"
              "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.bind(('127.0.0.1', 7000)); s.listen()\n"
              "block=bytes(range(256))*4096\n"
              "while True:\n"
              "    c,_=s.accept(); h=hashlib.sha256(); n=0\n"
              f"    while n < {size}:\n"
              "        d=c.recv(1<<20)\n"
              "        if not d: break\n"
              "        h.update(d); n+=len(d)\n"
              f"    for _ in range({size} // len(block)): c.sendall(block)\n"
              "    c.sendall(h.hexdigest().encode()); c.close()\n")
    make_pod(core, namespace, "pf", [{"name": "srv", "image": "python",
                                      "command": ["python3", "-c", server],
                                      "readinessProbe": {"exec": {"command": [
                                          "sh", "-c", "ss -ltn | grep -q :7000"]},
                                          "periodSeconds": 1}}])
    wait_for(lambda: is_ready(core, namespace, "pf"), 30, "pf Ready")
    pf = portforward(core.connect_get_namespaced_pod_portforward, "pf", namespace, ports="7000")
    sock = pf.socket(7000)
    sock.setblocking(True)
    block = bytes(range(256)) * 4096
    started = time.monotonic()
    sent = hashlib.sha256()
    for _ in range(size // len(block)):
        sock.sendall(block)
        sent.update(block)
    up = time.monotonic() - started
    got = hashlib.sha256()
    n = 0
    buf = b""
    while n < size:
        d = sock.recv(1 << 20)
        assert d, f"stream ended after {n} bytes"
        take = d[: size - n]
        got.update(take)
        n += len(take)
        buf = d[len(take):]
    down = time.monotonic() - started - up
    while len(buf) < 64:
        d = sock.recv(64)
        assert d
        buf += d
    sock.close()
    pf.close()
    assert buf[:64].decode() == sent.hexdigest()
    assert got.hexdigest() == hashlib.sha256(block * (size // len(block))).hexdigest()
    print(f"\nport-forward 100 MB: up {size / MB / up:.0f} MB/s, down {size / MB / down:.0f} MB/s")
