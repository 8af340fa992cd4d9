"""Validation of objects written to the API server, worded as a real API server's.

`validate(obj, resource, old=..., field_validation=...)` runs in the order of upstream:

1. decoding against the schema (the real Kubernetes definitions, see `schema`):
   - a value of the wrong JSON type -> 400, `Deployment in version "v1" cannot be handled
     as a Deployment: json: cannot unmarshal string into Go struct field
     DeploymentSpec.spec.replicas of type int32`;
   - unknown fields: `Strict` -> 400 `... strict decoding error: unknown field "spec.foo",
     unknown field "spec.bar"`; `Warn` (the default) -> one warning each; `Ignore` -> nothing.
     As the real decoder does, unknown fields and `null` struct fields are dropped from
     `obj` (in place) when the request goes through;
2. validation -> 422 `Invalid` with causes {reason, message, field}: required fields (the
   schema's `required`, outside `status`), enums (`Unsupported value`), names (DNS-1123
   subdomain / label, DNS-1035 label, path segment, per kind), labels, containers, ports,
   volumes, selectors that must match template labels, and immutable fields on update.

Errors (from `errors`):
    BadRequest   decoding failed (wrong type, strict unknown fields, bad base64, bad directive)
    Invalid      validation causes (FieldValueRequired / Invalid / NotSupported / Duplicate /
                 NotFound / Forbidden)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..k8sutil import label_selector_matches
from . import errors, schema
from .resources import ResourceType
from .schema import Schema

Obj = dict[str, Any]
Cause = dict[str, str]

FIELD_VALIDATION = ("Ignore", "Warn", "Strict")

# ---------------------------------------------------------------- name formats (apimachinery)

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
_DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = rf"({_QUALIFIED_NAME})?"
_CONFIG_KEY = r"[-._a-zA-Z0-9]+"

MSG_DNS1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    f"regex used for validation is '{_DNS1123_LABEL}')")
MSG_DNS1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    f"regex used for validation is '{_DNS1123_SUBDOMAIN}')")
MSG_DNS1035_LABEL = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    f"'abc-123', regex used for validation is '{_DNS1035_LABEL}')")
MSG_QUALIFIED_NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    f"used for validation is '{_QUALIFIED_NAME}')")
MSG_LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')")
MSG_CONFIG_KEY = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    f"'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '{_CONFIG_KEY}')")
MSG_PORT_RANGE = "must be between 1 and 65535, inclusive"


def _full(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def dns1123_label(value: str) -> list[str]:
    out = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    return out + ([] if _full(_DNS1123_LABEL, value) else [MSG_DNS1123_LABEL])


def dns1123_subdomain(value: str) -> list[str]:
    out = [] if len(value) <= 253 else ["must be no more than 253 characters"]
    return out + ([] if _full(_DNS1123_SUBDOMAIN, value) else [MSG_DNS1123_SUBDOMAIN])


def dns1035_label(value: str) -> list[str]:
    out = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    return out + ([] if _full(_DNS1035_LABEL, value) else [MSG_DNS1035_LABEL])


def path_segment(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def qualified_name(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) > 2:
        return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                "'my.name',  or '123-abc', regex used for validation is "
                f"'{_QUALIFIED_NAME}') with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    out: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        out += (["prefix part must be non-empty"] if not prefix
                else ["prefix part " + m for m in dns1123_subdomain(prefix)])
    if not name:
        return [*out, "name part must be non-empty"]
    if len(name) > 63:
        out.append("name part must be no more than 63 characters")
    if not _full(_QUALIFIED_NAME, name):
        out.append(MSG_QUALIFIED_NAME_PART)
    return out


def label_value(value: str) -> list[str]:
    out = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    return out + ([] if _full(_LABEL_VALUE, value) else [MSG_LABEL_VALUE])


def port_name(value: str) -> list[str]:
    """IANA_SVC_NAME, as container port names and named target ports must be."""
    out = []
    if len(value) > 15:
        out.append("must be no more than 15 characters")
    if not _full(r"[-a-z0-9]+", value):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", value):
        out.append("must contain at least one letter (a-z)")
    if "--" in value:
        out.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        out.append("must not begin or end with a hyphen")
    return out


# ---------------------------------------------------------------- causes

def go_repr(value: Any) -> str:
    """A value as Go's `%#v`/`%q` prints it in field errors."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return f"map[string]string{{{inner}}}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def required(path: str, detail: str = "") -> Cause:
    msg = "Required value" + (f": {detail}" if detail else "")
    return {"reason": "FieldValueRequired", "message": msg, "field": path}


def invalid(path: str, value: Any, detail: str, *, shown: str | None = None) -> Cause:
    return {"reason": "FieldValueInvalid",
            "message": f"Invalid value: {shown if shown is not None else go_repr(value)}: {detail}",
            "field": path}


def not_supported(path: str, value: Any, allowed: list[str]) -> Cause:
    listed = ", ".join(json.dumps(a) for a in sorted(allowed))
    return {"reason": "FieldValueNotSupported",
            "message": f"Unsupported value: {go_repr(value)}: supported values: {listed}",
            "field": path}


def duplicate(path: str, value: Any) -> Cause:
    return {"reason": "FieldValueDuplicate", "message": f"Duplicate value: {go_repr(value)}",
            "field": path}


def not_found(path: str, value: Any) -> Cause:
    return {"reason": "FieldValueNotFound", "message": f"Not found: {go_repr(value)}",
            "field": path}


def forbidden(path: str, detail: str) -> Cause:
    return {"reason": "FieldValueForbidden", "message": f"Forbidden: {detail}", "field": path}


def _each(path: str, value: Any, checks: list[str]) -> list[Cause]:
    return [invalid(path, value, m) for m in checks]


# ---------------------------------------------------------------- entry point

def validate(obj: Obj, resource: ResourceType, *, old: Obj | None,
             field_validation: str) -> list[str]:
    """Validate `obj` (create when `old` is None, else update); return warnings.

    Raises `errors.BadRequest` for what fails to decode and `errors.Invalid` with causes.
    """
    mode = field_validation or "Warn"
    if mode not in FIELD_VALIDATION:
        raise errors.BadRequest(
            f'fieldValidation must be one of "Ignore", "Warn" or "Strict", not {mode!r}')
    prefix = (f'{resource.kind} in version "{resource.version}" cannot be handled as a '
              f"{resource.kind}: ")
    if not isinstance(obj, dict):
        raise errors.BadRequest(prefix + "the body must be a JSON object")

    walk = _Decoder()
    walk.value(obj, schema.for_kind(resource.definition_name), "", go_path="",
               struct=resource.kind, in_status=False)
    if walk.type_errors:
        raise errors.BadRequest(prefix + walk.type_errors[0])
    warnings: list[str] = []
    if walk.unknown:
        listed = [f'unknown field "{p}"' for p in walk.unknown]
        if mode == "Strict":
            raise errors.BadRequest(prefix + "strict decoding error: " + ", ".join(listed))
        if mode == "Warn":
            warnings = listed
    _check_secret_data(obj, resource, prefix)

    causes: list[Cause] = []
    for cause in walk.causes + _semantic(obj, resource, old):
        if cause not in causes:  # schema and semantic checks may both see a missing field
            causes.append(cause)
    if causes:
        name = (obj.get("metadata") or {}).get("name") or ""
        raise errors.Invalid.of(resource.kind, resource.group, str(name), causes)
    for container, key in walk.prune:
        container.pop(key, None)
    return warnings


# ---------------------------------------------------------------- structural decoding

def _go_type(field_schema: Schema | None) -> str:
    t = schema.type_of(field_schema)
    s = schema.resolve(field_schema)
    if t == "integer":
        return str(s.get("format") or "int")
    if t == "string":
        return "[]uint8" if s.get("format") == "byte" else "string"
    if t == "boolean":
        return "bool"
    if t == "number":
        return "float64"
    if t == "int-or-string":
        return "intstr.IntOrString"
    if t == "quantity":
        return "resource.Quantity"
    if t == "array":
        return "[]" + _go_type(schema.items(field_schema))
    if t == "object":
        name = schema.ref_name(field_schema) if field_schema else None
        if name:
            return ".".join(name.split(".")[-2:])
        if schema.is_map(field_schema):
            return "map[string]" + _go_type(schema.values(field_schema))
        return "map[string]interface {}"
    return "interface {}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# The definitions shipped with kubernetes-validate carry no enums for these fields; the
# allowed values are those of upstream validation (k8s.io/kubernetes/pkg/apis/*/validation).
_ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ContainerPort", "protocol"): ("SCTP", "TCP", "UDP"),
    ("ServicePort", "protocol"): ("SCTP", "TCP", "UDP"),
    ("EndpointPort", "protocol"): ("SCTP", "TCP", "UDP"),
    ("PodSpec", "restartPolicy"): ("Always", "Never", "OnFailure"),
    ("PodSpec", "dnsPolicy"): ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
    ("Container", "imagePullPolicy"): ("Always", "IfNotPresent", "Never"),
    ("Container", "terminationMessagePolicy"): ("FallbackToLogsOnError", "File"),
    ("HTTPGetAction", "scheme"): ("HTTP", "HTTPS"),
    ("ServiceSpec", "type"): ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort"),
    ("ServiceSpec", "sessionAffinity"): ("ClientIP", "None"),
    ("ServiceSpec", "ipFamilyPolicy"): ("PreferDualStack", "RequireDualStack", "SingleStack"),
    ("ServiceSpec", "internalTrafficPolicy"): ("Cluster", "Local"),
    ("ServiceSpec", "externalTrafficPolicy"): ("Cluster", "Local"),
    ("DeploymentStrategy", "type"): ("Recreate", "RollingUpdate"),
    ("EndpointSlice", "addressType"): ("FQDN", "IPv4", "IPv6"),
}

_MATCHES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "int-or-string": lambda v: isinstance(v, str) or (
        isinstance(v, int) and not isinstance(v, bool)),
    "quantity": lambda v: isinstance(v, str) or (
        isinstance(v, int | float) and not isinstance(v, bool)),
}


@dataclass
class _Decoder:
    """One walk of an object along its schema: type errors, unknown fields, required
    fields, enums; and what the decoder would drop."""

    type_errors: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    prune: list[tuple[Obj, str]] = field(default_factory=list)

    def value(self, value: Any, field_schema: Schema | None, path: str, *, go_path: str,
              struct: str, in_status: bool) -> None:
        t = schema.type_of(field_schema)
        if t is None or value is None:
            return
        if not _MATCHES.get(t, lambda _v: True)(value):
            shown = _json_type(value)
            if shown == "number" and t == "integer":
                shown = f"number {value}"
            where = f"{struct}.{go_path}" if go_path else struct
            self.type_errors.append(
                f"json: cannot unmarshal {shown} into Go struct field {where} "
                f"of type {_go_type(field_schema)}")
            return
        resolved = schema.resolve(field_schema)
        if t == "object":
            self._object(value, field_schema, resolved, path, go_path=go_path, struct=struct,
                         in_status=in_status)
        elif t == "array":
            item = schema.items(field_schema)
            for i, element in enumerate(value):
                self.value(element, item, f"{path}[{i}]", go_path=go_path, struct=struct,
                           in_status=in_status)
        enum = resolved.get("enum")
        if (isinstance(enum, list) and isinstance(value, str) and value not in enum
                and not in_status and value != ""):
            self.causes.append(not_supported(path, value, [str(e) for e in enum]))

    def _object(self, value: Obj, field_schema: Schema | None, resolved: Schema, path: str,
                *, go_path: str, struct: str, in_status: bool) -> None:
        props = resolved.get("properties")
        if isinstance(props, dict):
            name = schema.ref_name(field_schema) if field_schema else None
            inner_struct = name.rsplit(".", 1)[-1] if name else struct
            for key, sub_value in value.items():
                sub = props.get(key)
                sub_path = f"{path}.{key}" if path else key
                if sub is None:
                    self.unknown.append(sub_path)
                    self.prune.append((value, key))
                elif sub_value is None:
                    self.prune.append((value, key))
                else:
                    allowed = _ENUMS.get((inner_struct, key))
                    if allowed and not in_status and sub_value not in allowed:
                        self.causes.append(not_supported(sub_path, sub_value, list(allowed)))
                    sub_go = f"{go_path}.{key}" if go_path else key
                    self.value(sub_value, sub, sub_path, go_path=sub_go, struct=inner_struct,
                               in_status=in_status or (not path and key == "status"))
            if not in_status:
                for key in resolved.get("required") or ():
                    if not path and key in ("spec", "metadata"):
                        continue  # reported field by field by the semantic checks
                    present = value.get(key)
                    if present is None or present in ("", []):
                        self.causes.append(required(f"{path}.{key}" if path else key))
        elif schema.is_map(field_schema):
            sub = schema.values(field_schema)
            for key, sub_value in value.items():
                self.value(sub_value, sub, f"{path}[{key}]", go_path=go_path, struct=struct,
                           in_status=in_status)


def _check_secret_data(obj: Obj, resource: ResourceType, prefix: str) -> None:
    if (resource.group, resource.kind) != ("", "Secret") or not isinstance(obj.get("data"), dict):
        return
    for value in obj["data"].values():
        if isinstance(value, str):
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as e:
                raise errors.BadRequest(prefix + f"illegal base64 data ({e}); "
                                        "encode Secret data with base64 or use stringData"
                                        ) from None


# ---------------------------------------------------------------- semantic checks

def _as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _semantic(obj: Obj, resource: ResourceType, old: Obj | None) -> list[Cause]:
    causes = _metadata(obj, resource)
    kind = (resource.group, resource.kind)
    spec = _as_dict(obj.get("spec"))
    old_spec = _as_dict(old.get("spec")) if isinstance(old, dict) else None
    if kind == ("", "Pod"):
        causes += pod_spec(spec, "spec", template=False)
        if old_spec is not None:
            causes += _pod_update(spec, old_spec)
    elif kind in (("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"),
                  ("apps", "DaemonSet"), ("batch", "Job")):
        causes += _workload(spec, resource, old_spec)
    elif kind == ("", "Service"):
        causes += _service(spec, old_spec)
    elif kind in (("", "ConfigMap"), ("", "Secret")):
        for key in ("data", "binaryData", "stringData"):
            for k in obj.get(key) or {}:
                if not _full(_CONFIG_KEY, k):
                    causes.append(invalid(f"{key}[{k}]", k, MSG_CONFIG_KEY))
    return causes


def _metadata(obj: Obj, resource: ResourceType) -> list[Cause]:
    meta = _as_dict(obj.get("metadata"))
    causes: list[Cause] = []
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            causes.append(required("metadata.name", "name or generateName is required"))
    elif isinstance(name, str):
        causes += _each("metadata.name", name, _name_checker(resource)(name))
    for key, value in _as_dict(meta.get("labels")).items():
        causes += _each("metadata.labels", key, qualified_name(key))
        if isinstance(value, str):
            causes += _each("metadata.labels", value, label_value(value))
    for key in _as_dict(meta.get("annotations")):
        causes += _each("metadata.annotations", key, [m.lower() if m.startswith("name part")
                                                     else m for m in qualified_name(key)])
    return causes


def _name_checker(resource: ResourceType) -> Any:
    if resource.kind == "Service":
        return dns1035_label
    if resource.kind == "Namespace":
        return dns1123_label
    if resource.group == "rbac.authorization.k8s.io":
        return path_segment
    return dns1123_subdomain


def pod_spec(spec: Obj, path: str, *, template: bool, job: bool = False) -> list[Cause]:
    """Checks of a PodSpec at `path` (`spec` or `spec.template.spec`)."""
    causes: list[Cause] = []
    volumes = [v for v in spec.get("volumes") or [] if isinstance(v, dict)]
    volume_names: set[str] = set()
    for i, v in enumerate(volumes):
        name = v.get("name")
        if isinstance(name, str) and name:
            causes += _each(f"{path}.volumes[{i}].name", name, dns1123_label(name))
            if name in volume_names:
                causes.append(duplicate(f"{path}.volumes[{i}].name", name))
            volume_names.add(name)
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            if isinstance(c, dict):
                causes += _container(c, f"{path}.{key}[{i}]", names, volume_names)
    policy = spec.get("restartPolicy")
    if job:  # a Job's pods run to completion
        if policy not in ("OnFailure", "Never"):
            causes.append(required(f"{path}.restartPolicy") if policy is None else
                          not_supported(f"{path}.restartPolicy", policy,
                                        ["OnFailure", "Never"]))
    elif template and policy is not None and policy != "Always":
        causes.append(not_supported(f"{path}.restartPolicy", policy, ["Always"]))
    return causes


def _container(c: Obj, path: str, names: set[str], volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    name = c.get("name")
    if isinstance(name, str) and name:
        causes += _each(f"{path}.name", name, dns1123_label(name))
        if name in names:
            causes.append(duplicate(f"{path}.name", name))
        names.add(name)
    image = c.get("image")
    if not isinstance(image, str) or not image.strip():
        causes.append(required(f"{path}.image"))
    port_names: set[str] = set()
    for i, port in enumerate(c.get("ports") or []):
        if not isinstance(port, dict):
            continue
        p = f"{path}.ports[{i}]"
        number = port.get("containerPort")
        if number == 0:
            causes.append(required(f"{p}.containerPort"))
        elif isinstance(number, int) and not 1 <= number <= 65535:
            causes.append(invalid(f"{p}.containerPort", number, MSG_PORT_RANGE))
        host = port.get("hostPort")
        if isinstance(host, int) and host != 0 and not 1 <= host <= 65535:
            causes.append(invalid(f"{p}.hostPort", host, MSG_PORT_RANGE))
        pname = port.get("name")
        if isinstance(pname, str) and pname:
            causes += _each(f"{p}.name", pname, port_name(pname))
            if pname in port_names:
                causes.append(duplicate(f"{p}.name", pname))
            port_names.add(pname)
    for i, env in enumerate(c.get("env") or []):
        if isinstance(env, dict) and isinstance(env.get("name"), str) and "=" in env["name"]:
            causes.append(invalid(f"{path}.env[{i}].name", env["name"],
                                  "a valid environment variable name must consist only of "
                                  "printable ASCII characters other than '='"))
    for i, mount in enumerate(c.get("volumeMounts") or []):
        if isinstance(mount, dict) and mount.get("name") and mount["name"] not in volumes:
            causes.append(not_found(f"{path}.volumeMounts[{i}].name", mount["name"]))
    return causes


_POD_MUTABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,"
                "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                "it was previously negative)")


def _pod_update(spec: Obj, old: Obj) -> list[Cause]:
    def strip(s: Obj) -> Obj:
        out = json.loads(json.dumps(s))
        for key in ("containers", "initContainers"):
            for c in out.get(key) or []:
                if isinstance(c, dict):
                    c.pop("image", None)
        for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
            out.pop(key, None)
        if not old.get("nodeName"):
            out.pop("nodeName", None)  # binding by a plain update (the sandbox's scheduler)
        return dict(out)

    if strip(spec) != strip(old):
        return [forbidden("spec", f"pod updates may not change fields other than {_POD_MUTABLE}")]
    return []


def selector_repr(selector: Any) -> str:
    """A LabelSelector as Go's `%#v` prints it."""
    sel = selector if isinstance(selector, dict) else {}
    labels = sel.get("matchLabels")
    shown_labels = go_repr(labels) if labels else "map[string]string(nil)"
    exprs = sel.get("matchExpressions") or []
    if exprs:
        parts = []
        for e in exprs:
            if not isinstance(e, dict):
                continue
            values = e.get("values")
            shown_values = ("[]string{" + ", ".join(json.dumps(v) for v in values) + "}"
                            if values else "[]string(nil)")
            parts.append(f"v1.LabelSelectorRequirement{{Key:{json.dumps(e.get('key', ''))}, "
                         f"Operator:{json.dumps(e.get('operator', ''))}, Values:{shown_values}}}")
        shown_exprs = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        shown_exprs = "[]v1.LabelSelectorRequirement(nil)"
    return f"v1.LabelSelector{{MatchLabels:{shown_labels}, MatchExpressions:{shown_exprs}}}"


def _workload(spec: Obj, resource: ResourceType, old_spec: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    template = spec.get("template") if isinstance(spec.get("template"), dict) else None
    if selector is None:
        causes.append(required("spec.selector"))  # deduplicated with the schema's `required`
    elif isinstance(selector, dict):
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(invalid("spec.selector", selector,
                                  f"empty selector is invalid for {resource.singular}",
                                  shown=selector_repr(selector)))
        elif template is not None:
            labels = _as_dict(_as_dict(template.get("metadata")).get("labels"))
            if not label_selector_matches(selector, labels):
                shown = go_repr(labels) if labels else "map[string]string(nil)"
                causes.append(invalid("spec.template.metadata.labels", labels,
                                      "`selector` does not match template `labels`",
                                      shown=shown))
    if template is not None:
        pod = _as_dict(template.get("spec"))
        claims = [c for c in spec.get("volumeClaimTemplates") or [] if isinstance(c, dict)]
        if resource.kind == "StatefulSet" and claims:
            # mounts may name the claim templates, as upstream's validation allows
            pod = {**pod, "volumes": [*(pod.get("volumes") or []), *(
                {"name": _as_dict(c.get("metadata")).get("name"), "emptyDir": {}}
                for c in claims)]}
        causes += pod_spec(pod, "spec.template.spec", template=True,
                           job=resource.kind == "Job")
    if old_spec is not None and old_spec.get("selector") is not None and (
            (selector or {}) != (old_spec.get("selector") or {})):
        causes.append(invalid("spec.selector", selector, "field is immutable",
                              shown=selector_repr(selector)))
    return causes


def _service(spec: Obj, old_spec: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    kind = spec.get("type", "ClusterIP")
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    if kind == "ExternalName":
        if not spec.get("externalName"):
            causes.append(required("spec.externalName"))
    elif not ports and spec.get("clusterIP") != "None":
        causes.append(required("spec.ports"))
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        p = f"spec.ports[{i}]"
        name = port.get("name")
        if len(ports) > 1 and not name:
            causes.append(required(f"{p}.name"))
        if isinstance(name, str) and name:
            causes += _each(f"{p}.name", name, dns1123_label(name))
            if name in names:
                causes.append(duplicate(f"{p}.name", name))
            names.add(name)
        number = port.get("port")
        if isinstance(number, int) and not 1 <= number <= 65535:
            causes.append(invalid(f"{p}.port", number, MSG_PORT_RANGE))
        target = port.get("targetPort")
        if isinstance(target, int) and not isinstance(target, bool) and target != 0 and not (
                1 <= target <= 65535):
            causes.append(invalid(f"{p}.targetPort", target, MSG_PORT_RANGE))
        elif isinstance(target, str) and target:
            if target.isdigit():
                number_target = int(target)
                if not 1 <= number_target <= 65535:
                    causes.append(invalid(f"{p}.targetPort", target, MSG_PORT_RANGE))
            else:
                causes += _each(f"{p}.targetPort", target, port_name(target))
        key = (number, port.get("protocol", "TCP"))
        if key in seen:
            causes.append(duplicate(p, {"port": number, "protocol": key[1]}))
        seen.add(key)
    for key, value in (spec.get("selector") or {}).items():
        causes += _each("spec.selector", key, qualified_name(key))
        if isinstance(value, str):
            causes += _each("spec.selector", value, label_value(value))
    if old_spec is not None:
        old_ip, new_ip = old_spec.get("clusterIP"), spec.get("clusterIP")
        # An update that leaves clusterIP empty keeps the allocated one (upstream does too).
        if old_ip and new_ip and new_ip != old_ip:
            causes.append(invalid("spec.clusterIP", new_ip, "field is immutable"))
        old_ips, new_ips = old_spec.get("clusterIPs"), spec.get("clusterIPs")
        if old_ips and new_ips and new_ips[:1] != old_ips[:1]:
            causes.append(invalid("spec.clusterIPs[0]", new_ips[0],
                                  "may not change once set"))
    return causes
