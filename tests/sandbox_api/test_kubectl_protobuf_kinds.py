"""The real kubectl reading ControllerRevisions through its typed (protobuf) client:
`kubectl rollout history daemonset --revision=N` decodes the revision's RawExtension data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from apiserver_testing import Server
from kubernetes import client

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")]


def test_kubectl_rollout_history_decodes_protobuf_controller_revisions(
        server: Server, kube: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    apps = client.AppsV1Api(kube)
    template = {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    ds = apps.create_namespaced_daemon_set(namespace, {
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template}})
    # What the DaemonSet controller records: the template as a patch, owned by the set.
    apps.create_namespaced_controller_revision(namespace, {
        "metadata": {"name": "agent-1", "labels": {"app": "agent"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                          "name": "agent", "uid": ds.metadata.uid,
                                          "controller": True}]},
        "data": {"spec": {"template": {"$patch": "replace", **{
            **template, "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}}}},
        "revision": 1})
    kubectl = shutil.which("kubectl")
    assert kubectl
    proc = subprocess.run([kubectl, "--kubeconfig", str(server.kubeconfig), "--cache-dir",
                           str(tmp_path), "-n", namespace, "rollout", "history", "ds/agent",
                           "--revision=1", "-v=8"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "daemonset.apps/agent with revision #1" in proc.stdout
    assert "Image:\tbusybox:1.35" in proc.stdout
    log = proc.stderr
    listed = log[log.index("/controllerrevisions?"):]
    assert "Content-Type: application/vnd.kubernetes.protobuf" in listed
