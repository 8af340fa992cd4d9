"""Defaults the API server fills in, as a real Kubernetes API server does.

Clients compare what they sent with what they read back (kubectl's 3-way apply, rollout
checks, our own agent injection that restores a workload exactly), so the defaults must be
the upstream ones: `SetDefaults_*` of k8s.io/kubernetes/pkg/apis/*/v1 plus the few that
admission adds to Pods (`serviceAccountName: default`). Defaults only fill what is absent;
they never overwrite a value the client sent, so applying them twice changes nothing.

`apply_defaults(obj, resource)` works in place and never raises on odd input (a wrong type
is left for validation to report).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tp_protocol.settings import get_settings

from .resources import ResourceType

Obj = dict[str, Any]

_DEFAULT_MODE = 0o644  # 420: configMap/secret/downwardAPI/projected volume files


def apply_defaults(obj: Obj, resource: ResourceType) -> None:
    """Fill the defaults of `resource`'s kind into `obj` (in place)."""
    if not isinstance(obj, dict):
        return
    fill = _BY_KIND.get((resource.group, resource.kind))
    if fill is not None:
        fill(obj)


def _dict(parent: Obj, key: str) -> Obj | None:
    """`parent[key]` as a dict, created when absent; None when it holds something else."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _dicts(parent: Obj, key: str) -> list[Obj]:
    value = parent.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# ---------------------------------------------------------------- pods and templates

def _pod(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        pod_spec(spec)
        # Added by the ServiceAccount admission plugin, for pods only (not templates).
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("priority", 0)
        status = obj.get("status")
        if not status:
            obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def pod_spec(spec: Obj) -> None:
    """Defaults of a PodSpec (pods and pod templates alike)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", get_settings().node.default_grace_period)
    spec.setdefault("enableServiceLinks", True)
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in _dicts(spec, key):
            _container(container)
    for volume in _dicts(spec, "volumes"):
        _volume(volume)


def _container(c: Obj) -> None:
    image = c.get("image")
    if isinstance(image, str):
        c.setdefault("imagePullPolicy", image_pull_policy(image))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if c.get("resources") is None:
        c["resources"] = {}
    for port in _dicts(c, "ports"):
        port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if isinstance(probe, dict):
            _probe(probe)
    for hook_name in ("postStart", "preStop"):
        lifecycle = c.get("lifecycle")
        hook = lifecycle.get(hook_name) if isinstance(lifecycle, dict) else None
        if isinstance(hook, dict) and isinstance(hook.get("httpGet"), dict):
            _http_get(hook["httpGet"])
    for env in _dicts(c, "env"):
        source = env.get("valueFrom")
        if isinstance(source, dict) and isinstance(source.get("fieldRef"), dict):
            source["fieldRef"].setdefault("apiVersion", "v1")


def image_pull_policy(image: str) -> str:
    """`Always` for `:latest` or an untagged image, else `IfNotPresent` (as upstream)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        return "Always"
    return "IfNotPresent"


def _probe(p: Obj) -> None:
    p.setdefault("timeoutSeconds", 1)
    p.setdefault("periodSeconds", 10)
    p.setdefault("successThreshold", 1)
    p.setdefault("failureThreshold", 3)
    if isinstance(p.get("httpGet"), dict):
        _http_get(p["httpGet"])


def _http_get(h: Obj) -> None:
    h.setdefault("path", "/")
    h.setdefault("scheme", "HTTP")


def _volume(v: Obj) -> None:
    sources = [k for k in v if k != "name"]
    if not sources:
        v["emptyDir"] = {}
    for key in ("configMap", "secret", "downwardAPI", "projected"):
        source = v.get(key)
        if isinstance(source, dict):
            source.setdefault("defaultMode", _DEFAULT_MODE)
    downward = v.get("downwardAPI")
    if isinstance(downward, dict):
        for item in _dicts(downward, "items"):
            if isinstance(item.get("fieldRef"), dict):
                item["fieldRef"].setdefault("apiVersion", "v1")


def qos_class(spec: Obj) -> str:
    """Guaranteed / Burstable / BestEffort from the containers' requests and limits."""
    containers = _dicts(spec, "containers") + _dicts(spec, "initContainers")
    any_set = False
    guaranteed = True
    for c in containers:
        found = c.get("resources")
        resources: Obj = found if isinstance(found, dict) else {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            if limit is None or requests.get(name, limit) != limit:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _template(spec: Obj) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        pod = template.get("spec")
        if isinstance(pod, dict):
            pod_spec(pod)


# ---------------------------------------------------------------- workloads

def _deployment(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", get_settings().controllers.progress_deadline_default)
    strategy = _dict(spec, "strategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _dict(strategy, "rollingUpdate")
            if rolling is not None:
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    _template(spec)


def _replicaset(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        _template(spec)


def _statefulset(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy",
                    {"whenDeleted": "Retain", "whenScaled": "Retain"})
    strategy = _dict(spec, "updateStrategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _dict(strategy, "rollingUpdate")
            if rolling is not None:
                rolling.setdefault("partition", 0)
    _template(spec)


def _daemonset(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = _dict(spec, "updateStrategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _dict(strategy, "rollingUpdate")
            if rolling is not None:
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
    _template(spec)


def job_spec(spec: Obj, uid: str | None, name: str | None) -> None:
    """Job defaults, and (with the Job's uid) the selector and template labels the
    API server generates unless `manualSelector` is set."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = _dict(spec, "template")
    if template is not None and uid and name and not spec.get("manualSelector"):
        meta = _dict(template, "metadata")
        if meta is not None:
            labels = _dict(meta, "labels")
            if labels is not None:
                for key in ("batch.kubernetes.io/controller-uid", "controller-uid"):
                    labels.setdefault(key, uid)
                for key in ("batch.kubernetes.io/job-name", "job-name"):
                    labels.setdefault(key, name)
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    _template(spec)


def _job(obj: Obj) -> None:
    spec = obj.get("spec")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    if isinstance(spec, dict):
        job_spec(spec, meta.get("uid"), meta.get("name"))


def _pvc(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")


def _cronjob(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job = _dict(spec, "jobTemplate")
    inner = _dict(job, "spec") if job is not None else None
    if inner is not None:
        _template(inner)


# ---------------------------------------------------------------- services and networking

def _service(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in _dicts(spec, "ports"):
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])
    if spec["type"] != "ExternalName":
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if obj.get("status") is None:
        obj["status"] = {"loadBalancer": {}}


def _endpoints(obj: Obj) -> None:
    for subset in _dicts(obj, "subsets"):
        for port in _dicts(subset, "ports"):
            port.setdefault("protocol", "TCP")


def _endpointslice(obj: Obj) -> None:
    for port in _dicts(obj, "ports"):
        port.setdefault("protocol", "TCP")
        port.setdefault("name", "")


# ---------------------------------------------------------------- the rest

def _namespace(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is not None:
        spec.setdefault("finalizers", ["kubernetes"])
    status = _dict(obj, "status")
    if status is not None:
        status.setdefault("phase", "Active")


def _secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    # stringData is write-only: upstream's conversion merges it into data (base64), where
    # it wins over a data key of the same name, and never stores or returns it.
    strings = obj.pop("stringData", None)
    if isinstance(strings, dict) and strings:
        data = _dict(obj, "data")
        if data is not None:
            data.update({str(k): base64.b64encode(str(v).encode()).decode()
                         for k, v in strings.items()})


def _binding(obj: Obj) -> None:
    for subject in _dicts(obj, "subjects"):
        if subject.get("kind") in ("User", "Group"):
            subject.setdefault("apiGroup", "rbac.authorization.k8s.io")


_BY_KIND: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "Pod"): _pod,
    ("", "Service"): _service,
    ("", "Endpoints"): _endpoints,
    ("", "Namespace"): _namespace,
    ("", "Secret"): _secret,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replicaset,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cronjob,
    ("", "PersistentVolumeClaim"): _pvc,
    ("discovery.k8s.io", "EndpointSlice"): _endpointslice,
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding,
}
