"""Traffic-agent injection: pure functions over plain Kubernetes dicts (no I/O).

The traffic-manager calls these through its kube adapter: it reads the workload and
its Service, calls `inject`/`restore`, and writes back what changed.

`inject(deployment, service, service_port, agent_image, manager_address)` adds a
`traffic-agent` container to the pod template and takes over every TCP port of the
Service (the agent answers there and forwards to the app on localhost):

- symbolic targetPort (`http`): the app container's port is renamed (`tm-http`) and
  the agent gets a port with the original name on a new containerPort (9900+i), so
  the Service, unchanged, now targets the agent; the app container's probes and
  lifecycle hooks that name the port follow the rename (they name `tm-http`), as a
  kubelet resolves a handler's named port among the container's own ports only;
- numeric targetPort (`8080`): the agent gets a port named `tp-8080` on a new
  containerPort and the Service's targetPort is rewritten to that name.

The original pod template and Service ports are kept as JSON in annotations
(`ANNOTATION_TEMPLATE` on the Deployment, `ANNOTATION_SERVICE_PORTS` on the Service),
so that `restore` gives them back exactly. `inject` on an injected workload starts
over from the originals, so it is idempotent and also refreshes the agent image.

Pod Security: the agent container meets the "restricted" profile by itself (non-root,
no privilege escalation, capabilities dropped, RuntimeDefault seccomp, read-only root
filesystem), so injection never makes a compliant pod non-compliant. It runs as the
pod's `runAsUser` when the pod sets a non-root one (so it reads the same volumes), else
as `manifests.RUN_AS_USER`; an agent port below 1024 adds `NET_BIND_SERVICE`, the one
capability "restricted" allows. `image_pull_secrets` are added to the pod's
`imagePullSecrets` (Secrets in the workload's namespace).

The agent learns everything from its environment (see `tp_cluster.agent.config`):
`AGENT_NAME`, `AGENT_NAMESPACE`, `AGENT_KIND`, `POD_NAME`/`POD_IP` (downward API),
`APP_CONTAINER`, `APP_PORTS` and `APP_MOUNTS` (JSON), `MANAGER_ADDRESS`. The app
container's `env`/`envFrom` are copied into the agent container under the prefix
`TP_APP_ENV_` (`$(VAR)` references and `envFrom` prefixes rewritten to match), so the
kubelet resolves configMap/secret/downward-API values and the agent reports them with
the prefix stripped. The app's volumes are mounted into the agent at `/tp-mounts/<path>`.

Kinds: Deployments, ReplicaSets (not those a Deployment owns) and StatefulSets (`KINDS`);
the workload annotation is on whichever it is. Limits: a Service that
also selects other workloads' pods loses those endpoints while a numeric port is
taken over; changes made to the pod template while the agent is installed are
undone by `restore` (it puts back the template exactly as it was).

Errors::

    InjectError            the workload or Service cannot be injected (one line, what to do)
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from tp_cluster.errors import ClusterError
from tp_cluster.manifests import RUN_AS_USER, restricted_container_security

ANNOTATION_TEMPLATE = "tp-jupyter.io/original-pod-template"
"""Workload annotation: the pod template before injection (JSON)."""

ANNOTATION_SERVICE_PORTS = "tp-jupyter.io/original-service-ports"
"""Service annotation: `spec.ports` before a numeric targetPort was rewritten (JSON)."""

KINDS = ("Deployment", "ReplicaSet", "StatefulSet")
"""The workload kinds an agent can be injected into (all have `spec.template`)."""

AGENT_CONTAINER = "traffic-agent"
ANNOTATION_REPLACED = "tp-jupyter.io/replaced-container"
"""On the pod template while `tp replace` took the app container (its name) out."""
AGENT_TMP_VOLUME = "tp-agent-tmp"
"""The agent container's scratch emptyDir, mounted at AGENT_TMP_DIR."""
AGENT_TMP_DIR = "/tp-agent-tmp"
"""The agent's TMPDIR: its own path, so the scratch volume never hides the image's /tmp."""
AGENT_SA_VOLUME = "tp-agent-token"
"""A projected token volume like the app's automounted one, served under MOUNT_ROOT."""
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ENV_PREFIX = "TP_APP_ENV_"
MOUNT_ROOT = "/tp-mounts"
DEFAULT_AGENT_PORT = 9900
"""First containerPort tried for the agent's listeners (Settings.intercept.agent_port_offset)."""

_MAX_PORT_NAME = 15
_VAR_REF = re.compile(r"\$\$|\$\(([^)]*)\)")


class InjectError(ClusterError, ValueError):
    """The workload or its Service cannot be injected; the message says what to do."""


def manager_address(namespace: str = "ambassador", port: int = 8081) -> str:
    """The in-cluster address of the traffic-manager's gRPC Service."""
    return f"traffic-manager.{namespace}:{port}"


def agent_installed(workload: dict[str, Any]) -> bool:
    annotations = workload.get("metadata", {}).get("annotations") or {}
    return ANNOTATION_TEMPLATE in annotations


def selects(service: dict[str, Any], workload: dict[str, Any]) -> bool:
    """Whether the Service's selector matches the workload's pod template labels."""
    selector = service.get("spec", {}).get("selector") or {}
    labels = workload.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def interceptable(kind: str, obj: dict[str, Any],
                  services: list[dict[str, Any]] | None = None) -> tuple[bool, str]:
    """(True, "") or (False, "not interceptable: <why>") for `tp list`.

    With `services` (those of the workload's namespace) it also checks that one selects
    the pods and that its ports can be taken over.
    """
    name = obj.get("metadata", {}).get("name", "?")
    owner = next((o for o in obj.get("metadata", {}).get("ownerReferences") or []
                  if o.get("kind") == "Deployment"), None)
    if kind == "ReplicaSet" and owner is not None:
        return False, (f"not interceptable: ReplicaSet {name} belongs to Deployment "
                       f"{owner.get('name')}; intercept the Deployment")
    if kind not in KINDS:
        return False, (f"not interceptable: {kind} is not a workload tp can intercept "
                       "(Deployments, ReplicaSets and StatefulSets are)")
    if services is None:
        return True, ""
    matching = [s for s in services if selects(s, obj)]
    if not matching:
        return False, (f"not interceptable: no Service selects the pods of {name}; "
                       "create a Service for it")
    reasons = []
    for service in matching:
        try:
            _plan(_original_template(obj), _original_ports(service), _service_name(service), name)
        except InjectError as exc:
            reasons.append(str(exc))
        else:
            return True, ""
    return False, f"not interceptable: {reasons[0]}"


def inject(deployment: dict[str, Any], service: dict[str, Any], service_port: str | int,
           agent_image: str, manager_address: str, *,
           first_agent_port: int = DEFAULT_AGENT_PORT,
           image_pull_secrets: list[str] | tuple[str, ...] = (),
           replace_app: bool = False
           ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Deployment with the agent, and the Service if it must change (else None).

    `service_port` (name or number; "" for the only port) must be one of the Service's
    TCP ports; every TCP port of the Service is taken over. `replace_app` (`tp replace`)
    also takes the app container out of the template: the agent, which carries copies of
    its env and mounts, is all that runs (`restore` brings the app back exactly).
    """
    kind = deployment.get("kind", "Deployment")
    ok, reason = interceptable(kind, deployment)
    if not ok:
        raise InjectError(reason)
    name = deployment.get("metadata", {}).get("name", "")
    if not selects(service, deployment):
        raise InjectError(f"Service {_service_name(service)} does not select the pods of "
                          f"{name}: choose the Service that does")
    template = _original_template(deployment)
    ports = _original_ports(service)
    _find_service_port(ports, service_port, _service_name(service))
    plan = _plan(template, ports, _service_name(service), name, first_agent_port)

    new_template = copy.deepcopy(template)
    containers = new_template["spec"]["containers"]
    app = next(c for c in containers if c.get("name") == plan.app_container)
    for container in containers:
        for port in container.get("ports") or []:
            renamed = plan.renames.get((container.get("name"), port.get("name")))
            if renamed:
                port["name"] = renamed
        _rename_handler_ports(container, plan.renames)
    containers.append(_agent_container(
        deployment, app, plan, agent_image, manager_address,
        pod_security=new_template["spec"].get("securityContext") or {},
        pod_spec=new_template["spec"]))
    # the agent's root filesystem is read-only: its /tmp (SFTP library probes, the volume
    # tar's spool) is a scratch emptyDir of its own
    volumes = new_template["spec"].setdefault("volumes", [])
    taken = [v["name"] for v in volumes if v.get("name") in (AGENT_TMP_VOLUME, AGENT_SA_VOLUME)]
    if taken:
        raise InjectError(f"{name} already has a volume named {taken[0]!r} that tp did not "
                          "add; rename it")
    volumes.append({"name": AGENT_TMP_VOLUME, "emptyDir": {}})
    if _automounts_token(new_template["spec"], app):
        # the app's automounted token is added at admission, so the template has no volume
        # for it: the agent serves an equivalent one where the app sees its own
        volumes.append(_token_volume())
    if replace_app:
        containers.remove(app)
        new_template.setdefault("metadata", {}).setdefault("annotations", {})[
            ANNOTATION_REPLACED] = plan.app_container
    if image_pull_secrets:
        pulls = new_template["spec"].setdefault("imagePullSecrets", [])
        pulls.extend({"name": n} for n in image_pull_secrets
                     if {"name": n} not in pulls)

    patched = copy.deepcopy(deployment)
    patched["spec"]["template"] = new_template
    patched.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION_TEMPLATE] = (
        json.dumps(template, sort_keys=True, separators=(",", ":")))

    new_service = copy.deepcopy(service)
    if ANNOTATION_SERVICE_PORTS in (service.get("metadata", {}).get("annotations") or {}):
        new_service["spec"]["ports"] = copy.deepcopy(ports)
        _drop_annotation(new_service, ANNOTATION_SERVICE_PORTS)
    if plan.numeric_rewrites:
        for port in new_service["spec"]["ports"]:
            key = _port_key(port)
            if key in plan.numeric_rewrites:
                port["targetPort"] = plan.numeric_rewrites[key]
        new_service.setdefault("metadata", {}).setdefault("annotations", {})[
            ANNOTATION_SERVICE_PORTS] = json.dumps(ports, sort_keys=True, separators=(",", ":"))
    return patched, (None if new_service == service else new_service)


def restore(deployment: dict[str, Any], service: dict[str, Any] | None
            ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Deployment and Service as they were before `inject` (Service None: unchanged)."""
    restored = copy.deepcopy(deployment)
    if agent_installed(deployment):
        restored["spec"]["template"] = _original_template(deployment)
        _drop_annotation(restored, ANNOTATION_TEMPLATE)
    if service is None:
        return restored, None
    annotations = service.get("metadata", {}).get("annotations") or {}
    if ANNOTATION_SERVICE_PORTS not in annotations:
        return restored, None
    new_service = copy.deepcopy(service)
    new_service["spec"]["ports"] = _original_ports(service)
    _drop_annotation(new_service, ANNOTATION_SERVICE_PORTS)
    return restored, new_service


# --- planning ---------------------------------------------------------------------------


class _Plan:
    def __init__(self, app_container: str) -> None:
        self.app_container = app_container
        self.agent_ports: list[dict[str, Any]] = []  # APP_PORTS entries
        self.renames: dict[tuple[str, str], str] = {}  # (container, port name) -> new name
        self.numeric_rewrites: dict[tuple[str, int], str] = {}  # service port -> agent port name


def _service_name(service: dict[str, Any]) -> str:
    return str(service.get("metadata", {}).get("name", "?"))


def _original_template(deployment: dict[str, Any]) -> dict[str, Any]:
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    if ANNOTATION_TEMPLATE in annotations:
        template: dict[str, Any] = json.loads(annotations[ANNOTATION_TEMPLATE])
        return template
    return copy.deepcopy(deployment.get("spec", {}).get("template") or {})


def _original_ports(service: dict[str, Any]) -> list[dict[str, Any]]:
    annotations = service.get("metadata", {}).get("annotations") or {}
    if ANNOTATION_SERVICE_PORTS in annotations:
        ports: list[dict[str, Any]] = json.loads(annotations[ANNOTATION_SERVICE_PORTS])
        return ports
    return copy.deepcopy(service.get("spec", {}).get("ports") or [])


def _drop_annotation(obj: dict[str, Any], key: str) -> None:
    annotations = obj.get("metadata", {}).get("annotations")
    if annotations is None:
        return
    annotations.pop(key, None)
    if not annotations:
        del obj["metadata"]["annotations"]


def _port_key(port: dict[str, Any]) -> tuple[str, int]:
    return str(port.get("name") or ""), int(port.get("port") or 0)


def _target(port: dict[str, Any]) -> str | int:
    target: Any = port.get("targetPort", port.get("port"))
    if isinstance(target, str) and target.isdigit():
        return int(target)
    return target if isinstance(target, str) else int(target)


def _find_service_port(ports: list[dict[str, Any]], wanted: str | int,
                       service: str) -> dict[str, Any]:
    tcp = [p for p in ports if (p.get("protocol") or "TCP") == "TCP"]
    listing = ", ".join(f"{p.get('name') or '-'}/{p.get('port')}" for p in tcp) or "none"
    if wanted in ("", None):
        if len(tcp) != 1:
            raise InjectError(f"Service {service} has {len(tcp)} TCP ports ({listing}): "
                              "name one with -p LOCALPORT:SVCPORT")
        return tcp[0]
    for port in tcp:
        if str(wanted) in (str(port.get("name") or ""), str(port.get("port"))):
            return port
    raise InjectError(f"Service {service} has no TCP port {wanted!r} (it has {listing}): "
                      "choose one of those with -p LOCALPORT:SVCPORT")


def _plan(template: dict[str, Any], ports: list[dict[str, Any]], service: str,
          workload: str, first_agent_port: int = DEFAULT_AGENT_PORT) -> _Plan:
    containers = template.get("spec", {}).get("containers") or []
    if not containers:
        raise InjectError(f"{workload} has no containers")
    if any(c.get("name") == AGENT_CONTAINER for c in containers):
        raise InjectError(f"{workload} already has a container named {AGENT_CONTAINER!r} "
                          "that tp did not add; rename it")
    tcp = [p for p in ports if (p.get("protocol") or "TCP") == "TCP"]
    if not tcp:
        raise InjectError(f"Service {service} has no TCP port")
    used = {int(p.get("containerPort", 0)) for c in containers for p in c.get("ports") or []}
    names = {str(p.get("name")) for c in containers for p in c.get("ports") or [] if p.get("name")}
    next_port = first_agent_port
    plan: _Plan | None = None
    by_target: dict[str | int, dict[str, Any]] = {}

    for sp in tcp:
        target = _target(sp)
        entry = by_target.get(target)
        if entry is None:
            if isinstance(target, str):
                owner = next((c for c in containers for p in c.get("ports") or []
                              if p.get("name") == target), None)
                if owner is None:
                    raise InjectError(f"Service {service} targets port name {target!r}, which "
                                      f"no container of {workload} declares; fix the Service")
                app_port = next(int(p["containerPort"]) for p in owner.get("ports") or []
                                if p.get("name") == target)
                agent_name = target
                renamed = f"tm-{target}"[:_MAX_PORT_NAME].rstrip("-")
                if renamed in names:
                    raise InjectError(f"cannot rename port {target!r} of {workload}: "
                                      f"{renamed!r} is taken")
            else:
                owner = next((c for c in containers for p in c.get("ports") or []
                              if int(p.get("containerPort", 0)) == target), containers[0])
                app_port = target
                agent_name = f"tp-{target}"
                renamed = ""
            if plan is None:
                plan = _Plan(str(owner.get("name")))
            while next_port in used:
                next_port += 1
            used.add(next_port)
            if renamed:
                plan.renames[(str(owner.get("name")), agent_name)] = renamed
            entry = {"name": agent_name, "port": next_port, "app_port": app_port,
                     "protocol": "TCP", "service_ports": []}
            by_target[target] = entry
            plan.agent_ports.append(entry)
        entry["service_ports"].append({"name": str(sp.get("name") or ""),
                                       "port": int(sp.get("port") or 0)})
        if isinstance(target, int) and plan is not None:
            plan.numeric_rewrites[_port_key(sp)] = str(entry["name"])
    assert plan is not None  # tcp is not empty
    return plan


_PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")


def _rename_handler_ports(container: dict[str, Any], renames: dict[tuple[str, str], str]) -> None:
    """Point the container's probes and lifecycle hooks at its renamed ports.

    A handler's named port is resolved among the container's own ports, so once `http`
    moves to the agent a probe naming `http` would find nothing and the pod would never
    become Ready. `restore` needs no inverse: it puts back the annotated template.
    """
    name = str(container.get("name"))
    handlers = [container.get(p) for p in _PROBES]
    handlers += [(container.get("lifecycle") or {}).get(h) for h in _HOOKS]
    for handler in handlers:
        for action in ("httpGet", "tcpSocket"):
            target = (handler or {}).get(action)
            if isinstance(target, dict) and isinstance(target.get("port"), str):
                renamed = renames.get((name, target["port"]))
                if renamed:
                    target["port"] = renamed


# --- the agent container ----------------------------------------------------------------


def _rewrite_refs(value: str, known: set[str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is not None and name in known:
            return f"$({ENV_PREFIX}{name})"
        return match.group(0)

    return _VAR_REF.sub(sub, value)


def _app_env(app: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The app container's env/envFrom, renamed under ENV_PREFIX, with references fixed."""
    env: list[dict[str, Any]] = []
    known: set[str] = set()
    for var in app.get("env") or []:
        item = copy.deepcopy(var)
        item["name"] = ENV_PREFIX + str(var["name"])
        if "value" in item and isinstance(item["value"], str):
            # $(X) refers to variables defined before this one (Kubernetes semantics)
            item["value"] = _rewrite_refs(item["value"], known)
        resource = item.get("valueFrom", {}).get("resourceFieldRef")
        if resource is not None and not resource.get("containerName"):
            resource["containerName"] = app.get("name")
        env.append(item)
        known.add(str(var["name"]))
    env_from = []
    for source in app.get("envFrom") or []:
        item = copy.deepcopy(source)
        item["prefix"] = ENV_PREFIX + str(source.get("prefix") or "")
        env_from.append(item)
    return env, env_from


_PRIVILEGED_PORTS = 1024


def _agent_security(plan: _Plan, pod_security: dict[str, Any]) -> dict[str, Any]:
    """Restricted by itself; the pod's non-root uid if it has one (same volume access)."""
    pod_uid = pod_security.get("runAsUser")
    uid = None if isinstance(pod_uid, int) and pod_uid > 0 else RUN_AS_USER
    low = any(int(p["port"]) < _PRIVILEGED_PORTS for p in plan.agent_ports)
    return restricted_container_security(uid, ["NET_BIND_SERVICE"] if low else None)


def _automounts_token(pod_spec: dict[str, Any], app: dict[str, Any]) -> bool:
    return (pod_spec.get("automountServiceAccountToken") is not False
            and not any(str(m.get("mountPath", "")).rstrip("/") == SA_DIR
                        for m in app.get("volumeMounts") or []))


def _token_volume() -> dict[str, Any]:
    """What the API server's admission mounts as `kube-api-access-*`."""
    return {"name": AGENT_SA_VOLUME, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "optional": True,
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}


def _agent_container(deployment: dict[str, Any], app: dict[str, Any], plan: _Plan,
                     image: str, manager: str, *, pod_security: dict[str, Any],
                     pod_spec: dict[str, Any]) -> dict[str, Any]:
    meta = deployment.get("metadata", {})
    mounts = [{"name": m["name"], "mountPath": m["mountPath"],
               "readOnly": bool(m.get("readOnly", False))}
              for m in app.get("volumeMounts") or []]
    if _automounts_token(pod_spec, app):
        mounts.append({"name": AGENT_SA_VOLUME, "mountPath": SA_DIR, "readOnly": True})
    agent_mounts = []
    for mount in app.get("volumeMounts") or []:
        item = copy.deepcopy(mount)
        item["mountPath"] = MOUNT_ROOT + "/" + str(mount["mountPath"]).lstrip("/")
        agent_mounts.append(item)
    app_env, app_env_from = _app_env(app)

    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    env = [
        {"name": "AGENT_NAME", "value": str(meta.get("name", ""))},
        {"name": "AGENT_NAMESPACE", "valueFrom": field("metadata.namespace")},
        {"name": "AGENT_KIND", "value": str(deployment.get("kind", "Deployment"))},
        {"name": "POD_NAME", "valueFrom": field("metadata.name")},
        {"name": "POD_IP", "valueFrom": field("status.podIP")},
        {"name": "APP_CONTAINER", "value": plan.app_container},
        {"name": "APP_PORTS", "value": json.dumps(plan.agent_ports, separators=(",", ":"))},
        {"name": "APP_MOUNTS", "value": json.dumps(mounts, separators=(",", ":"))},
        {"name": "MANAGER_ADDRESS", "value": manager},
        {"name": "TMPDIR", "value": AGENT_TMP_DIR},
        *app_env,
    ]
    container: dict[str, Any] = {
        "name": AGENT_CONTAINER,
        "image": image,
        "ports": [{"name": p["name"], "containerPort": p["port"], "protocol": "TCP"}
                  for p in plan.agent_ports],
        "env": env,
        "readinessProbe": {"tcpSocket": {"port": plan.agent_ports[0]["port"]},
                           "periodSeconds": 2, "failureThreshold": 3},
        "securityContext": _agent_security(plan, pod_security),
    }
    if app_env_from:
        container["envFrom"] = app_env_from
    container["volumeMounts"] = [*agent_mounts, {"name": AGENT_TMP_VOLUME,
                                                  "mountPath": AGENT_TMP_DIR}]
    if _automounts_token(pod_spec, app):
        container["volumeMounts"].append({"name": AGENT_SA_VOLUME, "readOnly": True,
                                          "mountPath": MOUNT_ROOT + SA_DIR})
    return container
