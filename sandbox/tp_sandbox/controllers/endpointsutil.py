"""Pure construction of Endpoints subsets and EndpointSlice contents from a Service
and its pods, as the upstream endpoints / endpointslice controllers build them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .objects import Obj, is_deleting, is_pod_ready, labels_of, matches_labels

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def selector_of(svc: Mapping[str, Any]) -> dict[str, str]:
    """The Service's selector; empty means "not managed by us" (manual Endpoints)."""
    return dict(svc.get("spec", {}).get("selector") or {})


def selected_pods(svc: Mapping[str, Any], pods: Iterable[Obj]) -> list[Obj]:
    """Pods of the Service with an IP that are not finished."""
    ns = svc["metadata"].get("namespace")
    sel = selector_of(svc)
    out = []
    for p in pods:
        if p["metadata"].get("namespace") != ns or not matches_labels(sel, labels_of(p)):
            continue
        status = p.get("status", {})
        if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        out.append(p)
    return sorted(out, key=lambda p: (p["status"]["podIP"], p["metadata"]["name"]))


def resolve_port(svc_port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    """The pod's port for a Service port: a number, or a named containerPort
    (None when the pod has no such port; it is left out for that port)."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    text = str(target)
    if text.isdigit():
        return int(text)
    proto = svc_port.get("protocol", "TCP")
    for c in pod.get("spec", {}).get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == text and cp.get("protocol", "TCP") == proto:
                return int(cp["containerPort"])
    return None


def pod_ports(svc: Mapping[str, Any], pod: Mapping[str, Any]) -> list[Obj]:
    out = []
    for sp in svc.get("spec", {}).get("ports") or []:
        port = resolve_port(sp, pod)
        if port is None:
            continue
        entry: Obj = {"port": port, "protocol": sp.get("protocol", "TCP")}
        if sp.get("name"):
            entry["name"] = sp["name"]
        if sp.get("appProtocol"):
            entry["appProtocol"] = sp["appProtocol"]
        out.append(entry)
    return out


def _target_ref(pod: Mapping[str, Any]) -> Obj:
    m = pod["metadata"]
    return {"kind": "Pod", "namespace": m.get("namespace"), "name": m["name"], "uid": m.get("uid")}


def _ports_key(ports: list[Obj]) -> tuple[tuple[str, int, str], ...]:
    return tuple(sorted((p.get("name", ""), p["port"], p["protocol"]) for p in ports))


def _hostname(svc: Mapping[str, Any], pod: Obj) -> str:
    """A pod's DNS hostname under a Service: set when its `subdomain` names the Service
    (StatefulSet pods behind their headless Service), as upstream's controllers do."""
    spec = pod.get("spec", {})
    if spec.get("hostname") and spec.get("subdomain") == svc.get("metadata", {}).get("name"):
        return str(spec["hostname"])
    return ""


def build_subsets(svc: Mapping[str, Any], pods: Iterable[Obj]) -> list[Obj]:
    """Endpoints subsets: pods grouped by their resolved port set, ready ones in
    `addresses`, the others in `notReadyAddresses` (terminating pods left out unless
    publishNotReadyAddresses)."""
    publish = bool(svc.get("spec", {}).get("publishNotReadyAddresses"))
    has_ports = bool(svc.get("spec", {}).get("ports"))
    groups: dict[tuple[tuple[str, int, str], ...], Obj] = {}
    for pod in selected_pods(svc, pods):
        if is_deleting(pod) and not publish:
            continue
        ports = pod_ports(svc, pod)
        if has_ports and not ports:
            continue
        addr: Obj = {"ip": pod["status"]["podIP"], "targetRef": _target_ref(pod)}
        if hostname := _hostname(svc, pod):
            addr["hostname"] = hostname
        if pod.get("spec", {}).get("nodeName"):
            addr["nodeName"] = pod["spec"]["nodeName"]
        subset = groups.setdefault(_ports_key(ports), {"ports": sorted(
            ports, key=lambda p: (p.get("name", ""), p["port"]))})
        field = "addresses" if publish or is_pod_ready(pod) else "notReadyAddresses"
        subset.setdefault(field, []).append(addr)
    out = []
    for _, subset in sorted(groups.items()):
        if not subset["ports"]:
            del subset["ports"]
        out.append(subset)
    return out


def build_slice_groups(svc: Mapping[str, Any], pods: Iterable[Obj]) -> list[tuple[list[Obj],
                                                                               list[Obj]]]:
    """(ports, endpoints) per EndpointSlice: one slice per distinct port set; a
    Service without endpoints still gets one empty slice (upstream's placeholder)."""
    publish = bool(svc.get("spec", {}).get("publishNotReadyAddresses"))
    has_ports = bool(svc.get("spec", {}).get("ports"))
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in selected_pods(svc, pods):
        ports = pod_ports(svc, pod)
        if has_ports and not ports:
            continue
        ready = is_pod_ready(pod)
        terminating = is_deleting(pod)
        ep: Obj = {
            "addresses": [pod["status"]["podIP"]],
            "conditions": {"ready": (ready and not terminating) or publish,
                           "serving": ready or publish, "terminating": terminating},
            "targetRef": _target_ref(pod),
        }
        if hostname := _hostname(svc, pod):
            ep["hostname"] = hostname
        if pod.get("spec", {}).get("nodeName"):
            ep["nodeName"] = pod["spec"]["nodeName"]
        slice_ports = [{"name": p.get("name", ""), "port": p["port"], "protocol": p["protocol"],
                        **({"appProtocol": p["appProtocol"]} if "appProtocol" in p else {})}
                       for p in sorted(ports, key=lambda p: (p.get("name", ""), p["port"]))]
        groups.setdefault(_ports_key(ports), (slice_ports, []))[1].append(ep)
    if not groups:
        return [([], [])]
    return [groups[k] for k in sorted(groups)]
