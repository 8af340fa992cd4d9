"""meta.k8s.io/v1 Table rendering, with the columns a real API server gives kubectl.

Kinds without their own columns get the server's default: Name and Created At.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from tp_sandbox.apiserver import crd
from tp_sandbox.apiserver.resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    days = hours // 24
    return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"


def _age_of(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    t = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return human_duration((datetime.datetime.now(datetime.UTC) - t).total_seconds())


def _age(o: Obj) -> str:
    return _age_of(o.get("metadata", {}).get("creationTimestamp"))


def _name(o: Obj) -> str:
    return str(o.get("metadata", {}).get("name", ""))


def _selector(sel: dict[str, Any] | None) -> str:
    if not sel:
        return "<none>"
    labels = sel.get("matchLabels", sel) if "matchLabels" in sel or "matchExpressions" in sel \
        else sel
    parts = [f"{k}={v}" for k, v in (labels or {}).items()]
    for e in sel.get("matchExpressions") or []:
        parts.append(f"{e['key']} {e['operator'].lower()} ({','.join(e.get('values') or [])})")
    return ",".join(parts) or "<none>"


def _pod_status(o: Obj) -> str:
    st = o.get("status", {})
    reason = st.get("reason") or st.get("phase") or "Unknown"
    for cs in st.get("initContainerStatuses") or []:
        state = cs.get("state", {})
        if state.get("waiting", {}).get("reason") not in (None, "PodInitializing"):
            return f"Init:{state['waiting']['reason']}"
    for cs in reversed(st.get("containerStatuses") or []):
        state = cs.get("state", {})
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if o.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    return str(reason)


def _pod_ready(o: Obj) -> str:
    statuses = o.get("status", {}).get("containerStatuses") or []
    total = len(o.get("spec", {}).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _restarts(o: Obj) -> str:
    return str(sum(int(c.get("restartCount", 0))
                   for c in o.get("status", {}).get("containerStatuses") or []))


def _containers(o: Obj) -> str:
    cs = o.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs)


def _images(o: Obj) -> str:
    cs = o.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("image", "") for c in cs)


def _svc_ports(o: Obj) -> str:
    out = []
    for p in o.get("spec", {}).get("ports") or []:
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p.get('port')}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ip(o: Obj) -> str:
    spec = o.get("spec", {})
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName", "<none>"))
    ips = list(spec.get("externalIPs") or [])
    ips += [i.get("ip") or i.get("hostname") for i in
            o.get("status", {}).get("loadBalancer", {}).get("ingress") or []]
    if ips:
        return ",".join(ips)
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def _endpoints(o: Obj) -> str:
    out = []
    for s in o.get("subsets") or []:
        for a in s.get("addresses") or []:
            for p in s.get("ports") or [{}]:
                out.append(f"{a.get('ip')}:{p.get('port')}" if p else a.get("ip"))
    if not out:
        return "<none>"
    return ",".join(out[:3]) + (f" + {len(out) - 3} more..." if len(out) > 3 else "")


def _node_ready(o: Obj) -> str:
    for c in o.get("status", {}).get("conditions") or []:
        if c.get("type") == "Ready":
            state = "Ready" if c.get("status") == "True" else "NotReady"
            return state + (",SchedulingDisabled" if o.get("spec", {}).get("unschedulable")
                            else "")
    return "Unknown"


def _node_addr(kind: str) -> Callable[[Obj], str]:
    def get(o: Obj) -> str:
        for a in o.get("status", {}).get("addresses") or []:
            if a.get("type") == kind:
                return str(a.get("address"))
        return "<none>"

    return get


def _node_info(key: str) -> Callable[[Obj], str]:
    return lambda o: str(o.get("status", {}).get("nodeInfo", {}).get(key, ""))


def _node_roles(o: Obj) -> str:
    roles = [k.split("/", 1)[1] for k in o.get("metadata", {}).get("labels") or {}
             if k.startswith("node-role.kubernetes.io/")]
    return ",".join(sorted(roles)) or "<none>"


def _slice_ports(o: Obj) -> str:
    ports = [str(p.get("port")) for p in o.get("ports") or []]
    return ",".join(ports) or "<unset>"


def _slice_endpoints(o: Obj) -> str:
    ips = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    if not ips:
        return "<unset>"
    return ",".join(ips[:3]) + (f" + {len(ips) - 3} more..." if len(ips) > 3 else "")


def _event_last_seen(o: Obj) -> str:
    ts = (o.get("lastTimestamp") or o.get("eventTime")
          or o.get("metadata", {}).get("creationTimestamp"))
    return _age_of(ts)


def _event_object(o: Obj) -> str:
    io = o.get("involvedObject", {})
    return f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}"


def _job_status(o: Obj) -> str:
    conds = {c.get("type"): c.get("status") for c in o.get("status", {}).get("conditions") or []}
    for ctype, shown in (("Complete", "Complete"), ("Failed", "Failed"),
                         ("FailureTarget", "FailureTarget"), ("Suspended", "Suspended")):
        if conds.get(ctype) == "True":
            return shown
    return "Running"


def _job_completions(o: Obj) -> str:
    spec, status = o.get("spec", {}), o.get("status", {})
    want = spec.get("completions")
    done = int(status.get("succeeded") or 0)
    if want is None:
        return f"{done}/1 of {spec.get('parallelism', 1)}"
    return f"{done}/{want}"


def _job_duration(o: Obj) -> str:
    status = o.get("status", {})
    start = status.get("startTime")
    if not start:
        return ""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    begin = datetime.datetime.strptime(start, fmt).replace(tzinfo=datetime.UTC)
    end = (datetime.datetime.strptime(status["completionTime"], fmt).replace(
        tzinfo=datetime.UTC) if status.get("completionTime")
        else datetime.datetime.now(datetime.UTC))
    return human_duration((end - begin).total_seconds())


def _template_of(o: Obj) -> Obj:
    if o.get("kind") == "CronJob":
        return dict(o.get("spec", {}).get("jobTemplate", {}).get("spec") or {})
    return dict(o.get("spec") or {})


def _t_containers(o: Obj) -> str:
    return _containers({"spec": _template_of(o)})


def _t_images(o: Obj) -> str:
    return _images({"spec": _template_of(o)})


def _owner_kind(o: Obj) -> str:
    for ref in o.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            group = ref.get("apiVersion", "").split("/")[0] if "/" in ref.get(
                "apiVersion", "") else ""
            return f"{ref.get('kind', '').lower()}.{group}/{ref.get('name')}" if group else \
                f"{ref.get('kind', '').lower()}/{ref.get('name')}"
    return "<none>"


def _s(*keys: str, default: Any = 0) -> Callable[[Obj], Any]:
    def get(o: Obj) -> Any:
        cur: Any = o
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
        return default if cur is None else cur

    return get


_NAME: Column = ("Name", "string", 0, _name)
_AGE: Column = ("Age", "string", 0, _age)

COLUMNS: dict[str, list[Column]] = {
    "Pod": [_NAME, ("Ready", "string", 0, _pod_ready), ("Status", "string", 0, _pod_status),
            ("Restarts", "string", 0, _restarts), _AGE,
            ("IP", "string", 1, _s("status", "podIP", default="<none>")),
            ("Node", "string", 1, _s("spec", "nodeName", default="<none>")),
            ("Nominated Node", "string", 1,
             _s("status", "nominatedNodeName", default="<none>")),
            ("Readiness Gates", "string", 1, lambda o: "<none>")],
    "Deployment": [_NAME,
                   ("Ready", "string", 0, lambda o: f"{_s('status', 'readyReplicas')(o)}/"
                                                    f"{_s('spec', 'replicas')(o)}"),
                   ("Up-to-date", "integer", 0, _s("status", "updatedReplicas")),
                   ("Available", "integer", 0, _s("status", "availableReplicas")), _AGE,
                   ("Containers", "string", 1, _containers), ("Images", "string", 1, _images),
                   ("Selector", "string", 1, lambda o: _selector(o["spec"].get("selector")))],
    "ReplicaSet": [_NAME, ("Desired", "integer", 0, _s("spec", "replicas")),
                   ("Current", "integer", 0, _s("status", "replicas")),
                   ("Ready", "integer", 0, _s("status", "readyReplicas")), _AGE,
                   ("Containers", "string", 1, _containers), ("Images", "string", 1, _images),
                   ("Selector", "string", 1, lambda o: _selector(o["spec"].get("selector")))],
    "StatefulSet": [_NAME,
                    ("Ready", "string", 0, lambda o: f"{_s('status', 'readyReplicas')(o)}/"
                                                     f"{_s('spec', 'replicas')(o)}"), _AGE,
                    ("Containers", "string", 1, _containers),
                    ("Images", "string", 1, _images)],
    "DaemonSet": [_NAME, ("Desired", "integer", 0, _s("status", "desiredNumberScheduled")),
                  ("Current", "integer", 0, _s("status", "currentNumberScheduled")),
                  ("Ready", "integer", 0, _s("status", "numberReady")),
                  ("Up-to-date", "integer", 0, _s("status", "updatedNumberScheduled")),
                  ("Available", "integer", 0, _s("status", "numberAvailable")),
                  ("Node Selector", "string", 0,
                   lambda o: _selector({"matchLabels": o["spec"].get("template", {}).get(
                       "spec", {}).get("nodeSelector") or {}})), _AGE,
                  ("Containers", "string", 1, _containers), ("Images", "string", 1, _images),
                  ("Selector", "string", 1, lambda o: _selector(o["spec"].get("selector")))],
    "Job": [_NAME, ("Status", "string", 0, _job_status),
            ("Completions", "string", 0, _job_completions),
            ("Duration", "string", 0, _job_duration), _AGE,
            ("Containers", "string", 1, _containers), ("Images", "string", 1, _images),
            ("Selector", "string", 1, lambda o: _selector(o["spec"].get("selector")))],
    "CronJob": [_NAME, ("Schedule", "string", 0, _s("spec", "schedule", default="")),
                ("Timezone", "string", 0, _s("spec", "timeZone", default="<none>")),
                ("Suspend", "boolean", 0, _s("spec", "suspend", default=False)),
                ("Active", "integer", 0, lambda o: len(o.get("status", {}).get("active") or [])),
                ("Last Schedule", "string", 0,
                 lambda o: _age_of(o.get("status", {}).get("lastScheduleTime"))
                 if o.get("status", {}).get("lastScheduleTime") else "<none>"), _AGE,
                ("Containers", "string", 1, _t_containers), ("Images", "string", 1, _t_images),
                ("Selector", "string", 1, lambda o: "<none>")],
    "PersistentVolumeClaim": [
        _NAME, ("Status", "string", 0, _s("status", "phase", default="")),
        ("Volume", "string", 0, _s("spec", "volumeName", default="")),
        ("Capacity", "string", 0, _s("status", "capacity", "storage", default="")),
        ("Access Modes", "string", 0, lambda o: ",".join(
            {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
             "ReadWriteOncePod": "RWOP"}.get(m, m)
            for m in o.get("status", {}).get("accessModes") or [])),
        ("StorageClass", "string", 0, _s("spec", "storageClassName", default="")),
        ("VolumeAttributesClass", "string", 0,
         _s("spec", "volumeAttributesClassName", default="<unset>")), _AGE,
        ("VolumeMode", "string", 1, _s("spec", "volumeMode", default=""))],
    "ControllerRevision": [_NAME, ("Controller", "string", 0, _owner_kind),
                           ("Revision", "integer", 0, _s("revision")), _AGE],
    "Service": [_NAME, ("Type", "string", 0, _s("spec", "type", default="ClusterIP")),
                ("Cluster-IP", "string", 0, _s("spec", "clusterIP", default="<none>")),
                ("External-IP", "string", 0, _external_ip),
                ("Port(s)", "string", 0, _svc_ports), _AGE,
                ("Selector", "string", 1, lambda o: _selector(o["spec"].get("selector")))],
    "Namespace": [_NAME, ("Status", "string", 0, _s("status", "phase", default="")), _AGE],
    "Node": [_NAME, ("Status", "string", 0, _node_ready), ("Roles", "string", 0, _node_roles),
             _AGE, ("Version", "string", 0, _node_info("kubeletVersion")),
             ("Internal-IP", "string", 1, _node_addr("InternalIP")),
             ("External-IP", "string", 1, _node_addr("ExternalIP")),
             ("OS-Image", "string", 1, _node_info("osImage")),
             ("Kernel-Version", "string", 1, _node_info("kernelVersion")),
             ("Container-Runtime", "string", 1, _node_info("containerRuntimeVersion"))],
    "Endpoints": [_NAME, ("Endpoints", "string", 0, _endpoints), _AGE],
    "EndpointSlice": [_NAME, ("AddressType", "string", 0, _s("addressType", default="")),
                      ("Ports", "string", 0, _slice_ports),
                      ("Endpoints", "string", 0, _slice_endpoints), _AGE],
    "ConfigMap": [_NAME, ("Data", "integer", 0,
                          lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
                  _AGE],
    "Secret": [_NAME, ("Type", "string", 0, _s("type", default="Opaque")),
               ("Data", "integer", 0, lambda o: len(o.get("data") or {})), _AGE],
    "ServiceAccount": [_NAME, ("Secrets", "integer", 0, lambda o: len(o.get("secrets") or [])),
                       _AGE],
    "Event": [("Last Seen", "string", 0, _event_last_seen),
              ("Type", "string", 0, _s("type", default="")),
              ("Reason", "string", 0, _s("reason", default="")),
              ("Object", "string", 0, _event_object),
              ("Message", "string", 0, _s("message", default=""))],
    "RoleBinding": [_NAME, ("Role", "string", 0, lambda o: f"{o['roleRef']['kind']}/"
                                                           f"{o['roleRef']['name']}"), _AGE],
    "ClusterRoleBinding": [_NAME, ("Role", "string", 0, lambda o: f"{o['roleRef']['kind']}/"
                                                                  f"{o['roleRef']['name']}"),
                           _AGE],
}
_DEFAULT: list[Column] = [_NAME, ("Created At", "date", 0,
                                  _s("metadata", "creationTimestamp", default=""))]


def wants_table(accept: str) -> bool:
    """kubectl asks `application/json;as=Table;v=v1;g=meta.k8s.io,...`."""
    first = accept.split(",", maxsplit=1)[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def _row_object(o: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return o
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata", {})}


def table(rt: ResourceType, objs: list[Obj], resource_version: str, include: str, *,
          with_columns: bool = True, list_meta: Obj | None = None) -> Obj:
    cols = (crd.columns(rt) if rt.custom is not None else None) or COLUMNS.get(rt.kind,
                                                                                _DEFAULT)
    rows = []
    for o in objs:
        cells = []
        for _, ctype, _, cell in cols:
            try:
                value = cell(o)
                if ctype == "date" and rt.custom is not None:
                    value = _age_of(value) if value else "<unknown>"
                cells.append(value)
            except (KeyError, TypeError, ValueError):
                cells.append("<unknown>")
        row: Obj = {"cells": cells}
        obj = _row_object(o, include)
        if obj is not None:
            row["object"] = obj
        rows.append(row)
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": resource_version, **(list_meta or {})},
                "rows": rows}
    if with_columns:
        out["columnDefinitions"] = [
            {"name": n, "type": "date" if t == "date" else t,
             "format": "name" if n == "Name" else "",
             "description": n, "priority": p} for n, t, p, _ in cols]
    else:
        out["columnDefinitions"] = None
    return out
