"""CustomResourceDefinitions with the real, pinned kubectl: a CRD's resources are served
as soon as it is created, printed with its `additionalPrinterColumns`, validated by its
schema with a real server's 422, and gone with the CRD."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sandbox_testing import wait_for

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: crontabs.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}}
  versions:
    - name: v1
      served: true
      storage: true
      subresources:
        status: {{}}
        scale: {{specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}}
      additionalPrinterColumns:
        - {{name: Spec, type: string, jsonPath: .spec.cronSpec}}
        - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
        - {{name: Age, type: date, jsonPath: .metadata.creationTimestamp}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [cronSpec]
              properties:
                cronSpec:
                  type: string
                  pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){{4}}$'
                image: {{type: string}}
                replicas: {{type: integer, minimum: 1, maximum: 10, default: 1}}
            status:
              type: object
              properties:
                ready: {{type: boolean}}
                replicas: {{type: integer}}
"""

CRONTAB = """\
apiVersion: {group}/v1
kind: CronTab
metadata: {{name: {name}}}
spec: {spec}
"""


@pytest.fixture
def group() -> str:
    return f"t{uuid.uuid4().hex[:8]}.example.com"


@pytest.fixture
def kubectl(sandbox: Any, namespace: str, group: str) -> Iterator[Kubectl]:
    def run(*args: str, check: bool = True, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", "--kubeconfig", str(sandbox.kubeconfig),
                               "-n", namespace, *args], input=stdin,
                              capture_output=True, text=True, timeout=60, check=False)
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    run("apply", "-f", "-", stdin=CRD.format(group=group))
    yield run
    run("delete", "crd", f"crontabs.{group}", "--ignore-not-found", check=False)


def crontab(group: str, name: str, spec: dict[str, Any]) -> str:
    return CRONTAB.format(group=group, name=name, spec=json.dumps(spec))


def test_a_crd_is_established_and_its_objects_print_with_their_columns(
        kubectl: Kubectl, group: str) -> None:
    kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}", "--timeout=10s")
    kubectl("apply", "-f", "-", stdin=crontab(group, "nightly", {
        "cronSpec": "0 3 * * *", "image": "backup", "unknownField": 1}))
    lines = kubectl("get", f"crontabs.{group}").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    row = lines[1].split()
    assert row[0] == "nightly" and row[1:6] == ["0", "3", "*", "*", "*"]
    assert row[6] == "1"  # the schema's default
    assert row[7].endswith("s")  # an age, not a timestamp
    obj = json.loads(kubectl("get", f"crontabs.{group}", "nightly", "-o", "json").stdout)
    assert "unknownField" not in obj["spec"]  # pruned, as a structural schema does
    assert obj["spec"]["replicas"] == 1
    resources = kubectl("api-resources", f"--api-group={group}").stdout
    assert "crontabs" in resources and "CronTab" in resources and "ct" in resources
    kubectl("patch", f"crontabs.{group}", "nightly", "--type=merge",
            "-p", '{"spec": {"replicas": 3}}')
    assert kubectl("get", f"crontabs.{group}", "nightly", "-o",
                   "jsonpath={.spec.replicas}").stdout == "3"
    kubectl("scale", f"crontabs.{group}/nightly", "--replicas=5")
    assert kubectl("get", f"crontabs.{group}", "nightly", "-o",
                   "jsonpath={.spec.replicas}").stdout == "5"


def test_an_object_that_breaks_the_schema_gets_a_real_servers_422(
        kubectl: Kubectl, group: str) -> None:
    out = kubectl("apply", "-f", "-", check=False, stdin=crontab(group, "bad", {
        "cronSpec": "whenever", "replicas": "two"}))
    assert out.returncode != 0
    assert 'The CronTab "bad" is invalid' in out.stderr
    assert ('spec.replicas: Invalid value: "string": spec.replicas in body must be of type '
            'integer: "two"') in out.stderr
    assert 'spec.cronSpec: Invalid value: "whenever": spec.cronSpec in body should match' \
        in out.stderr
    out = kubectl("apply", "-f", "-", check=False, stdin=crontab(group, "bad", {
        "cronSpec": "* * * * *", "replicas": 11}))
    assert "spec.replicas in body should be less than or equal to 10" in out.stderr
    out = kubectl("apply", "-f", "-", check=False, stdin=crontab(group, "bad", {}))
    assert "spec.cronSpec: Required value" in out.stderr


def test_deleting_the_crd_deletes_its_objects_and_stops_serving_them(
        kubectl: Kubectl, group: str, sandbox: Any, namespace: str) -> None:
    kubectl("apply", "-f", "-", stdin=crontab(group, "one", {"cronSpec": "* * * * *"}))
    kubectl("delete", "crd", f"crontabs.{group}")
    raw = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    out = wait_for(lambda: (r := kubectl("get", "--raw", raw, check=False)).returncode
                   and r, 10, "the resource gone")
    assert "the server could not find the requested resource" in out.stderr
