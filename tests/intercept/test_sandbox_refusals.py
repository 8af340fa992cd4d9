"""Intercepts the manager refuses, end to end in the sandbox (root): each refusal is one
line that says what to do, comes at once, and leaves nothing behind (the workloads'
specs and annotations as before, no intercept, no mount point on the laptop).

Laptop 1 is connected once for the module; each test makes its own workloads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

TP = f"{sys.executable} -m tp_jupyter.cli"
MANAGER = "traffic-manager"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The daemon's TMPDIR: where it makes mount points, apart from other tests' ones."""
    return tmp_path_factory.mktemp("tp-daemon-tmp")


@pytest.fixture(scope="module")
def dev(sandbox: Any, scratch: Path) -> Iterator[Laptop]:
    lap = Laptop(sandbox, 1)
    connected = lap.run(f"{TP} connect", timeout=180, env={"TMPDIR": str(scratch)})
    assert connected.returncode == 0, connected.stderr
    yield lap
    lap.run(f"{TP} quit", timeout=30)


@pytest.fixture(scope="module")
def manager_ns(dev: Laptop) -> str:
    return str(_status(dev)["connection"]["manager_namespace"])


def _tp(lap: Laptop, args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed command (progress lines may come before it)."""
    assert proc.returncode != 0, proc.stdout
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("tp: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
    return errors[0]


def _specs(apps: Any, core: Any, namespace: str) -> dict[str, Any]:
    """Every Deployment's and Service's spec and annotations, to compare field by field."""
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


def _status(lap: Laptop) -> dict[str, Any]:
    status = _tp(lap, "status --format json", timeout=30)
    assert status.returncode == 0, status.stderr
    document: dict[str, Any] = json.loads(status.stdout)
    return document


def _nothing_left_on(lap: Laptop, scratch: Path) -> None:
    """Still connected, no intercept in the daemon and no mount point made for one."""
    status = _status(lap)
    assert status["connected"] and status["intercepts"] == [], status
    assert list(scratch.glob("telfs-*")) == []


def _web(apps: Any, core: Any, namespace: str, replicas: int) -> None:
    """Deployment + Service `web` (a Python HTTP server on 8080, Service port 80)."""
    labels = {"app": "web"}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "web", "annotations": {"owner": "team-blue"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                     "name": "app", "image": "python",
                     "command": ["python3", "-m", "http.server", "8080"],
                     "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": labels,
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})


def test_the_traffic_manager_is_listed_as_not_interceptable_with_the_reason(
        dev: Laptop, manager_ns: str) -> None:
    listed = _tp(dev, f"list -n {manager_ns}")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"{MANAGER}: not interceptable: it is the traffic-manager, which every client's "
        "connection goes through; intercept an application workload"]


def test_intercepting_the_traffic_manager_is_refused_and_it_keeps_serving(
        dev: Laptop, scratch: Path, manager_ns: str, apps: Any, core: Any) -> None:
    before = _specs(apps, core, manager_ns)
    pods = {p.metadata.uid for p in core.list_namespaced_pod(manager_ns).items}
    assert _error_line(_tp(dev, f"intercept {MANAGER} -n {manager_ns} -p 3000")) == (
        f"tp: deployment {MANAGER}.{manager_ns} is not interceptable: it is the "
        "traffic-manager, which every client's connection goes through; intercept an "
        "application workload")
    # any other name in the manager's namespace: refused before the cluster is read
    assert _error_line(_tp(dev, f"intercept helper -n {manager_ns} -p 3000")) == (
        f"tp: deployment helper.{manager_ns} is not interceptable: namespace {manager_ns} "
        "is the traffic-manager's; intercept workloads in your application's namespaces")
    assert _specs(apps, core, manager_ns) == before
    assert {p.metadata.uid for p in core.list_namespaced_pod(manager_ns).items} == pods
    assert _tp(dev, f"list -n {manager_ns}").returncode == 0  # still connected, still serving
    _nothing_left_on(dev, scratch)


def test_a_workload_scaled_to_zero_is_refused_at_once_with_the_scale_hint(
        dev: Laptop, scratch: Path, apps: Any, core: Any, namespace: str) -> None:
    _web(apps, core, namespace, replicas=0)
    hint = (f"it has 0 replicas, so no pod can take the traffic-agent; scale it up: "
            f"kubectl scale deployment/web -n {namespace} --replicas=1")
    assert _tp(dev, f"list -n {namespace}").stdout.splitlines() == [
        f"web: not interceptable: {hint}"]
    before = _specs(apps, core, namespace)
    started = time.monotonic()
    refused = _tp(dev, f"intercept web -n {namespace} -p 3000")
    seconds = time.monotonic() - started
    assert _error_line(refused) == f"tp: deployment web.{namespace} is not interceptable: {hint}"
    assert seconds < 20, f"refused only after {seconds:.1f}s"  # not the 60 s activate timeout
    assert _specs(apps, core, namespace) == before
    _nothing_left_on(dev, scratch)


def test_a_missing_namespace_is_named_as_such(dev: Laptop, scratch: Path) -> None:
    message = ("tp: namespace nosuch-ns not found; check the name with "
               "`kubectl get namespaces`")
    assert _error_line(_tp(dev, "intercept web -n nosuch-ns -p 3000")) == message
    assert _error_line(_tp(dev, "list -n nosuch-ns")) == message
    _nothing_left_on(dev, scratch)


def test_a_header_name_that_is_not_an_http_token_is_refused_before_the_cluster_is_touched(
        dev: Laptop, scratch: Path, apps: Any, core: Any, namespace: str) -> None:
    _web(apps, core, namespace, replicas=1)
    before = _specs(apps, core, namespace)
    refused = _tp(dev, f"intercept web -n {namespace} -p 3000 --http-match 'x dev=alice'")
    assert _error_line(refused) == (
        "tp: --http-match header name 'x dev' is not a valid HTTP header name (letters, "
        "digits and !#$%&'*+-.^_`|~ only); fix the KEY of KEY=REGEX")
    assert _specs(apps, core, namespace) == before
    _nothing_left_on(dev, scratch)


def test_traffic_of_an_unknown_intercept_name_is_an_error_naming_the_known_ones(
        dev: Laptop, scratch: Path, apps: Any, core: Any, namespace: str) -> None:
    assert _error_line(_tp(dev, "traffic nosuch")) == (
        "tp: no intercept named 'nosuch'; there is none yet: start one with `tp intercept "
        "WORKLOAD -p PORT`")
    _web(apps, core, namespace, replicas=1)
    wait_for(lambda: "ready to intercept" in _tp(dev, f"list -n {namespace}").stdout, 60,
             "web to be listed as ready")
    name = f"web-{namespace}"
    made = _tp(dev, f"intercept web -n {namespace} -p 3000", timeout=180)
    assert made.returncode == 0, made.stderr
    # the daemon makes its mount points in its TMPDIR: the checks above look there
    assert f"Volume Mount Point: {scratch}/telfs-" in made.stdout, made.stdout
    try:
        assert _error_line(_tp(dev, "traffic nosuch")) == (
            f"tp: no intercept named 'nosuch'; the known ones are {name}")
        shown = _tp(dev, f"traffic {name}")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip() == "No traffic captured yet"
    finally:
        left = _tp(dev, f"leave {name}")
        assert left.returncode == 0, left.stderr
    _nothing_left_on(dev, scratch)
