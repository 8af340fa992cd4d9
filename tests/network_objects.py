"""Kubernetes objects as the API returns them (plain dicts), for feeding the caches."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def service(name: str, ns: str, cluster_ip: str | None, ports: list[Obj],
            selector: dict[str, str] | None = None, **spec: Any) -> Obj:
    body: Obj = {"type": "ClusterIP", "ports": ports, **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns}, "spec": body}


def port(port: int, target: int | str | None = None, name: str = "",
         protocol: str = "TCP") -> Obj:
    p: Obj = {"port": port, "protocol": protocol, "targetPort": target or port}
    if name:
        p["name"] = name
    return p


def endpoint(ip: str, ready: bool | None = True, hostname: str = "") -> Obj:
    ep: Obj = {"addresses": [ip]}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(service_name: str, ns: str, endpoints: list[Obj], ports: list[Obj],
                   suffix: str = "abcde") -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service_name}-{suffix}", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": ports,
    }


def slice_port(port: int, name: str = "", protocol: str = "TCP") -> Obj:
    return {"name": name, "port": port, "protocol": protocol}


def endpoints(name: str, ns: str, ips: list[str], ports: list[Obj],
              not_ready: list[str] | None = None) -> Obj:
    subset: Obj = {"addresses": [{"ip": ip} for ip in ips], "ports": ports}
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns}, "subsets": [subset]}


def kubernetes_service() -> tuple[Obj, Obj]:
    """The `kubernetes` Service and its manual Endpoints (as the API server makes them)."""
    svc = service("kubernetes", "default", "10.96.0.1", [port(443, 6443, "https")])
    eps = endpoints("kubernetes", "default", ["172.30.0.1"],
                    [{"name": "https", "port": 6443, "protocol": "TCP"}])
    return svc, eps
