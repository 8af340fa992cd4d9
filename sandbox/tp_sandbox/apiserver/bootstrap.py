"""What a fresh cluster holds before anyone writes: the four system namespaces, the
`kubernetes` Service with its Endpoints/EndpointSlice, and the default ClusterRoles
(`rbac_defaults`).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from tp_protocol.settings import get_settings

from tp_sandbox.apiserver import rbac_defaults

if TYPE_CHECKING:
    from tp_sandbox.apiserver.handlers import Api

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


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
    rbac_defaults.create(api)
