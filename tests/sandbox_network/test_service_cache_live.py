"""The service cache's watches and the API adapter against a running sandbox."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sandbox_testing import SandboxHandle, wait_for
from tp_protocol.settings import get_settings
from tp_sandbox.node.dns import kube_dns_objects
from tp_sandbox.node.kubeapi import KubeApi
from tp_sandbox.node.proxy import KINDS, Reflector, ServiceCache

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


def test_a_watch_sees_a_new_service_and_its_removal_within_a_second(
        sandbox: SandboxHandle, kube: Any, core: Any, namespace: str) -> None:
    cache = ServiceCache()
    reflectors = [Reflector(KubeApi(kube), kind, cache, "test") for kind in KINDS]
    for r in reflectors:
        r.start()
    try:
        assert cache.synced.wait(10)

        def names() -> set[str]:
            return {s.name for s in cache.snapshot()[1] if s.namespace == namespace}

        core.create_namespaced_service(namespace, {
            "metadata": {"name": "watched"}, "spec": {"ports": [{"port": 80}]}})
        wait_for(lambda: "watched" in names(), 1.0, "the new Service in the cache")
        core.delete_namespaced_service("watched", namespace, _preload_content=False)
        wait_for(lambda: "watched" not in names(), 1.0, "the Service to leave the cache")
    finally:
        started = time.monotonic()
        for r in reversed(reflectors):
            r.stop()
        assert time.monotonic() - started < 2  # stop cuts the open watches
        assert not any(r._thread.is_alive() for r in reflectors)


def test_kube_dns_is_in_place_and_creating_it_again_is_a_no_op(
        sandbox: SandboxHandle, kube: Any, core: Any) -> None:
    if not sandbox.has_node:
        pytest.skip("the sandbox runs without a node")
    svc = wait_for(lambda: next((s for s in core.list_namespaced_service("kube-system").items
                                 if s.metadata.name == "kube-dns"), None), 30, "kube-dns")
    assert svc.spec.cluster_ip == get_settings().sandbox.dns_service_ip
    assert sorted((p.name, p.protocol) for p in svc.spec.ports) == [("dns", "UDP"),
                                                                   ("dns-tcp", "TCP")]
    api = KubeApi(kube)
    for kind, body in kube_dns_objects(svc.spec.cluster_ip):
        assert api.create(kind, "kube-system", body) is False
