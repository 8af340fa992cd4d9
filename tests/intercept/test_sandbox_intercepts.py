"""Intercepts end to end in the sandbox: the seed's two workflows, faults and bad input (root).

The tests of this module run in order and share state (as the seed's walkthrough does):
laptop 1 is developer A (local code answers "blue"), laptop 2 developer B ("red"); the
demo app in the cluster answers "green".
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for
from tp_cli_testing import CURL, SVC, demo_namespace, developer, one_line_error, tp

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]


def _specs(apps: Any, core: Any, namespace: str) -> dict[str, Any]:
    """Every workload's and Service's spec and annotations, to compare field by field."""
    out: dict[str, Any] = {}
    for d in apps.list_namespaced_deployment(namespace).items:
        raw = apps.api_client.sanitize_for_serialization(d)
        notes = {k: v for k, v in (raw["metadata"].get("annotations") or {}).items()
                 if k != "deployment.kubernetes.io/revision"}
        out[f"deploy/{d.metadata.name}"] = {"spec": raw["spec"], "annotations": notes}
    for s in core.list_namespaced_service(namespace).items:
        raw = core.api_client.sanitize_for_serialization(s)
        out[f"svc/{s.metadata.name}"] = {"spec": raw["spec"],
                                         "annotations": raw["metadata"].get("annotations")}
    return out


@pytest.fixture(scope="module")
def demo(sandbox: Any, apps: Any, core: Any) -> Iterator[dict[str, Any]]:
    with demo_namespace(sandbox, core, "demo") as namespace:
        yield {"namespace": namespace, "before": _specs(apps, core, namespace)}


def _rolled_out(apps: Any, namespace: str) -> bool:
    d = apps.read_namespaced_deployment(SVC, namespace)
    st = d.status
    return bool(st.observed_generation >= d.metadata.generation
                and st.updated_replicas == st.ready_replicas == st.replicas == 1)


@pytest.fixture(scope="module")
def dev_a(sandbox: Any, demo: dict[str, Any]) -> Iterator[Laptop]:
    with developer(sandbox, 1, "blue") as lap:
        yield lap


@pytest.fixture(scope="module")
def dev_b(sandbox: Any, dev_a: Laptop) -> Iterator[Laptop]:
    with developer(sandbox, 2, "red") as lap:
        yield lap


def _color(lap: Laptop, ns: str, *headers: str) -> str:
    hs = " ".join(f"-H '{h}'" for h in headers)
    return lap.run(f"{CURL} {hs} http://{SVC}.{ns}:3000/color").stdout.strip().strip('"')


def _in_cluster_color(core: Any, ns: str) -> str:
    """curl from inside the cluster (the verylargejavaservice pod), through the Service."""
    from kubernetes.stream import stream

    pod = core.list_namespaced_pod(ns, label_selector="app=verylargejavaservice").items[0]
    out = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, ns,
                 command=["curl", "-sS", "--max-time", "8", f"http://{SVC}:3000/color"],
                 stdout=True, stderr=True, stdin=False, tty=False)
    return str(out).strip().strip('"')


# --- single developer --------------------------------------------------------------------

def test_list_shows_every_workload_ready_to_intercept(dev_a: Laptop, demo: dict[str, Any]
                                                      ) -> None:
    out = tp(dev_a, f"list -n {demo['namespace']}").stdout
    assert out.splitlines() == [
        "dataprocessingservice: ready to intercept (traffic-agent not yet installed)",
        "verylargedatastore   : ready to intercept (traffic-agent not yet installed)",
        "verylargejavaservice : ready to intercept (traffic-agent not yet installed)"]


def test_list_shows_a_replicaset_without_a_deployment_with_its_kind(
        dev_a: Laptop, apps: Any, namespace: str) -> None:
    labels = {"app": "lonely"}
    apps.create_namespaced_replica_set(namespace, {
        "metadata": {"name": "lonely"},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                     {"name": "c", "image": "busybox", "command": ["sleep", "60"]}]}}}})
    out = tp(dev_a, f"list -n {namespace}").stdout
    assert out.splitlines() == [
        "lonely (ReplicaSet): not interceptable: no Service selects the pods of lonely; "
        "create a Service for it"]


def test_bad_input_fails_in_one_line_and_changes_nothing(dev_a: Laptop, demo: dict[str, Any],
                                                         apps: Any, core: Any) -> None:
    ns = demo["namespace"]
    mounts_before = set(_telfs(dev_a))  # /tmp is the machine's: other runs may use it
    one_line_error(tp(dev_a, f"intercept nosuch -n {ns} -p 3000"), "nosuch", "tp list")
    one_line_error(tp(dev_a, f"intercept {SVC} -n nosuch-ns -p 3000"), "nosuch-ns")
    one_line_error(tp(dev_a, f"intercept {SVC} -n {ns} -p 3000 --http-match alice"),
                   "KEY=REGEX")
    one_line_error(tp(dev_a, f"intercept {SVC} -n {ns} -p 3000 --http-match 'id=(a'"),
                   "regex")
    one_line_error(tp(dev_a, f"intercept {SVC} -n {ns} -p 3000:9999"), "9999",
                   "LOCALPORT:SVCPORT")
    one_line_error(tp(dev_a, f"intercept {SVC} -n {ns} -p 0"), "LOCALPORT")
    one_line_error(tp(dev_a, "list -n nosuch-ns"), "nosuch-ns")
    assert _specs(apps, core, ns) == demo["before"]
    assert "intercepted" not in tp(dev_a, f"list -n {ns}").stdout
    assert set(_telfs(dev_a)) <= mounts_before


def _telfs(lap: Laptop) -> list[str]:
    return [p for p in lap.run("ls -d /tmp/telfs-* 2>/dev/null").stdout.split() if p]


def test_a_global_intercept_routes_cluster_and_laptop_traffic_to_local_code(
        dev_a: Laptop, demo: dict[str, Any], core: Any, apps: Any, tmp_path: Any) -> None:
    ns = demo["namespace"]
    app_before = demo["before"][f"deploy/{SVC}"]["spec"]["template"]["spec"]["containers"][0]
    assert app_before["readinessProbe"]["httpGet"]["port"] == "http"  # the real manifest
    assert _color(dev_a, ns) == "green"
    env_file, env_json = tmp_path / "a.env", tmp_path / "a.json"
    started = time.monotonic()
    proc = tp(dev_a, f"intercept {SVC} -n {ns} -p 3000 --env-file {env_file} "
                     f"--env-json {env_json}")
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"Using Deployment {SVC}"
    assert lines[1] == f"    Intercept name    : {SVC}-{ns}"
    assert lines[2] == "    State             : ACTIVE"
    assert lines[3] == "    Workload kind     : Deployment"
    assert lines[4] == "    Destination       : 127.0.0.1:3000"
    assert re.fullmatch(r"    Volume Mount Point: /tmp/telfs-\S+", lines[5])
    assert lines[6] == "    Intercepting      : all TCP connections"
    assert seconds < 30, seconds
    # ACTIVE means the injected pod became Ready: its probe followed the port's new name
    app = apps.read_namespaced_deployment(SVC, ns).spec.template.spec.containers[0]
    assert app.readiness_probe.http_get.port == "tm-http"
    assert _color(dev_a, ns) == "blue"
    assert _in_cluster_color(core, ns) == "blue"
    listing = tp(dev_a, f"list -n {ns}").stdout.splitlines()
    assert listing[:6] == [f"{SVC}: intercepted",
                           f"    Intercept name: {SVC}-{ns}",
                           "    State         : ACTIVE",
                           "    Workload kind : Deployment",
                           "    Destination   : 127.0.0.1:3000",
                           "    Intercepting  : all TCP connections"]
    # the container's environment, the kubelet's references resolved
    assert "COLOR=green" in env_file.read_text().splitlines()
    assert json.loads(env_json.read_text())["COLOR"] == "green"
    assert lines[5].split(": ", 1)[1] in _telfs(dev_a)


def test_a_second_global_intercept_and_a_duplicate_name_are_refused(
        dev_a: Laptop, dev_b: Laptop, demo: dict[str, Any]) -> None:
    ns = demo["namespace"]
    one_line_error(tp(dev_b, f"intercept {SVC} -n {ns} -p 3000"), "global")
    one_line_error(tp(dev_a, f"intercept {SVC} -n {ns} -p 3000"), f"{SVC}-{ns}",
                   "tp leave")
    assert _color(dev_b, ns) == "blue"  # A's intercept untouched
    assert "intercepted" in tp(dev_b, f"list -n {ns}").stdout  # B sees A's intercept


def test_after_leave_the_app_answers_again_and_the_mount_point_goes(
        dev_a: Laptop, demo: dict[str, Any]) -> None:
    ns = demo["namespace"]
    status = json.loads(tp(dev_a, "status --format json").stdout)
    mounts = [ic["mount_point"] for ic in status["intercepts"] if ic["mount_point"]]
    assert mounts and set(mounts) <= set(_telfs(dev_a))
    left = tp(dev_a, f"leave {SVC}-{ns}")
    assert left.returncode == 0 and f"Left intercept {SVC}-{ns}" in left.stdout
    assert _color(dev_a, ns) == "green"
    assert not set(mounts) & set(_telfs(dev_a))
    assert (f"{SVC}: ready to intercept (traffic-agent already installed)"
            in tp(dev_a, f"list -n {ns}").stdout)
    one_line_error(tp(dev_a, f"leave {SVC}-{ns}"), "no intercept")


def test_a_local_port_that_is_down_answers_502_with_the_reason(
        dev_a: Laptop, demo: dict[str, Any]) -> None:
    ns = demo["namespace"]
    made = tp(dev_a, f"intercept {SVC} -n {ns} -p 3999 --name down --mount false")
    assert made.returncode == 0, made.stderr
    assert "Volume Mount Point" not in made.stdout
    try:
        started = time.monotonic()
        out = dev_a.run(f"{CURL} -w '\\n%{{http_code}}' http://{SVC}.{ns}:3000/color").stdout
        assert time.monotonic() - started < 8
        body, _, code = out.rpartition("\n")
        assert code == "502", out
        assert "3999" in body, body
    finally:
        tp(dev_a, "leave down")
    assert _color(dev_a, ns) == "green"


# --- team workflow --------------------------------------------------------------------------

def test_personal_intercepts_of_two_developers_coexist(
        dev_a: Laptop, dev_b: Laptop, demo: dict[str, Any], core: Any) -> None:
    ns = demo["namespace"]
    a = tp(dev_a, f"intercept {SVC} -n {ns} -p 3000 --http-match blog-demo-id=alice "
                  "--mount false")
    assert a.returncode == 0, a.stderr
    assert a.stdout.splitlines()[-2:] == [
        "    Intercepting  : HTTP requests that match all of:",
        '      header("blog-demo-id") ~= regexp("alice")']
    b = tp(dev_b, f"intercept {SVC} -n {ns} -p 3000 --http-match=blog-demo-id=bob "
                  "--mount false")
    assert b.returncode == 0, b.stderr
    for lap in (dev_a, dev_b):
        assert _color(lap, ns, "blog-demo-id: alice") == "blue"
        assert _color(lap, ns, "blog-demo-id: bob") == "red"
        assert _color(lap, ns) == "green"
        assert _color(lap, ns, "blog-demo-id: carol") == "green"
    assert _in_cluster_color(core, ns) == "green"
    listing = tp(dev_a, f"list -n {ns}").stdout
    assert listing.count("Intercept name") == 2 and 'regexp("bob")' in listing


LATENCY = r"""
import http.client, json, statistics, sys, time
c = http.client.HTTPConnection(sys.argv[1], 3000, timeout=20)
out = {}
for who in ("alice", ""):
    times, colors = [], set()
    for i in range(45):
        t = time.perf_counter()
        c.request("GET", "/color", headers={"blog-demo-id": who} if who else {})
        colors.add(json.loads(c.getresponse().read()))
        if i >= 5:  # warm-up excluded
            times.append((time.perf_counter() - t) * 1000)
    out[who or "unmatched"] = {"p50_ms": statistics.median(times), "colors": sorted(colors)}
print(json.dumps(out))
"""


def test_a_matched_request_costs_a_few_milliseconds_not_a_delayed_ack(
        dev_a: Laptop, demo: dict[str, Any], core: Any) -> None:
    """Per matched request the agent opens a tunnel that the daemon accepts through the
    port-forward; a socket without TCP_NODELAY on that path cost ~40 ms each (issue 5)."""
    from kubernetes.stream import stream

    ns = demo["namespace"]
    pod = core.list_namespaced_pod(ns, label_selector="app=verylargejavaservice").items[0]
    raw = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, ns,
                 command=["python3", "-c", LATENCY, SVC], stdout=True, stderr=True,
                 stdin=False, tty=False, _request_timeout=60)
    got = json.loads(str(raw).strip().splitlines()[-1])
    assert got["alice"]["colors"] == ["blue"] and got["unmatched"]["colors"] == ["green"]
    assert got["alice"]["p50_ms"] < 20, got  # ~5-7 ms on a busy 2-core machine
    assert got["unmatched"]["p50_ms"] < 10, got


MIXED = r"""
import http.client, json, sys, concurrent.futures as cf
host, n = sys.argv[1], int(sys.argv[2])
want = {"alice": "blue", "bob": "red", "": "green", "carol": "green"}
kinds = list(want)
def one(i):
    k = kinds[i % 4]
    c = http.client.HTTPConnection(host, 3000, timeout=20)
    c.request("GET", "/color", headers={"blog-demo-id": k} if k else {})
    got = json.loads(c.getresponse().read())
    c.close()
    return got == want[k]
# keep-alive: one connection, every kind in turn
c = http.client.HTTPConnection(host, 3000, timeout=20)
keep = 0
for i in range(40):
    k = kinds[i % 4]
    c.request("GET", "/color", headers={"blog-demo-id": k} if k else {})
    keep += json.loads(c.getresponse().read()) != want[k]
with cf.ThreadPoolExecutor(50) as pool:
    fresh = sum(not ok for ok in pool.map(one, range(n)))
print(json.dumps({"keepalive_misrouted": keep, "concurrent_misrouted": fresh}))
"""


def test_mixed_requests_on_fresh_keepalive_and_200_concurrent_connections_route_exactly(
        dev_a: Laptop, dev_b: Laptop, demo: dict[str, Any]) -> None:
    ns = demo["namespace"]
    out = dev_a.run([sys.executable, "-c", MIXED, f"{SVC}.{ns}", "200"], timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"keepalive_misrouted": 0, "concurrent_misrouted": 0}


def test_regex_and_multi_header_matches_must_all_hold(dev_b: Laptop, demo: dict[str, Any]
                                                      ) -> None:
    ns = demo["namespace"]
    made = tp(dev_b, f"intercept {SVC} -n {ns} -p 3000 --name both --mount false "
                     "--http-match 'blog-demo-id=^d[aeiou]ve$' --http-match x-team=red")
    assert made.returncode == 0, made.stderr
    try:
        assert _color(dev_b, ns, "blog-demo-id: dave", "x-team: red") == "red"
        assert _color(dev_b, ns, "blog-demo-id: dive", "x-team: red-ish") == "red"
        assert _color(dev_b, ns, "blog-demo-id: dave") == "green"
        assert _color(dev_b, ns, "blog-demo-id: daves", "x-team: red") == "green"
    finally:
        tp(dev_b, "leave both")


def test_traffic_shows_the_captured_exchanges_as_a_table(dev_b: Laptop, demo: dict[str, Any]
                                                         ) -> None:
    ns = demo["namespace"]
    name = f"{SVC}-{ns}"
    assert _color(dev_b, ns, "blog-demo-id: bob") == "red"

    def rows() -> str:
        out = tp(dev_b, f"traffic {name}")
        return out.stdout if out.returncode == 0 and "/color" in out.stdout else ""

    table = wait_for(rows, 20, "traffic rows of bob's intercept")
    assert "GET" in table and "200" in table


def test_a_killed_daemon_loses_its_intercepts_after_the_ttl(
        dev_a: Laptop, dev_b: Laptop, demo: dict[str, Any]) -> None:
    ns = demo["namespace"]
    status = tp(dev_a, "status").stdout
    pid = re.search(r"PID\s*: (\d+)", status)
    assert pid, status
    dev_a.run(f"kill -9 {pid.group(1)}")
    assert _color(dev_b, ns, "blog-demo-id: bob") == "red"
    wait_for(lambda: _color(dev_b, ns, "blog-demo-id: alice") == "green", 60,
             "alice's requests to return to the app after A's session expired")
    assert _color(dev_b, ns, "blog-demo-id: bob") == "red"
    again = tp(dev_a, "connect", timeout=120)  # the next daemon cleans up after the old one
    assert again.returncode == 0, again.stderr


def test_uninstall_everything_restores_every_workload_exactly(
        sandbox: Any, dev_b: Laptop, demo: dict[str, Any], apps: Any, core: Any) -> None:
    ns = demo["namespace"]
    # removing the traffic-manager is the admin's: bob's laptop reconnects as the admin
    assert tp(dev_b, "quit", timeout=60).returncode == 0
    admin = tp(dev_b, f"connect --kubeconfig {dev_b.admin_kubeconfig}", timeout=180)
    assert admin.returncode == 0, admin.stderr
    try:
        out = tp(dev_b, "uninstall --everything", timeout=240)
        assert out.returncode == 0, out.stderr
        assert f"Deployment/{SVC}.{ns}" in out.stdout and "traffic-manager" in out.stdout
        wait_for(lambda: _rolled_out(apps, ns), 60, "the restored rollout")
        assert _specs(apps, core, ns) == demo["before"]
        assert not apps.list_namespaced_deployment(
            "ambassador", label_selector="app=traffic-manager").items
    finally:
        sandbox.install_manager()  # for the developers of the next tests
