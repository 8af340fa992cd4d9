"""The install objects: valid Kubernetes, least privilege, the right image and ports."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from tp_cluster.manifests import (
    DIRECT_PORT,
    GRPC_PORT,
    RAW_DIAL_PORT,
    ManifestError,
    manager_image,
    manager_objects,
)
from tp_protocol import VERSION


def test_every_object_is_valid_for_kubernetes_1_37() -> None:
    for obj in manager_objects("ambassador"):
        kubernetes_validate.validate(obj, "1.37", strict=True)


def test_the_install_is_namespace_account_roles_bindings_deployment_service() -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in manager_objects("ambassador")]
    assert kinds == [("Namespace", "ambassador"), ("ServiceAccount", "traffic-manager"),
                     ("ClusterRole", "traffic-manager-ambassador"),
                     ("ClusterRoleBinding", "traffic-manager-ambassador"),
                     ("Role", "traffic-manager"), ("RoleBinding", "traffic-manager"),
                     ("Role", "traffic-manager-ca-reader"),
                     ("RoleBinding", "traffic-manager-ca-reader"),
                     ("Deployment", "traffic-manager"), ("Service", "traffic-manager")]


def test_a_load_balancer_install_exposes_only_the_tls_ports_outside() -> None:
    objects = manager_objects("ambassador", service_type="LoadBalancer")
    direct = objects[-1]
    assert (direct["kind"], direct["metadata"]["name"]) == ("Service", "traffic-manager-direct")
    assert direct["spec"]["type"] == "LoadBalancer"
    assert [p["port"] for p in direct["spec"]["ports"]] == [DIRECT_PORT, RAW_DIAL_PORT]
    assert _kind(objects, "Service")["spec"]["type"] == "ClusterIP"
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37", strict=True)
    with pytest.raises(ManifestError, match="--manager-service-type"):
        manager_objects("ambassador", service_type="NodePort")


def test_the_managers_own_role_reaches_only_its_tls_secret_and_ca_configmap() -> None:
    role = manager_objects("ambassador")[4]
    reads = {(r, v, tuple(rule.get("resourceNames") or ())) for rule in role["rules"]
             for r in rule["resources"] for v in rule["verbs"]}
    assert reads == {("secrets", "create", ()),
                     ("secrets", "get", ("traffic-manager-tls",)),
                     ("configmaps", "create", ()),
                     ("configmaps", "get", ("traffic-manager-ca",)),
                     ("configmaps", "update", ("traffic-manager-ca",))}
    reader = manager_objects("ambassador")[7]
    assert reader["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                   "name": "system:authenticated"}]


def _kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


def test_the_cluster_role_grants_no_wildcards_and_no_writes_outside_its_needs() -> None:
    role = manager_objects()[2]
    writes = set()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        for verb in set(rule["verbs"]) - {"get", "list", "watch"}:
            writes.update(f"{verb} {r}" for r in rule["resources"])
    # create: dryRun probe of the service CIDR; update: agent injection and restore;
    # the reviews: who calls the manager and what they may do (no other identity API);
    # deletecollection pods: a ReplicaSet's pods are made again from the changed template
    assert writes == {"create services", "update services", "update deployments",
                      "update replicasets", "update statefulsets", "deletecollection pods",
                      "create tokenreviews", "create subjectaccessreviews"}


def test_the_cluster_role_reads_no_secrets_because_the_kubelet_resolves_the_env() -> None:
    role = manager_objects()[2]
    readable = {r for rule in role["rules"] for r in rule["resources"]}
    assert not readable & {"secrets", "configmaps"}


def test_the_deployment_runs_the_versioned_image_with_a_ready_check_on_grpc() -> None:
    deployment = _kind(manager_objects("ambassador"), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == manager_image() == f"ghcr.io/tp-jupyter/traffic-manager:{VERSION}"
    assert container["ports"][0]["containerPort"] == GRPC_PORT
    assert container["readinessProbe"]["tcpSocket"]["port"] == GRPC_PORT
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "traffic-manager"


def test_a_bad_namespace_is_refused_with_what_to_do() -> None:
    with pytest.raises(ManifestError, match="lower-case letters"):
        manager_objects("Bad_NS")
