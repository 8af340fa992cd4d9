"""`ResolveDial`: which pod a client's connection to a cluster address can go to directly.

In port-forward mode the daemon sends a connection as one pods/portforward WebSocket to
a pod instead of a `Tunnel` through this manager, when the manager names the pod:

- a Service's cluster IP and port -> one ready endpoint pod (round robin per address)
  and the endpoint's port (the Endpoints controller already resolved a named
  targetPort to a number, and an intercept's taken-over port is the agent's);
- a pod IP -> that pod (running, not hostNetwork);
- anything else -> `none` with the reason: the `kubernetes` Service (the API server is
  no pod), selector-less Endpoints (no pod behind them), endpoints outside the pod
  ranges (hostNetwork pods), unknown addresses. The client uses a Tunnel for those.

Services, Endpoints and Pods are read through `Kube` (the ClusterRole's existing
`list`/`get` on services, endpoints and pods); the list of Services is reused for
`connect.manager_route_ttl`, a Service's Endpoints are read at each question.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tp_protocol import manager_pb2 as pb

from tp_cluster.kube import Kube, KubeError
from tp_cluster.manager.clusterinfo import ClusterFacts

log = logging.getLogger(__name__)

Facts = Callable[[], Awaitable[ClusterFacts]]


def _none(reason: str) -> Any:
    return pb.DialRoute(none=reason)


class DialRoutes:
    """Answers `ResolveDial` from the cluster's Services, Endpoints and Pods."""

    def __init__(self, kube: Kube, facts: Facts, ttl: float) -> None:
        self._kube = kube
        self._facts = facts
        self._ttl = ttl
        self._services: dict[str, dict[str, Any]] = {}
        self._services_at = -1e9
        self._turn: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()

    async def resolve(self, ip: str, port: int) -> Any:
        try:
            facts = await self._facts()
            if ip == facts.kube_api_ip:
                return _none("the kubernetes Service: the API server is not a pod")
            pod_nets = [ipaddress.ip_network(c, strict=False) for c in facts.pod_cidrs]
            service = await self._service(ip)
            if service is not None:
                return await self._service_route(service, ip, port, pod_nets)
            if any(ipaddress.ip_address(ip) in net for net in pod_nets):
                return await self._pod_route(ip, port)
        except (KubeError, ValueError) as exc:
            log.warning("ResolveDial %s:%d: %s", ip, port, exc)
            return _none(f"cannot read the cluster: {exc}")
        return _none("not a Service or pod address")

    async def _service(self, ip: str) -> dict[str, Any] | None:
        async with self._lock:
            if time.monotonic() - self._services_at > self._ttl:
                listed = await asyncio.to_thread(self._kube.all_services)
                self._services = {s["spec"]["clusterIP"]: s for s in listed
                                  if s.get("spec", {}).get("clusterIP") not in (None, "", "None")}
                self._services_at = time.monotonic()
            return self._services.get(ip)

    async def _read_endpoints(self, namespace: str, name: str) -> dict[str, Any] | None:
        # read at every question (clients cache answers briefly): an intercept is ACTIVE
        # once the Endpoints name only agent pods, and from then on no answer is older
        return await asyncio.to_thread(self._kube.read_endpoints, namespace, name)

    async def _service_route(self, service: dict[str, Any], ip: str, port: int,
                             pod_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
                             ) -> Any:
        meta, spec = service["metadata"], service["spec"]
        namespace, name = meta["namespace"], meta["name"]
        ports = [p for p in spec.get("ports") or []
                 if p.get("port") == port and p.get("protocol", "TCP") == "TCP"]
        if not ports:
            return _none(f"service {namespace}/{name} has no TCP port {port}")
        port_name = ports[0].get("name") or ""
        endpoints = await self._read_endpoints(namespace, name)
        candidates: list[tuple[str, int]] = []
        for subset in (endpoints or {}).get("subsets") or []:
            target = next((p.get("port") for p in subset.get("ports") or []
                           if (p.get("name") or "") == port_name
                           and p.get("protocol", "TCP") == "TCP"), None)
            if not target:
                continue
            for address in subset.get("addresses") or []:
                ref = address.get("targetRef") or {}
                if ref.get("kind") != "Pod" or ref.get("namespace", namespace) != namespace:
                    continue  # selector-less endpoints: no pod to forward to
                if not any(ipaddress.ip_address(address.get("ip", "")) in net
                           for net in pod_nets):
                    continue  # a hostNetwork pod: a port-forward would reach the node
                candidates.append((ref["name"], int(target)))
        if not candidates:
            return _none(f"service {namespace}/{name} has no ready pod endpoint for port "
                         f"{port}")
        key = (ip, port)
        turn = self._turn.get(key, 0)
        self._turn[key] = turn + 1
        pod, pod_port = sorted(candidates)[turn % len(candidates)]
        return pb.DialRoute(namespace=namespace, pod=pod, port=pod_port)

    async def _pod_route(self, ip: str, port: int) -> Any:
        pods = await asyncio.to_thread(self._kube.pods_with_ip, ip)
        for pod in pods:
            if pod.get("spec", {}).get("hostNetwork"):
                return _none(f"pod {pod['metadata']['name']} uses the host's network")
            if pod.get("status", {}).get("phase") == "Running":
                meta = pod["metadata"]
                return pb.DialRoute(namespace=meta["namespace"], pod=meta["name"], port=port)
        return _none(f"no running pod has the address {ip}")
