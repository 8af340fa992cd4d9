"""REST semantics of the API server: routing of resource paths, CRUD, watch,
subresources, deletion (finalizers, propagation, graceful pods, namespaces),
Services' ClusterIP/NodePort allocation.

Every failure is raised as an `errors.ApiError` and rendered as a Status by the
server's middleware.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import ipaddress
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from tp_protocol.settings import ApiServerSettings, get_settings

from tp_sandbox.apiserver import crd, errors, ext, podsecurity, protobuf, ssa, tables
from tp_sandbox.apiserver.auth import Attributes, Authenticator, Authorizer, User
from tp_sandbox.apiserver.resources import ResourceType, by_plural, served
from tp_sandbox.apiserver.selection import field_selector, label_selector
from tp_sandbox.apiserver.store import Obj, Store, Watcher, name_of

log = logging.getLogger(__name__)

_GENERATION_KINDS = {"Deployment", "ReplicaSet", "Pod", "StatefulSet", "DaemonSet", "Job",
                     "CronJob", "CustomResourceDefinition"}
# Create resets status for these, as their registry strategies do.
_RESET_STATUS = {"Deployment": {}, "ReplicaSet": {"replicas": 0}, "Service": {"loadBalancer": {}},
                 "Pod": {"phase": "Pending"},
                 "StatefulSet": {"replicas": 0, "availableReplicas": 0},
                 "DaemonSet": {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                               "desiredNumberScheduled": 0, "numberReady": 0},
                 "Job": {}, "CronJob": {}, "PersistentVolumeClaim": {"phase": "Pending"}}
_SEP = (",", ":")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_METHOD_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}


def now_rfc3339(offset: float = 0) -> str:
    t = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def rt_of(group: str, plural: str) -> ResourceType:
    for r in served():
        if (r.group, r.plural) == (group, plural):
            return r
    raise KeyError(plural)


@dataclass
class Target:
    """A resource request, from its path."""

    rt: ResourceType
    namespace: str  # "" for cluster-scoped resources and all-namespaces collections
    name: str
    sub: str
    legacy_watch: bool

    def verb(self, method: str, query: dict[str, str]) -> str:
        if self.sub in ("exec", "portforward", "attach"):
            return "create"  # as upstream does for WebSocket upgrades of these
        if method == "GET" and not self.name:
            return "watch" if self.legacy_watch or _true(query.get("watch")) else "list"
        if method == "DELETE" and not self.name:
            return "deletecollection"
        return _METHOD_VERBS.get(method, method.lower())


def _true(v: str | None) -> bool:
    return v in ("true", "1", "True")


def parse_target(path: str) -> Target | None:
    """Target of /api/v1/... or /apis/g/v/...; None when the path is not a resource."""
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 3 and segs[0] == "api":
        group, version, rest = "", segs[1], segs[2:]
    elif len(segs) >= 4 and segs[0] == "apis":
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        return None
    legacy = bool(rest) and rest[0] == "watch"
    if legacy:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        inner = by_plural(group, version, rest[2])
        if inner is not None and inner.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    rt = by_plural(group, version, rest[0])
    if rt is None:
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if rt.namespaced and name and not namespace:
        return None
    if sub and sub not in rt.subresources:
        return None
    return Target(rt, namespace, name, sub, legacy)


def decode_body(raw: bytes, content_type: str) -> Obj:
    """A request body as an object (JSON, YAML, or protobuf as kubectl's typed clients
    send)."""
    if not raw:
        raise errors.BadRequest("the request body is empty: send the object as JSON")
    if content_type == protobuf.MEDIA_TYPE:
        return protobuf.decode(raw)
    try:
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
            data = yaml.safe_load(raw)
        elif content_type in ("application/json", "", "application/octet-stream",
                              "text/plain"):
            data = json.loads(raw)
        else:
            raise errors.UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json, application/yaml (got {content_type})")
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.BadRequest(f"the object provided is unrecognized: {exc}") from exc
    if not isinstance(data, dict):
        raise errors.BadRequest("the object provided is unrecognized: send a JSON object")
    return data


def _status_success(rt: ResourceType, obj: Obj) -> Obj:
    md = obj.get("metadata", {})
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": md.get("name"), "group": rt.group, "kind": rt.plural,
                        "uid": md.get("uid")}}


def _strip_rv(obj: Obj) -> Obj:
    md = {k: v for k, v in obj.get("metadata", {}).items()
          if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": md}


@dataclass
class DeleteOptions:
    propagation: str = "Background"
    grace: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False
    orphan_dependents: bool | None = None


class Api:
    def __init__(self, store: Store, authn: Authenticator, settings: ApiServerSettings,
                 service_cidr: str, state_dir: Path) -> None:
        self.store = store
        self.authn = authn
        self.authz = Authorizer(store)
        self.settings = settings
        self.service_net = ipaddress.ip_network(service_cidr)
        self.state_dir = state_dir
        self.stopping = asyncio.Event()
        lo, _, hi = settings.service_node_port_range.partition("-")
        self.node_ports = (int(lo), int(hi))

    # -- helpers -------------------------------------------------------------
    def rt(self, group: str, plural: str) -> ResourceType:
        return rt_of(group, plural)

    def require(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.NotFound.of(rt.plural, rt.group, name)
        return obj

    def _check_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        """Creating into a missing namespace is 404, into a terminating one 403."""
        ns = self.store.get(self.rt("", "namespaces"), "", namespace)
        if ns is None:
            raise errors.NotFound.of("namespaces", "", namespace)
        if ns.get("status", {}).get("phase") == "Terminating":
            raise errors.Forbidden(
                f'{rt.plural} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                {"name": name, "group": rt.group, "kind": rt.plural,
                 "causes": [{"reason": "NamespaceTerminating",
                             "message": f"namespace {namespace} is being terminated",
                             "field": "metadata.namespace"}]})

    def _pod_security(self, rt: ResourceType, namespace: str, name: str, obj: Obj,
                      old: Obj | None) -> list[str]:
        """The PodSecurity admission plugin: Forbidden for a pod, warnings otherwise."""
        if not rt.namespaced or podsecurity.pod_spec_of(rt.kind, obj) is None:
            return []
        ns = self.store.get(self.rt("", "namespaces"), "", namespace)
        try:
            return podsecurity.admit(rt.kind, rt.plural, name, obj, old=old, namespace=ns)
        except podsecurity.PodSecurityViolation as exc:
            raise errors.Forbidden(str(exc), {"name": name, "kind": rt.plural}) from exc

    @staticmethod
    def _check_kind(rt: ResourceType, obj: Obj) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != rt.api_version:
            raise errors.BadRequest(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({rt.api_version})")
        if kind and kind != rt.kind:
            raise errors.BadRequest(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind

    # -- create --------------------------------------------------------------
    def create(self, rt: ResourceType, namespace: str, obj: Obj, *, dry_run: bool = False,
               field_validation: str = "Strict", manager: str = "",
               managed: list[Obj] | None = None) -> tuple[Obj, list[str]]:
        """`manager` records an Update entry in managedFields; `managed` (server-side
        apply) gives the entries outright."""
        self._check_kind(rt, obj)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise errors.BadRequest("metadata must be an object")
        if rt.namespaced:
            body_ns = md.get("namespace")
            if body_ns and body_ns != namespace:
                raise errors.BadRequest("the namespace of the provided object does not match "
                                        "the namespace sent on the request")
            md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        if md.get("resourceVersion"):
            raise errors.BadRequest("resourceVersion should not be set on objects to be "
                                    "created: remove metadata.resourceVersion")
        if not md.get("name"):
            if md.get("generateName"):
                for _ in range(20):
                    name = md["generateName"] + "".join(
                        secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
                    if self.store.get(rt, namespace, name) is None:
                        break
                md["name"] = name
            else:
                raise errors.Invalid.of(rt.kind, rt.group, "", [{
                    "reason": "FieldValueRequired", "field": "metadata.name",
                    "message": "Required value: name or generateName is required"}])
        name = md["name"]
        if rt.namespaced:
            self._check_namespace(rt, namespace, name)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        if rt.kind in _GENERATION_KINDS:
            md["generation"] = 1
        if rt.kind in _RESET_STATUS:
            obj["status"] = copy.deepcopy(_RESET_STATUS[rt.kind])
        if rt.kind == "Namespace":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        ext.apply_defaults(obj, rt)
        warnings = ext.validate(obj, rt, None, field_validation)
        warnings += self._pod_security(rt, namespace, name, obj, None)
        if self.store.get(rt, namespace if rt.namespaced else "", name) is not None:
            raise errors.AlreadyExists.of(rt.plural, rt.group, name)
        if rt.kind == "Service":
            self._allocate_service(obj, None)
        if managed is None and manager:
            managed = ssa.managed_after_write(None, obj, manager, rt)
        if managed:
            md["managedFields"] = managed
        if rt.kind == crd.KIND:
            obj["status"] = crd.established(obj)
        if dry_run:
            return obj, warnings
        stored = self.store.put(rt, obj)
        if rt.kind == crd.KIND:
            crd.serve(stored)
        if rt.kind == "Namespace":
            self.populate_namespace(name)
        return stored, warnings

    def populate_namespace(self, namespace: str) -> None:
        """What real clusters' controllers add to each namespace: the `default`
        ServiceAccount and the kube-root-ca.crt ConfigMap."""
        sa = self.rt("", "serviceaccounts")
        if self.store.get(sa, namespace, "default") is None:
            self.create(sa, namespace, {"metadata": {"name": "default"}})
        cm = self.rt("", "configmaps")
        ca = self.state_dir / "pki" / "ca.crt"
        if ca.exists() and self.store.get(cm, namespace, "kube-root-ca.crt") is None:
            self.create(cm, namespace, {"metadata": {
                "name": "kube-root-ca.crt",
                "annotations": {"kubernetes.io/description": "Contains a CA bundle that can "
                                "be used to verify the kube-apiserver when using internal "
                                "endpoints such as the internal service IP or kubernetes."
                                "default.svc. No other usage is guaranteed across "
                                "distributions of Kubernetes clusters."}},
                "data": {"ca.crt": ca.read_text()}})

    # -- update --------------------------------------------------------------
    def update(self, rt: ResourceType, namespace: str, name: str, obj: Obj, *,
               mode: str = "main", dry_run: bool = False, field_validation: str = "Strict",
               manager: str = "", managed: list[Obj] | None = None, subresource: str = "",
               ) -> tuple[Obj, list[str]]:
        """PUT semantics; `mode` is "main", "status" or "finalize"; `manager` and
        `managed` as for `create` (`subresource` names the write's, e.g. "scale")."""
        self._check_kind(rt, obj)
        old = self.require(rt, namespace, name)
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = obj["metadata"] = {}
        if md.get("name") and md["name"] != name:
            raise errors.BadRequest(f"the name of the object ({md['name']}) does not match "
                                    f"the name on the URL ({name})")
        if rt.namespaced and md.get("namespace") and md["namespace"] != namespace:
            raise errors.BadRequest("the namespace of the provided object does not match "
                                    "the namespace sent on the request")
        if md.get("resourceVersion") and md["resourceVersion"] != \
                old["metadata"]["resourceVersion"]:
            raise errors.Conflict.stale(rt.plural, rt.group, name)
        sent_managed: list[Obj] | None = None
        if mode == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
        elif mode == "finalize":
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["finalizers"] = list(
                (obj.get("spec") or {}).get("finalizers") or [])
        else:
            new = obj
            old_md = old["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "name", "namespace"):
                if k in old_md:
                    md[k] = old_md[k]
                else:
                    md.pop(k, None)
            # Sent managedFields replace the live ones (kubectl's client-side to
            # server-side apply migration patches them); absent or empty keeps them.
            incoming = md.pop("managedFields", None)
            if isinstance(incoming, list) and incoming:
                sent_managed = ssa.normalise(incoming)
            if "status" in rt.subresources or rt.kind == "Namespace":
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if rt.kind == "Namespace":
                new["spec"] = copy.deepcopy(old.get("spec", {}))
            if old_md.get("deletionTimestamp"):
                added = set(md.get("finalizers") or []) - set(old_md.get("finalizers") or [])
                if added:
                    raise errors.Forbidden(
                        f"no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {sorted(added)!r}")
            ext.apply_defaults(new, rt)
        if rt.kind in _GENERATION_KINDS and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        warnings = ext.validate(new, rt, old, field_validation)
        if mode == "main":
            warnings += self._pod_security(rt, namespace, name, new, old)
        if rt.kind == "Namespace" and mode == "main":
            warnings += podsecurity.namespace_warnings(
                new, old, self.store.list(self.rt("", "pods"), name))
        if rt.kind == "Service" and mode == "main":
            self._allocate_service(new, old)
        subresource = subresource or ("status" if mode == "status" else "")
        if managed is None and manager:
            managed = ssa.managed_after_write(old, new, manager, rt, subresource,
                                              base=sent_managed)
        elif managed is None:
            managed = sent_managed or old["metadata"].get("managedFields")
        if managed:
            new["metadata"]["managedFields"] = managed
        else:
            new["metadata"].pop("managedFields", None)
        if _strip_rv(new) == _strip_rv(old) and new["metadata"].get("managedFields") == \
                old["metadata"].get("managedFields"):
            return old, warnings  # no-op writes do not bump the RV, as etcd3 storage
        if dry_run:
            return new, warnings
        if self._finalized(rt, new, old):
            return self.store.remove(rt, new), warnings
        if rt.kind == crd.KIND and mode == "main":
            new["status"] = crd.established(new)
            crd.serve(new)
        return self.store.put(rt, new), warnings

    @staticmethod
    def _finalized(rt: ResourceType, obj: Obj, old: Obj) -> bool:
        """Deleted by this update: marked with no grace left and nothing to wait for (as
        upstream's shouldDeleteDuringUpdate; a pod still terminating is not)."""
        old_md = old["metadata"]
        if not old_md.get("deletionTimestamp") or obj["metadata"].get("finalizers"):
            return False
        if old_md.get("deletionGracePeriodSeconds", 0) != 0:
            return False
        return not (rt.kind == "Namespace" and (obj.get("spec") or {}).get("finalizers"))

    # -- patch ---------------------------------------------------------------
    def patch(self, rt: ResourceType, namespace: str, name: str, body: bytes,
              content_type: str, *, mode: str = "main", dry_run: bool = False,
              field_validation: str = "Strict", manager: str = "") -> tuple[Obj, list[str]]:
        old = self.require(rt, namespace, name)
        patched = ext.apply_patch(copy.deepcopy(old), body, content_type, rt)
        if not isinstance(patched, dict):
            raise errors.BadRequest("the patch does not produce an object")
        return self.update(rt, namespace, name, patched, mode=mode, dry_run=dry_run,
                           field_validation=field_validation, manager=manager)

    def apply(self, rt: ResourceType, namespace: str, name: str, body: bytes, *,
              manager: str, force: bool, mode: str = "main", dry_run: bool = False,
              field_validation: str = "Strict") -> tuple[Obj, list[str], bool]:
        """Server-side apply; returns (object, warnings, created)."""
        config = ssa.decode_config(body)
        self._check_kind(rt, config)
        md = config.setdefault("metadata", {})
        if not isinstance(md, dict) or md.get("name", name) != name:
            raise errors.BadRequest(f"the name of the object ({md.get('name')}) does not "
                                    f"match the name on the URL ({name})")
        md["name"] = name
        subresource = "status" if mode == "status" else ""
        current = self.store.get(rt, namespace if rt.namespaced else "", name)
        merged, managed = ssa.apply(current, config, manager, rt, force=force,
                                    subresource=subresource)
        if current is None:
            if mode != "main":
                raise errors.NotFound.of(rt.plural, rt.group, name)
            obj, warnings = self.create(rt, namespace, merged, dry_run=dry_run,
                                        field_validation=field_validation, managed=managed)
            return obj, warnings, True
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        obj, warnings = self.update(rt, namespace, name, merged, mode=mode, dry_run=dry_run,
                                    field_validation=field_validation, managed=managed)
        return obj, warnings, False

    # -- delete --------------------------------------------------------------
    def delete(self, rt: ResourceType, namespace: str, name: str, opts: DeleteOptions
               ) -> tuple[Obj, bool]:
        """Returns (object, deleted-now)."""
        old = self.require(rt, namespace, name)
        md = old["metadata"]
        if opts.precondition_uid and opts.precondition_uid != md.get("uid"):
            raise errors.Conflict(
                f"Precondition failed: UID in precondition: {opts.precondition_uid}, "
                f"UID in object meta: {md.get('uid')}",
                {"name": name, "group": rt.group, "kind": rt.plural})
        if opts.precondition_rv and opts.precondition_rv != md.get("resourceVersion"):
            raise errors.Conflict(
                f"Precondition failed: ResourceVersion in precondition: "
                f"{opts.precondition_rv}, ResourceVersion in object meta: "
                f"{md.get('resourceVersion')}",
                {"name": name, "group": rt.group, "kind": rt.plural})
        new = copy.deepcopy(old)
        nmd = new["metadata"]
        finalizers = list(nmd.get("finalizers") or [])
        if opts.propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        elif opts.propagation == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if finalizers:
            nmd["finalizers"] = finalizers
        graceful = False
        if rt.kind == "Pod":
            grace = self._pod_grace(old, opts.grace)
            if grace == 0 and nmd.get("deletionTimestamp"):
                nmd["deletionGracePeriodSeconds"] = 0  # the kubelet's final delete
            if grace > 0:
                graceful = True
                if nmd.get("deletionTimestamp"):
                    grace = min(grace, int(nmd.get("deletionGracePeriodSeconds") or grace))
                if nmd.get("deletionGracePeriodSeconds") != grace:
                    nmd["deletionTimestamp"] = now_rfc3339(grace)
                    nmd["deletionGracePeriodSeconds"] = grace
        elif rt.kind == "Namespace":
            nmd.setdefault("deletionTimestamp", now_rfc3339())
            nmd.setdefault("deletionGracePeriodSeconds", 0)
            new["status"] = {**(new.get("status") or {}), "phase": "Terminating"}
            graceful = bool((new.get("spec") or {}).get("finalizers"))
        if finalizers and not nmd.get("deletionTimestamp"):
            nmd["deletionTimestamp"] = now_rfc3339()
            nmd["deletionGracePeriodSeconds"] = 0
        if graceful or finalizers:
            if opts.dry_run or new == old:
                return new if opts.dry_run else old, False
            return self.store.put(rt, new), False
        if opts.dry_run:
            return old, True
        if rt.kind == crd.KIND:
            crd.remove(self, old)
        # Service IPs and node ports are derived from live Services: nothing to release.
        return self.store.remove(rt, old), True

    def _pod_grace(self, pod: Obj, requested: int | None) -> int:
        """0 means delete now: unbound pods, pods on a node that is not Ready, finished
        pods; others get the requested or spec grace period."""
        if requested == 0:
            return 0
        node_name = pod.get("spec", {}).get("nodeName")
        if not node_name:
            return 0
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        node = self.store.get(self.rt("", "nodes"), "", node_name)
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (node or {}).get("status", {}).get("conditions") or [])
        if not ready:
            return 0
        if requested is not None:
            return max(requested, 1)
        default = get_settings().node.default_grace_period
        return int(pod.get("spec", {}).get("terminationGracePeriodSeconds", default))

    # -- services ------------------------------------------------------------
    def _allocate_service(self, svc: Obj, old: Obj | None) -> None:
        spec = svc.setdefault("spec", {})
        name = name_of(svc)
        stype = spec.get("type") or "ClusterIP"
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            return
        old_spec = (old or {}).get("spec", {})
        ip = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
        if old is not None and old_spec.get("clusterIP"):
            if not ip:
                ip = old_spec["clusterIP"]
            elif ip != old_spec["clusterIP"]:
                raise errors.Invalid.of("Service", "", name, [{
                    "reason": "FieldValueInvalid", "field": "spec.clusterIPs[0]",
                    "message": f'Invalid value: []string{{"{ip}"}}: may not change once set'}])
        if ip == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
        elif ip and old is not None and ip == old_spec.get("clusterIP"):
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        else:
            used = self._used_ips(exclude=svc)
            if ip:
                self._check_ip(name, ip, used)
            else:
                ip = self._next_ip(used)
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if stype in ("NodePort", "LoadBalancer"):
            self._allocate_node_ports(svc, old)
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)

    def _used_ips(self, exclude: Obj) -> set[str]:
        key = (exclude["metadata"].get("namespace"), name_of(exclude))
        return {s["spec"]["clusterIP"] for s in self.store.list(self.rt("", "services"))
                if s.get("spec", {}).get("clusterIP")
                and (s["metadata"].get("namespace"), name_of(s)) != key}

    def _check_ip(self, name: str, ip: str, used: set[str]) -> None:
        def bad(detail: str) -> errors.Invalid:
            return errors.Invalid.of("Service", "", name, [{
                "reason": "FieldValueInvalid", "field": "spec.clusterIPs",
                "message": f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: '
                           f"{detail}"}])

        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise errors.Invalid.of("Service", "", name, [{
                "reason": "FieldValueInvalid", "field": "spec.clusterIPs[0]",
                "message": f'Invalid value: "{ip}": must be a valid IP address, '
                           '(e.g. 10.9.8.7 or 2001:db8::ffff)'}]) from None
        net = self.service_net
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise bad(f"the provided IP ({ip}) is not in the valid range. "
                      f"The range of valid IPs is {net}")
        if ip in used:
            raise bad("provided IP is already allocated")

    def _next_ip(self, used: set[str]) -> str:
        # As upstream: dynamic allocations prefer the upper band, leaving the first
        # addresses (kubernetes, kube-dns) to static requests.
        net = self.service_net
        size = net.num_addresses
        band = min(max(16, size // 16), 256)
        base = int(net.network_address)
        candidates = [*range(band, size - 1), *range(1, band)]
        for off in candidates:
            ip = str(ipaddress.ip_address(base + off))
            if ip not in used:
                return ip
        raise errors.ApiError(f"failed to allocate a serviceIP: range is full ({net})")

    def _allocate_node_ports(self, svc: Obj, old: Obj | None) -> None:
        lo, hi = self.node_ports
        used = {p.get("nodePort") for s in self.store.list(self.rt("", "services"))
                if s["metadata"].get("uid") != svc["metadata"].get("uid")
                for p in s.get("spec", {}).get("ports") or []}
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in (old or {}).get("spec", {}).get("ports") or []}
        name = name_of(svc)
        for i, p in enumerate(svc["spec"].get("ports") or []):
            want = p.get("nodePort") or old_ports.get((p.get("port"), p.get("protocol", "TCP")))
            if want:
                if not lo <= int(want) <= hi:
                    raise errors.Invalid.of("Service", "", name, [{
                        "reason": "FieldValueInvalid", "field": f"spec.ports[{i}].nodePort",
                        "message": f"Invalid value: {want}: provided port is not in the valid "
                                   f"range. The range of valid ports is {lo}-{hi}"}])
                if want in used:
                    raise errors.Invalid.of("Service", "", name, [{
                        "reason": "FieldValueInvalid", "field": f"spec.ports[{i}].nodePort",
                        "message": f"Invalid value: {want}: provided port is already "
                                   "allocated"}])
                p["nodePort"] = int(want)
            else:
                free = next((n for n in range(lo, hi + 1) if n not in used), None)
                if free is None:
                    raise errors.ApiError("failed to allocate a nodePort: range is full")
                p["nodePort"] = free
            used.add(p["nodePort"])

    # -- subresources --------------------------------------------------------
    def scale_of(self, rt: ResourceType, obj: Obj) -> Obj:
        if rt.custom is not None:
            return crd.scale_of(rt, obj)
        md = obj["metadata"]
        sel = obj.get("spec", {}).get("selector") or {}
        labels = sel.get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                "creationTimestamp") if k in md},
                "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
                "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                           "selector": selector}}

    def set_scale(self, rt: ResourceType, namespace: str, name: str, scale: Obj,
                  dry_run: bool, *, manager: str = "") -> Obj:
        old = self.require(rt, namespace, name)
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.Conflict.stale(rt.plural, rt.group, name)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.Invalid.of("Scale", "autoscaling", name, [{
                "reason": "FieldValueInvalid", "field": "spec.replicas",
                "message": f"Invalid value: {replicas!r}: must be greater than or equal to 0"}])
        new = copy.deepcopy(old)
        if rt.custom is not None:
            crd.set_replicas(rt, new, replicas)
        else:
            new.setdefault("spec", {})["replicas"] = replicas
        stored, _ = self.update(rt, namespace, name, new, dry_run=dry_run, manager=manager,
                                subresource="scale")
        return self.scale_of(rt, stored)

    def bind(self, namespace: str, name: str, binding: Obj, dry_run: bool) -> Obj:
        pods = self.rt("", "pods")
        pod = self.require(pods, namespace, name)
        node = (binding.get("target") or {}).get("name")
        if not node:
            raise errors.BadRequest("binding.target.name is required: name the node")
        if pod.get("spec", {}).get("nodeName"):
            raise errors.Conflict(
                f"Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is "
                f"already assigned to node \"{pod['spec']['nodeName']}\"",
                {"name": name, "group": "", "kind": "pods/binding"})
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        conds = [c for c in new.setdefault("status", {}).get("conditions") or []
                 if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True",
                      "lastTransitionTime": now_rfc3339(), "lastProbeTime": None})
        new["status"]["conditions"] = conds
        if not dry_run:
            self.store.put(pods, new)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}

    def token(self, namespace: str, name: str, req: Obj) -> Obj:
        sa = self.require(self.rt("", "serviceaccounts"), namespace, name)
        spec = req.get("spec") or {}
        expiration = int(spec.get("expirationSeconds")
                         or self.settings.token_default_expiration)
        if expiration < 600:
            raise errors.Invalid.of("TokenRequest", "authentication.k8s.io", name, [{
                "reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                "message": f"Invalid value: {expiration}: may not specify a duration less "
                           "than 10 minutes"}])
        expiration = min(expiration, self.settings.token_max_expiration)
        audiences = list(spec.get("audiences") or [])
        audiences = audiences or ["https://kubernetes.default.svc.cluster.local"]
        tok, exp = self.authn.issue(namespace, name, sa["metadata"]["uid"],
                                    audiences=audiences, expiration=expiration,
                                    bound=spec.get("boundObjectRef"))
        out = copy.deepcopy(req)
        out.update({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1"})
        out.setdefault("metadata", {}).update({"name": name, "namespace": namespace,
                                               "creationTimestamp": None})
        out["spec"] = {**spec, "audiences": audiences, "expirationSeconds": expiration}
        out["status"] = {"token": tok, "expirationTimestamp": datetime.datetime.fromtimestamp(
            exp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        return out

    # -- list / watch --------------------------------------------------------
    def list(self, rt: ResourceType, namespace: str, query: dict[str, str]
             ) -> tuple[list[Obj], Obj]:
        """Items and ListMeta for a list request (selectors, limit/continue)."""
        match = self.matcher(rt, query)
        items = [o for o in self.store.list(rt, namespace or None) if match(o)]
        meta: Obj = {"resourceVersion": str(self.store.rv)}
        token = query.get("continue")
        if token:
            try:
                start = json.loads(base64.urlsafe_b64decode(token))["start"]
            except (ValueError, KeyError, TypeError):
                raise errors.BadRequest("continue key is not valid: start the list again "
                                        "without continue") from None
            items = [o for o in items if [o["metadata"].get("namespace", ""),
                                          o["metadata"]["name"]] > start]
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise errors.BadRequest(f"limit: invalid value {query['limit']!r}: use a whole "
                                    "number") from None
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"rv": self.store.rv,
                 "start": [last.get("namespace", ""), last["name"]]}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return items, meta

    def matcher(self, rt: ResourceType, query: dict[str, str]) -> Any:
        labels = label_selector(query.get("labelSelector"))
        fields = field_selector(query.get("fieldSelector"), rt.kind)
        return lambda o: labels(o) and fields(o)

    async def watch(self, request: web.Request, rt: ResourceType, namespace: str,
                    query: dict[str, str], name: str = "") -> web.StreamResponse:
        if name:
            query = {**query, "fieldSelector": ",".join(
                x for x in (query.get("fieldSelector"), f"metadata.name={name}") if x)}
        match = self.matcher(rt, query)
        rv_text = query.get("resourceVersion") or ""
        initial = _true(query.get("sendInitialEvents"))
        since: int | None = None
        gone: errors.Gone | None = None
        if rv_text not in ("", "0") and not initial:
            try:
                since = int(rv_text)
            except ValueError:
                raise errors.BadRequest(f"invalid resource version {rv_text!r}: use a "
                                        "resourceVersion from a list") from None
        try:
            watcher: Watcher | None = self.store.watch(rt, namespace or None, match, since)
        except errors.Gone as exc:
            watcher, gone = None, exc
        accept = request.headers.get("Accept", "")
        as_table = tables.wants_table(accept)
        # Protobuf frames for a client that prefers them, for kinds with a protobuf form
        # (custom resources and tables stay JSON, as upstream).
        proto = not as_table and protobuf.prefers_protobuf(accept) and \
            protobuf.definition_of(rt.api_version, rt.kind) is not None
        include = query.get("includeObject", "Metadata")
        resp = web.StreamResponse(headers={
            "Content-Type": protobuf.WATCH_MEDIA_TYPE if proto else "application/json",
            "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if gone is not None or watcher is None:
            # Upstream answers 200 and ends the stream with an ERROR event.
            err = gone or errors.Gone("watch closed")
            await _write_event(resp, "ERROR", err.status(), proto)
            return resp
        try:
            timeout = float(query.get("timeoutSeconds") or self.settings.watch_default_timeout)
        except ValueError:
            timeout = self.settings.watch_default_timeout
        deadline = time.monotonic() + timeout
        bookmarks = _true(query.get("allowWatchBookmarks"))
        interval = self.settings.watch_bookmark_interval
        first_table = True
        stop = asyncio.create_task(self.stopping.wait(), name="watch-stop")
        get: asyncio.Task[tuple[str, Obj] | None] | None = None
        try:
            if initial:
                for _ in range(watcher.queue.qsize()):
                    item = watcher.queue.get_nowait()
                    if item is None:
                        break
                    first_table = await self._send(resp, rt, item, as_table=as_table,
                                                   include=include, first=first_table,
                                                   proto=proto)
                await self._bookmark(resp, rt, proto, initial_end=True)
            next_mark = time.monotonic() + interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if watcher.queue.empty():
                    # Nothing queued: wait for an event, a bookmark, the deadline or stop.
                    wait = min(deadline, next_mark if bookmarks else deadline) - now
                    get = asyncio.create_task(watcher.queue.get(), name=f"watch-{rt.plural}")
                    done, _ = await asyncio.wait({get, stop}, timeout=wait,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if get not in done:
                        get.cancel()
                        if stop in done:
                            break
                        if bookmarks and time.monotonic() >= next_mark:
                            await self._bookmark(resp, rt, proto)
                            next_mark = time.monotonic() + interval
                        continue
                    item = get.result()
                else:
                    item = watcher.queue.get_nowait()
                if item is None:
                    break
                first_table = await self._send(resp, rt, item, as_table=as_table,
                                               include=include, first=first_table,
                                               proto=proto)
        except ConnectionResetError:
            pass  # the client went away; nothing to tell it
        except protobuf.NotEncodable as exc:
            # Upstream logs an encoding failure and ends the stream; the client re-watches.
            log.error("ending a protobuf watch of %s: %s", rt.plural, exc)
        finally:
            stop.cancel()
            if get is not None:
                get.cancel()
            self.store.unwatch(watcher)
        return resp

    async def _send(self, resp: web.StreamResponse, rt: ResourceType, item: tuple[str, Obj],
                    *, as_table: bool, include: str, first: bool, proto: bool) -> bool:
        etype, obj = item
        out = tables.table(rt, [obj], obj["metadata"]["resourceVersion"], include,
                           with_columns=first) if as_table else obj
        await _write_event(resp, etype, out, proto)
        return False

    async def _bookmark(self, resp: web.StreamResponse, rt: ResourceType, proto: bool,
                        initial_end: bool = False) -> None:
        md: Obj = {"resourceVersion": str(self.store.rv)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        await _write_event(resp, "BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                              "metadata": md}, proto)

    # -- authorization helper --------------------------------------------------
    def authorize(self, user: User, target: Target, verb: str) -> None:
        self.authz.check(user, Attributes(verb, target.rt.group, target.rt.plural, target.sub,
                                          target.namespace, target.name))


async def _write_event(resp: web.StreamResponse, event_type: str, obj: Obj, proto: bool
                       ) -> None:
    """One watch event: a protobuf frame, or a line of JSON."""
    if proto:
        await resp.write(protobuf.watch_frame(event_type, obj))
    else:
        await resp.write(json.dumps({"type": event_type, "object": obj},
                                    separators=_SEP).encode() + b"\n")
