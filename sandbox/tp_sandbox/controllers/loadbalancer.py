"""LoadBalancer Services: an address from the sandbox's load-balancer range, as a cloud
provider (cloud-provider-kind, MetalLB) gives one.

A `type: LoadBalancer` Service without an address in the range gets the lowest free one
in `status.loadBalancer.ingress[0].ip` (its NodePorts the API server allocates, as a
real one does); a Service that stops being a LoadBalancer has its status cleared, and a
deleted one simply stops holding its address. Addresses in use are read from the
Services themselves, so a restarted controller finds the same assignment. kube-proxy
realises the address (LB IP:port -> endpoints) and every laptop routes the range to the
node (docs/contracts.md, network plan).
"""

from __future__ import annotations

import ipaddress
import logging
import threading

from tp_protocol.settings import get_settings

from . import errors
from .base import Context, Controller
from .kube import SERVICES, Obj
from .machinery import FuncHandler
from .objects import key_of

log = logging.getLogger(__name__)


def ingress_ips(svc: Obj) -> list[str]:
    """The addresses in a Service's `status.loadBalancer.ingress`."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if isinstance(i, dict) and i.get("ip")]


def is_load_balancer(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("type") == "LoadBalancer"


class LoadBalancerController(Controller):
    name = "service-lb-controller"
    component = "service-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.network = ipaddress.IPv4Network(get_settings().sandbox.load_balancer_cidr)
        self.services = self.informer(ctx.informers.get(SERVICES))
        self.services.add_handler(FuncHandler(add=self.enqueue,
                                              update=lambda o, n: self.enqueue(n),
                                              delete=self._deleted))
        # addresses written but maybe not yet seen by the informer (two workers, one range)
        self._lock = threading.Lock()
        self._assigned: dict[str, str] = {}

    def _deleted(self, svc: Obj) -> None:
        with self._lock:
            self._assigned.pop(key_of(svc), None)

    def _in_range(self, ip: str) -> bool:
        try:
            return ipaddress.IPv4Address(ip) in self.network
        except ValueError:
            return False

    def sync(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None:
            with self._lock:
                self._assigned.pop(key, None)
            return
        current = ingress_ips(svc)
        if not is_load_balancer(svc):
            with self._lock:
                self._assigned.pop(key, None)
            if current:   # no longer a LoadBalancer: the address goes back to the range
                self._write(svc, [])
            return
        with self._lock:
            if any(self._in_range(ip) for ip in current):
                self._assigned[key] = next(ip for ip in current if self._in_range(ip))
                return
            ip = self._free(key)
            if ip is None:
                self.recorder.event(svc, "Warning", "AllocationFailed",
                                    f"no free address in {self.network} "
                                    "(settings: sandbox.load_balancer_cidr)")
                return
            self._assigned[key] = ip
        try:
            self._write(svc, [{"ip": ip, "ipMode": "VIP"}])
        except errors.ControllerError:
            with self._lock:
                self._assigned.pop(key, None)
            raise
        self.recorder.event(svc, "Normal", "EnsuredLoadBalancer",
                            f"Ensured load balancer at {ip}")

    def _free(self, key: str) -> str | None:
        used = {ip for k, ip in self._assigned.items() if k != key}
        for other in self.services.items():
            if key_of(other) != key and is_load_balancer(other):
                used.update(ingress_ips(other))
        for addr in self.network.hosts():
            if str(addr) not in used:
                return str(addr)
        return None

    def _write(self, svc: Obj, ingress: list[Obj]) -> None:
        meta = svc["metadata"]
        self.kube.merge_patch(SERVICES, meta.get("namespace"), meta["name"],
                              {"status": {"loadBalancer": {"ingress": ingress or None}}},
                              "status")
        log.info("service %s/%s: load balancer %s", meta.get("namespace"), meta["name"],
                 ",".join(i["ip"] for i in ingress) or "released")
