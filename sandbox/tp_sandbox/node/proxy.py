"""kube-proxy for the sandbox: Service ClusterIPs as one nftables table in the node netns.

The proxy watches Services, EndpointSlices and Endpoints and keeps the table
`ip tp-services` in the node network namespace equal to what they say. The table is
replaced as a whole with one `nft -f` transaction (create, delete, define), so a
packet never sees half a rule set and established connections keep their conntrack
NAT bindings across rewrites::

    prerouting (pod traffic from veths) ┐
    output     (node-local processes)   ┴─> services: daddr . proto . dport -> svc-N
    svc-N:  numgen random mod K vmap { i : goto ep-N-i }         (load balancing)
    ep-N-i: mark hairpin (saddr == endpoint); dnat to endpoint:port
    postrouting: marked (hairpin) -> masquerade, so the pod sees the node (169.254.1.1)
    filter-prerouting/-output: ClusterIP:port without ready endpoints -> reject
                               (TCP reset, ICMP port-unreachable), as kube-proxy does

Endpoints come from EndpointSlices (`kubernetes.io/service-name` label) and, for a
Service that has none, from its Endpoints object (the `kubernetes` Service is only
given manual Endpoints by the API server). A Service port's target port number is the
one the slice lists under the Service port's name, which is how named targetPorts
(`targetPort: http`) are resolved per endpoint. Headless Services (clusterIP None) and
ExternalName Services get no rules. A LoadBalancer Service's `status.loadBalancer.ingress`
addresses (given by the controllers' service-lb-controller) get the same rules as its
ClusterIP: laptops route the load-balancer range to the node, as to a cloud's LB.

Node-local processes choose a route before OUTPUT runs, so the proxy adds
`<service CIDR> dev lo src <API address>` (and the same for the load-balancer range)
inside the node netns (never in the host).

This module also holds the node's service cache (`ServiceCache`, shared with the
cluster DNS); both reach the API server through the node's adapter, `kubeapi.KubeApi`.

Errors::

    ServiceProxyError            base
    └── NftError                 `nft -f` refused the generated table
(API failures are `errors.ApiError` and its children, raised by the adapter.)
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import kubernetes
from tp_protocol.settings import get_settings

from tp_sandbox import netns
from tp_sandbox.paths import Instance

from .errors import ApiError, ApiGone
from .kubeapi import SERVICE_KINDS, KubeApi, Obj

log = logging.getLogger(__name__)

TABLE = "tp-services"
HAIRPIN_MARK = 0x4000
SLICE_SERVICE_LABEL = "kubernetes.io/service-name"
KINDS = SERVICE_KINDS
"""The kinds the service cache holds (one reflector each)."""


class ServiceProxyError(Exception):
    """Base of kube-proxy's and the service cache's errors."""


class NftError(ServiceProxyError):
    """`nft` refused a generated table (a bug: the message holds nft's complaint)."""


# -- the cache --------------------------------------------------------------------------


class ServiceCache:
    """Services, EndpointSlices and Endpoints of all namespaces, kept by watches.

    Objects are stored by (namespace, name). `version` grows with every change and
    listeners are called (from the watch threads) after each; `synced` is set once
    every kind has been listed. Tests fill it with `replace()` instead of watches.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {k: {} for k in KINDS}
        self._listed: set[str] = set()
        self.version = 0
        self.synced = threading.Event()
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return str(meta.get("namespace", "")), str(meta.get("name", ""))

    def replace(self, kind: str, items: Sequence[Obj]) -> None:
        """Set all objects of `kind` (after a list)."""
        with self._lock:
            self._objects[kind] = {self._key(o): o for o in items}
            self._listed.add(kind)
            self.version += 1
            if self._listed >= set(KINDS):
                self.synced.set()
        self._notify()

    def apply(self, kind: str, event_type: str, obj: Obj) -> None:
        """Apply one watch event."""
        with self._lock:
            if event_type == "DELETED":
                self._objects[kind].pop(self._key(obj), None)
            elif event_type in ("ADDED", "MODIFIED"):
                self._objects[kind][self._key(obj)] = obj
            else:
                return
            self.version += 1
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("service cache listener failed")

    def snapshot(self) -> tuple[int, list[ServiceInfo]]:
        """The cache's version and its Services with their endpoints."""
        with self._lock:
            version = self.version
            services = list(self._objects["services"].values())
            slices = list(self._objects["endpointslices"].values())
            endpoints = list(self._objects["endpoints"].values())
        return version, build_services(services, slices, endpoints)


class Reflector:
    """A named thread that lists one kind into the cache and then follows its watch."""

    def __init__(self, api: KubeApi, kind: str, cache: ServiceCache, owner: str) -> None:
        self.api = api
        self.kind = kind
        self.cache = cache
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name=f"{owner}-watch-{kind}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; waits at most `timeout` (default: settings.sandbox.stop_grace)."""
        timeout = get_settings().sandbox.stop_grace if timeout is None else timeout
        self._stop.set()
        if self._thread.ident is None:
            return  # never started
        resp = self._resp
        if resp is not None:
            try:  # unblocks the watch thread's read
                resp.shutdown()
            except Exception:
                log.debug("shutdown of %s watch failed", self.kind, exc_info=True)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s did not stop within %.0f s", self._thread.name, timeout)

    def _opened(self, resp: Any) -> None:
        self._resp = resp
        if self._stop.is_set():
            resp.shutdown()

    def _run(self) -> None:
        settings = get_settings().node
        rv = ""
        missing_logged = False
        while not self._stop.is_set():
            try:
                if not rv:
                    items, rv = self.api.list_objects(self.kind)
                    self.cache.replace(self.kind, items)
                events = self.api.watch_objects(self.kind, rv, settings.services_watch_timeout,
                                                on_open=self._opened)
                for event_type, obj in events:
                    if self._stop.is_set():
                        return
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = str(new_rv)
                    self.cache.apply(self.kind, event_type, obj)
            except ApiGone:
                rv = ""  # relist
                continue
            except ApiError as exc:
                if self._stop.is_set():
                    return
                if exc.status == 404 and self.kind == "endpointslices":
                    # An API server without discovery.k8s.io: Endpoints are enough.
                    if not missing_logged:
                        log.warning("EndpointSlices unavailable (%s); using Endpoints", exc)
                        missing_logged = True
                    self.cache.replace(self.kind, [])
                else:
                    log.warning("%s (retrying)", exc)
                self._stop.wait(settings.services_retry_backoff)
            except Exception:
                log.exception("%s watch failed (retrying)", self.kind)
                self._stop.wait(settings.services_retry_backoff)


# -- the model: Services with their endpoints --------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One ready endpoint of one Service port."""

    ip: str
    port: int


@dataclass
class PortInfo:
    """A Service port and the ready endpoints behind it."""

    name: str
    protocol: str
    port: int
    backends: list[Backend] = field(default_factory=list)


@dataclass(frozen=True)
class EndpointAddress:
    """An address behind a Service (for DNS: headless answers, hostnames, SRV)."""

    ip: str
    ready: bool
    hostname: str = ""


@dataclass
class ServiceInfo:
    """A Service as kube-proxy and DNS need it."""

    namespace: str
    name: str
    cluster_ip: str | None
    """IPv4 ClusterIP; None for headless (clusterIP None) and ExternalName Services."""
    headless: bool
    external_name: str | None
    ports: list[PortInfo]
    addresses: list[EndpointAddress]
    """Every distinct endpoint address (ready or not)."""
    load_balancer_ips: list[str] = field(default_factory=list)
    """`status.loadBalancer.ingress[].ip` of a LoadBalancer Service: served like the
    ClusterIP, on the same ports."""


def _slice_groups(slices: Sequence[Obj]) -> list[tuple[list[Obj], list[Obj]]]:
    """(ports, endpoints) per EndpointSlice, normalised to (ip, ready, hostname)."""
    groups = []
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        eps = []
        for ep in sl.get("endpoints") or []:
            ready = (ep.get("conditions") or {}).get("ready")
            for ip in ep.get("addresses") or []:
                eps.append({"ip": ip, "ready": ready is None or bool(ready),
                            "hostname": ep.get("hostname") or ""})
        groups.append((list(sl.get("ports") or []), eps))
    return groups


def _endpoints_groups(endpoints: Obj) -> list[tuple[list[Obj], list[Obj]]]:
    """The same from a v1 Endpoints object's subsets."""
    groups = []
    for subset in endpoints.get("subsets") or []:
        eps = [{"ip": a.get("ip"), "ready": True, "hostname": a.get("hostname") or ""}
               for a in subset.get("addresses") or []]
        eps += [{"ip": a.get("ip"), "ready": False, "hostname": a.get("hostname") or ""}
                for a in subset.get("notReadyAddresses") or []]
        groups.append((list(subset.get("ports") or []), eps))
    return groups


def _ipv4(value: Any) -> str | None:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        return None


def build_services(services: Sequence[Obj], slices: Sequence[Obj], endpoints: Sequence[Obj]
                   ) -> list[ServiceInfo]:
    """Join Services with their endpoints, resolving each port's target per endpoint.

    A Service uses its EndpointSlices when it has any, else its Endpoints object.
    """
    slices_by_svc: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        svc = (meta.get("labels") or {}).get(SLICE_SERVICE_LABEL)
        if svc:
            slices_by_svc.setdefault((meta.get("namespace", ""), svc), []).append(sl)
    eps_by_name = {((e.get("metadata") or {}).get("namespace", ""),
                    (e.get("metadata") or {}).get("name", "")): e for e in endpoints}

    result = []
    for svc in sorted(services, key=lambda s: ((s.get("metadata") or {}).get("namespace", ""),
                                                (s.get("metadata") or {}).get("name", ""))):
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        raw_ip = spec.get("clusterIP")
        svc_type = spec.get("type", "ClusterIP")
        headless = raw_ip == "None"
        external = spec.get("externalName") if svc_type == "ExternalName" else None
        cluster_ip = None if headless or external else _ipv4(raw_ip)

        if key in slices_by_svc:
            groups = _slice_groups(slices_by_svc[key])
        elif key in eps_by_name:
            groups = _endpoints_groups(eps_by_name[key])
        else:
            groups = []

        ports = []
        for sp in spec.get("ports") or []:
            info = PortInfo(name=str(sp.get("name") or ""),
                            protocol=str(sp.get("protocol") or "TCP").upper(),
                            port=int(sp.get("port") or 0))
            target = sp.get("targetPort")
            seen: set[Backend] = set()
            for group_ports, eps in groups:
                number = None
                for gp in group_ports:
                    if (str(gp.get("name") or "") == info.name
                            and str(gp.get("protocol") or "TCP").upper() == info.protocol):
                        number = gp.get("port")
                        break
                if number is None and not group_ports:
                    # No port list (selector-less, hand-made): a numeric targetPort applies.
                    number = target if isinstance(target, int) else info.port
                if not number:
                    continue
                for ep in eps:
                    backend = Backend(ep["ip"], int(number))
                    if ep["ready"] and _ipv4(ep["ip"]) and backend not in seen:
                        seen.add(backend)
                        info.backends.append(backend)
            ports.append(info)

        addresses: dict[str, EndpointAddress] = {}
        for _ports, eps in groups:
            for ep in eps:
                ip = _ipv4(ep["ip"])
                if ip is None:
                    continue
                old = addresses.get(ip)
                if old is None or (ep["ready"] and not old.ready):
                    addresses[ip] = EndpointAddress(ip, ep["ready"], ep["hostname"])
        lb_ips: list[str] = []
        if svc_type == "LoadBalancer" and cluster_ip:
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            lb_ips = [ip for i in ingress or [] if isinstance(i, dict)
                      and (ip := _ipv4(i.get("ip")))]
        result.append(ServiceInfo(key[0], key[1], cluster_ip, headless, external, ports,
                                  list(addresses.values()), lb_ips))
    return result


# -- rules ------------------------------------------------------------------------------

_PROTOCOLS = {"TCP": "tcp", "UDP": "udp"}


def render_table(services: Sequence[ServiceInfo]) -> str:
    """The nft script that replaces table `ip tp-services` with rules for `services`."""
    dispatch: list[str] = []
    no_endpoints: list[str] = []
    chains: list[str] = []
    n = 0
    for svc in services:
        if svc.cluster_ip is None:
            continue  # headless or ExternalName: DNS only
        for port in svc.ports:
            proto = _PROTOCOLS.get(port.protocol)
            if proto is None or not port.port:
                continue  # SCTP and friends: not in the sandbox
            what = f"{svc.namespace}/{svc.name}:{port.name or port.port}/{proto}"
            addresses = [svc.cluster_ip, *svc.load_balancer_ips]
            if not port.backends:
                no_endpoints.extend(f"{ip} . {proto} . {port.port}" for ip in addresses)
                continue
            n += 1
            dispatch.extend(f"    ip daddr {ip} {proto} dport {port.port} "
                            f'goto svc-{n} comment "{what}"' for ip in addresses)
            eps = []
            for i, b in enumerate(port.backends):
                eps.append(f"  chain ep-{n}-{i} {{\n"
                           f"    ip saddr {b.ip} meta mark set meta mark | {HAIRPIN_MARK:#x}\n"
                           f"    meta l4proto {proto} dnat to {b.ip}:{b.port}\n  }}")
            if len(port.backends) == 1:
                pick = f"goto ep-{n}-0"
            else:
                cases = ", ".join(f"{i} : goto ep-{n}-{i}" for i in range(len(port.backends)))
                pick = f"numgen random mod {len(port.backends)} vmap {{ {cases} }}"
            chains.append(f"  chain svc-{n} {{\n    {pick}\n  }}")
            chains.extend(eps)

    elements = ", ".join(no_endpoints)
    no_ep_set = "  set no-endpoints {\n    type ipv4_addr . inet_proto . inet_service\n"
    if elements:
        no_ep_set += f"    elements = {{ {elements} }}\n"
    no_ep_set += "  }"
    lines = [
        f"table ip {TABLE}",
        f"delete table ip {TABLE}",
        f"table ip {TABLE} {{",
        no_ep_set,
        "  chain services {",
        *dispatch,
        "  }",
        "  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
        "    jump services\n  }",
        "  chain nat-output {\n    type nat hook output priority -100; policy accept;\n"
        "    jump services\n  }",
        "  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
        f"    meta mark & {HAIRPIN_MARK:#x} == {HAIRPIN_MARK:#x} masquerade\n  }}",
        "  chain reject-no-endpoints {\n    meta l4proto tcp reject with tcp reset\n"
        "    reject\n  }",
        "  chain filter-prerouting {\n"
        "    type filter hook prerouting priority dstnat - 10; policy accept;\n"
        "    ip daddr . meta l4proto . th dport @no-endpoints goto reject-no-endpoints\n  }",
        "  chain filter-output {\n    type filter hook output priority -110; policy accept;\n"
        "    ip daddr . meta l4proto . th dport @no-endpoints goto reject-no-endpoints\n  }",
        *chains,
        "}",
    ]
    return "\n".join(lines) + "\n"


def delete_table_script() -> str:
    """An nft script that removes the table if it exists (idempotent)."""
    return f"table ip {TABLE}\ndelete table ip {TABLE}\n"


def apply_script(netns_name: str, script: str) -> None:
    """Run an nft script atomically inside `netns_name`."""
    try:
        netns.nft(netns_name, script)
    except RuntimeError as exc:
        raise NftError(str(exc)) from exc


def _ip_route(netns_name: str, verb: str) -> None:
    s = get_settings().sandbox
    for cidr in (s.service_cidr, s.load_balancer_cidr):
        argv = ["ip", "route", verb, cidr, "dev", "lo"]
        if verb != "del":
            argv += ["src", s.api_address]
        proc = netns.run(netns_name, argv, check=False)
        if proc.returncode != 0 and verb != "del":
            log.warning("route to %s in %s: %s", cidr, netns_name,
                        proc.stderr.decode().strip())


class ServiceProxy:
    """kube-proxy: keeps table `ip tp-services` in the node netns in step with the API.

    `start()` starts the watch threads (`kube-proxy-watch-<kind>`) and the sync thread
    (`kube-proxy-sync`); `stop()` stops them in reverse order and removes the table and
    the service-range route. Tests may pass a filled `cache` and no API client.
    """

    def __init__(self, instance: Instance, api_client: kubernetes.client.ApiClient | None,
                 *, cache: ServiceCache | None = None) -> None:
        self.instance = instance
        self.netns = instance.node_netns
        self.cache = cache if cache is not None else ServiceCache()
        self._reflectors = ([] if api_client is None else
                            [Reflector(KubeApi(api_client), kind, self.cache, "kube-proxy")
                             for kind in KINDS])
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-proxy-sync", daemon=True)
        self.applied_version = -1
        """Cache version of the table in place (tests wait on it)."""
        self.applied = threading.Condition()
        self.cache.add_listener(self._wake.set)

    def start(self) -> None:
        if not netns.exists(self.netns):
            raise ServiceProxyError(
                f"node netns {self.netns} not found: start the node with `tp sandbox up`")
        _ip_route(self.netns, "replace")
        self._thread.start()
        for reflector in self._reflectors:
            reflector.start()

    def stop(self) -> None:
        for reflector in reversed(self._reflectors):
            reflector.stop()
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(get_settings().sandbox.stop_grace)
        if netns.exists(self.netns):
            try:
                apply_script(self.netns, delete_table_script())
            except (NftError, OSError, subprocess.SubprocessError) as exc:
                log.warning("removing table %s: %s", TABLE, exc)
            _ip_route(self.netns, "del")

    def wait_applied(self, version: int, timeout: float) -> bool:
        """Wait until the table reflects cache version `version` or later."""
        with self.applied:
            return self.applied.wait_for(lambda: self.applied_version >= version, timeout)

    def _run(self) -> None:
        settings = get_settings().node
        last_script = ""
        last_applied_at = 0.0
        clock = threading.Event()  # a waitable sleep that stop() can cut short
        while not self._stop.is_set():
            self._wake.wait(settings.proxy_resync_interval)
            if self._stop.is_set():
                return
            if not self.cache.synced.is_set():
                # Writing rules before every kind is listed would reject live Services.
                self.cache.synced.wait(settings.services_retry_backoff)
                continue
            clock.wait(settings.proxy_sync_delay)  # gather a burst of changes
            self._wake.clear()
            version, services = self.cache.snapshot()
            script = render_table(services)
            try:
                now = time.monotonic()
                if script != last_script or now - last_applied_at >= \
                        settings.proxy_resync_interval:
                    apply_script(self.netns, script)
                    last_script, last_applied_at = script, now
                    log.info("nft table %s: %d services (cache version %d)", TABLE,
                             len(services), version)
            except Exception:
                log.exception("applying nft table %s failed (retrying)", TABLE)
                self._stop.wait(settings.services_retry_backoff)
                self._wake.set()
                continue
            with self.applied:
                self.applied_version = version
                self.applied.notify_all()
