"""What a fresh cluster holds before anyone writes: the four system namespaces, the
`kubernetes` Service with its Endpoints/EndpointSlice, and the default ClusterRoles.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from tp_protocol.settings import get_settings

if TYPE_CHECKING:
    from tp_sandbox.apiserver.handlers import Api

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_READ = ["get", "list", "watch"]


def bootstrap(api: Api) -> None:
    sb = get_settings().sandbox
    for ns in NAMESPACES:
        api.create(api.rt("", "namespaces"), "", {"metadata": {
            "name": ns, "labels": {"kubernetes.io/metadata.name": ns}}})
    first_ip = str(ipaddress.ip_network(str(api.service_net)).network_address + 1)
    api.create(api.rt("", "services"), "default", {
        "metadata": {"name": "kubernetes",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": first_ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": sb.api_inner_port}]}})
    api.create(api.rt("", "endpoints"), "default", {
        "metadata": {"name": "kubernetes",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": sb.api_address}],
                     "ports": [{"name": "https", "port": sb.api_inner_port,
                                "protocol": "TCP"}]}]})
    api.create(api.rt("discovery.k8s.io", "endpointslices"), "default", {
        "metadata": {"name": "kubernetes",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [sb.api_address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": sb.api_inner_port, "protocol": "TCP"}]})
    roles = api.rt("rbac.authorization.k8s.io", "clusterroles")
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                  {"nonResourceURLs": ["*"], "verbs": ["*"]}]
    view = [{"apiGroups": ["", "apps", "batch", "discovery.k8s.io"],
             "resources": ["pods", "pods/log", "services", "endpoints", "configmaps",
                           "serviceaccounts", "events", "namespaces", "deployments",
                           "deployments/scale", "replicasets", "replicasets/scale",
                           "endpointslices", "statefulsets", "statefulsets/scale",
                           "daemonsets", "controllerrevisions", "jobs", "cronjobs",
                           "persistentvolumeclaims"],
             "verbs": _READ}]
    edit_verbs = ["create", "delete", "deletecollection", "patch", "update"]
    edit = [*view, {"apiGroups": ["", "apps", "batch"],
                    "resources": ["pods", "services", "endpoints", "configmaps", "secrets",
                                  "serviceaccounts", "deployments", "deployments/scale",
                                  "replicasets", "replicasets/scale", "pods/exec",
                                  "pods/portforward", "pods/eviction", "statefulsets",
                                  "statefulsets/scale", "daemonsets", "jobs", "cronjobs",
                                  "persistentvolumeclaims"],
                    "verbs": [*_READ, *edit_verbs]}]
    admin = [*edit, {"apiGroups": ["rbac.authorization.k8s.io"],
                     "resources": ["roles", "rolebindings"], "verbs": [*_READ, *edit_verbs]}]
    for name, rules in (("cluster-admin", everything), ("admin", admin), ("edit", edit),
                        ("view", view)):
        api.create(roles, "", {"metadata": {
            "name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": rules})
    api.create(api.rt("rbac.authorization.k8s.io", "clusterrolebindings"), "", {
        "metadata": {"name": "cluster-admin",
                     "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                      "name": "system:masters"}]})
