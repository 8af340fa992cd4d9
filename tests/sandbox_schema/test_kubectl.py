"""Real kubectl against a stub server that serves our /openapi/v3 documents."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from stub_server import StubServer

KUBECTL = shutil.which("kubectl")
pytestmark = [pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed"),
              pytest.mark.timeout(120)]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        env:
        - {name: A, value: "1"}
        ports:
        - {containerPort: 80, name: http}
"""


class Kubectl:
    def __init__(self, server: StubServer, kubeconfig: Path, tmp: Path) -> None:
        self.server = server
        self.kubeconfig = kubeconfig
        self.tmp = tmp

    async def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.tmp / 'cache'}",
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), timeout=60)
        return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def kubectl(tmp_path: Path) -> AsyncIterator[Kubectl]:
    server = StubServer()
    runner = web.AppRunner(server.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "current-context": "stub",
        "clusters": [{"name": "stub", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "stub", "user": {"token": "t"}}],
        "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub",
                                                  "namespace": "default"}}],
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    try:
        yield Kubectl(server, kubeconfig, tmp_path)
    finally:
        await runner.cleanup()


async def test_kubectl_explain_reads_the_v3_document(kubectl: Kubectl) -> None:
    code, out, err = await kubectl("explain", "deployment.spec.template.spec.containers")
    assert code == 0, err
    assert "KIND:       Deployment" in out
    assert "imagePullPolicy\t<string>" in out
    assert any(r.startswith("GET /openapi/v3/apis/apps/v1?hash=") for r in kubectl.server.requests)


async def test_kubectl_dry_run_apply_sends_strict_field_validation(kubectl: Kubectl) -> None:
    code, out, err = await kubectl("apply", "--dry-run=server", "-f", "-", stdin=DEPLOYMENT)
    assert code == 0, err
    assert "deployment.apps/web created (server dry run)" in out
    posts = [r for r in kubectl.server.requests if r.startswith("POST ")]
    assert posts and "fieldValidation=Strict" in posts[0] and "dryRun=All" in posts[0]


async def test_kubectl_apply_reports_strict_unknown_fields(kubectl: Kubectl) -> None:
    bad = DEPLOYMENT.replace("image: nginx:1.27", "image: nginx:1.27\n        imagee: x")
    code, _out, err = await kubectl("apply", "--dry-run=server", "-f", "-", stdin=bad)
    assert code != 0
    assert 'strict decoding error: unknown field "spec.template.spec.containers[0].imagee"' in err


async def test_kubectl_apply_twice_patches_with_the_schema_merge_keys(kubectl: Kubectl) -> None:
    code, out, err = await kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    assert code == 0, err
    changed = DEPLOYMENT.replace(
        '        - {name: A, value: "1"}',
        '        - {name: A, value: "2"}\n        - {name: B, value: "3"}')
    code, out, err = await kubectl("apply", "-f", "-", stdin=changed)
    assert code == 0, err
    assert "deployment.apps/web configured" in out
    [(content_type, sent)] = kubectl.server.patches
    assert content_type == "application/strategic-merge-patch+json"
    # kubectl computed the patch from our schema's merge keys: env merged by name.
    sent_containers = sent["spec"]["template"]["spec"]["containers"]
    assert sent_containers[0]["name"] == "app"
    assert "$setElementOrder/env" in sent_containers[0]
    stored = kubectl.server.objects[("deployments", "default", "web")]
    container = stored["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]
    assert container["imagePullPolicy"] == "IfNotPresent"


async def test_kubectl_shows_invalid_causes(kubectl: Kubectl) -> None:
    bad = DEPLOYMENT.replace("labels: {app: web}", "labels: {app: other}")
    code, _out, err = await kubectl("apply", "--dry-run=server", "-f", "-", stdin=bad)
    assert code != 0
    assert 'The Deployment "web" is invalid' in err
    assert "`selector` does not match template `labels`" in err
