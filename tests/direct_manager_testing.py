"""A traffic-manager installed by the admin with a LoadBalancer Service (direct connect),
shared by tests/direct_connect and tests/raw_dial."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from durability_testing import TP
from sandbox_testing import Laptop, wait_for


def install_direct_manager(sandbox: Any, core: Any, prefix: str) -> Iterator[str]:
    """Install (as the admin, by the port-forward: nothing is direct before the install)
    into a fresh `<prefix>-xxxxxx` namespace; yields it, and removes it afterwards."""
    from kubernetes import client

    namespace = f"{prefix}-{secrets.token_hex(3)}"
    admin = Laptop(sandbox, 1)
    done = admin.run(f"{TP} connect --kubeconfig {admin.admin_kubeconfig} --manager-namespace "
                     f"{namespace} --manager-service-type LoadBalancer --manager-address "
                     "port-forward", timeout=180)
    assert done.returncode == 0, done.stderr
    assert admin.run(f"{TP} quit", timeout=30).returncode == 0
    yield namespace
    core.delete_namespace(namespace)
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
        delete(f"traffic-manager-{namespace}")


def load_balancer(core: Any, namespace: str) -> dict[str, str]:
    """The manager's LoadBalancer host, its gRPC `address` (host:8443), and the certificate
    (`ca`) and server `name` it published."""
    def address() -> str:
        svc = core.read_namespaced_service("traffic-manager-direct", namespace)
        ingress = (svc.status.load_balancer and svc.status.load_balancer.ingress) or []
        return str(ingress[0].ip) if ingress and ingress[0].ip else ""

    wait_for(address, 30, "an address for traffic-manager-direct")
    cm = core.read_namespaced_config_map("traffic-manager-ca", namespace)
    return {"host": address(), "address": f"{address()}:8443", "ca": cm.data["ca.crt"],
            "name": cm.data["server-name"]}
