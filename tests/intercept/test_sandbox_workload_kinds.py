"""StatefulSets and bare ReplicaSets are listed and intercepted like Deployments, and given
back exactly (root, sandbox). The tests of this module run in order on one namespace.

Laptop 1 runs the demo app locally answering "blue"; the cluster's pods answer "green".
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for
from tp_cli_testing import CURL, TP, developer, one_line_error

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

IMAGE = "ghcr.io/tp-jupyter/demo-dataprocessingservice:0.1.0"


def _template(app: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{
        "name": "app", "image": IMAGE, "env": [{"name": "COLOR", "value": "green"},
                                               {"name": "PORT", "value": "3000"}],
        "ports": [{"name": "http", "containerPort": 3000}]}]}}


def _service(app: str) -> dict[str, Any]:
    return {"metadata": {"name": app}, "spec": {"selector": {"app": app}, "ports": [
        {"name": "http", "port": 3000, "targetPort": "http"}]}}


def _specs(apps: Any, core: Any, ns: str) -> dict[str, Any]:
    """Every StatefulSet's, ReplicaSet's and Service's spec and annotations."""
    out: dict[str, Any] = {}
    for kind, items in (("sts", apps.list_namespaced_stateful_set(ns).items),
                        ("rs", apps.list_namespaced_replica_set(ns).items),
                        ("svc", core.list_namespaced_service(ns).items)):
        for obj in items:
            raw = apps.api_client.sanitize_for_serialization(obj)
            out[f"{kind}/{obj.metadata.name}"] = {
                "spec": raw["spec"], "annotations": raw["metadata"].get("annotations")}
    return out


@pytest.fixture(scope="module")
def ns(sandbox: Any, core: Any, apps: Any) -> Iterator[str]:
    name = f"kinds-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name}})
    apps.create_namespaced_stateful_set(name, {"metadata": {"name": "db"}, "spec": {
        "replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
        "template": _template("db")}})
    core.create_namespaced_service(name, _service("db"))
    apps.create_namespaced_replica_set(name, {"metadata": {"name": "cache"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "cache"}},
        "template": _template("cache")}})
    core.create_namespaced_service(name, _service("cache"))
    apps.create_namespaced_stateful_set(name, {"metadata": {"name": "lonely"}, "spec": {
        "replicas": 1, "serviceName": "lonely", "selector": {"matchLabels": {"app": "lonely"}},
        "template": _template("lonely")}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def before(ns: str, apps: Any, core: Any) -> dict[str, Any]:
    def ready() -> bool:
        sts = apps.read_namespaced_stateful_set("db", ns).status
        rs = apps.read_namespaced_replica_set("cache", ns).status
        return (sts.ready_replicas or 0) == 2 and (rs.ready_replicas or 0) == 1
    wait_for(ready, 60, "the StatefulSet and ReplicaSet pods")
    return _specs(apps, core, ns)


@pytest.fixture(scope="module")
def lap(sandbox: Any, before: dict[str, Any]) -> Iterator[Laptop]:
    with developer(sandbox, 1, "blue") as lap:
        yield lap


def _tp(lap: Laptop, args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


def _color(lap: Laptop, url: str, *headers: str) -> str:
    hs = " ".join(f"-H '{h}'" for h in headers)
    return lap.run(f"{CURL} {hs} {url}").stdout.strip().strip('"')


def test_list_shows_each_workload_with_its_kind(lap: Laptop, ns: str) -> None:
    out = _tp(lap, f"list -n {ns}").stdout.splitlines()
    assert out == [
        "cache (ReplicaSet)  : ready to intercept (traffic-agent not yet installed)",
        "db (StatefulSet)    : ready to intercept (traffic-agent not yet installed)",
        "lonely (StatefulSet): not interceptable: no Service selects the pods of lonely; "
        "create a Service for it"]


def test_a_statefulset_without_a_service_is_refused_in_one_line(
        lap: Laptop, ns: str, apps: Any, core: Any, before: dict[str, Any]) -> None:
    one_line_error(_tp(lap, f"intercept lonely -n {ns} -p 3000"), "lonely",
                   "no Service selects its pods", "create a Service")
    assert _specs(apps, core, ns) == before


def test_a_statefulset_with_two_replicas_is_intercepted_globally(lap: Laptop, ns: str) -> None:
    url = f"http://db.{ns}:3000/color"
    assert _color(lap, url) == "green"
    made = _tp(lap, f"intercept db -n {ns} -p 3000 --name db-all --mount false")
    assert made.returncode == 0, made.stderr
    assert "Using StatefulSet db" in made.stdout
    assert re.search(r"Workload kind *: StatefulSet", made.stdout), made.stdout
    # every request, whichever of the two pods it reaches
    assert [_color(lap, url) for _ in range(6)] == ["blue"] * 6
    # `tp version` lists both agents of the StatefulSet (one version: both are this one)
    version = json.loads(_tp(lap, "version --format json").stdout)
    assert {(a["workload"], a["namespace"]) for a in version["agents"]} == {("db", ns)}
    assert {a["version"] for a in version["agents"]} == {version["client"]["version"]}
    assert "Traffic Agent db." in _tp(lap, "version").stdout
    assert _tp(lap, "leave db-all").returncode == 0
    assert wait_for(lambda: _color(lap, url) == "green", 20, "the cluster's app again")


def test_a_statefulset_is_intercepted_personally(lap: Laptop, ns: str) -> None:
    url = f"http://db.{ns}:3000/color"
    made = _tp(lap, f"intercept db -n {ns} -p 3000 --name db-mine --mount false "
                    "--http-match x-dev=me")
    assert made.returncode == 0, made.stderr
    assert [_color(lap, url, "x-dev: me") for _ in range(4)] == ["blue"] * 4
    assert [_color(lap, url) for _ in range(4)] == ["green"] * 4
    assert _tp(lap, "leave db-mine").returncode == 0


def test_a_bare_replicaset_is_intercepted_and_its_pods_take_the_agent(
        lap: Laptop, ns: str, core: Any) -> None:
    url = f"http://cache.{ns}:3000/color"
    made = _tp(lap, f"intercept cache -n {ns} -p 3000 --name cache-all --mount false")
    assert made.returncode == 0, made.stderr
    assert "Using ReplicaSet cache" in made.stdout
    assert _color(lap, url) == "blue"
    pods = core.list_namespaced_pod(ns, label_selector="app=cache").items
    assert any("traffic-agent" in [c.name for c in p.spec.containers] for p in pods)
    assert _tp(lap, "leave cache-all").returncode == 0


def test_uninstall_gives_every_kind_back_field_by_field(
        lap: Laptop, ns: str, apps: Any, core: Any, before: dict[str, Any]) -> None:
    out = _tp(lap, f"uninstall --all-agents -n {ns}")
    assert out.returncode == 0, out.stderr
    assert "StatefulSet/db" in out.stdout and "ReplicaSet/cache" in out.stdout
    after = _specs(apps, core, ns)
    assert after.keys() == before.keys()
    for key, spec in before.items():
        assert after[key] == spec, key
    # the ReplicaSet's pods were made again without the agent
    def plain() -> bool:
        pods = [p for p in core.list_namespaced_pod(ns, label_selector="app=cache").items
                if p.metadata.deletion_timestamp is None]
        return bool(pods) and all(
            [c.name for c in p.spec.containers] == ["app"] for p in pods)
    wait_for(plain, 60, "the ReplicaSet's pods without the agent")
    assert wait_for(lambda: _color(lap, f"http://cache.{ns}:3000/color") == "green", 30,
                    "the cluster's cache app")
