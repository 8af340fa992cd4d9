"""The default ClusterRoles and ClusterRoleBindings a real cluster bootstraps, for the
resources the sandbox serves (and the common ones it does not, so that bindings
written for a real cluster mean the same here).

`admin`, `edit` and `view` are aggregated as upstream does it: each carries an
`aggregationRule` selecting `rbac.authorization.k8s.io/aggregate-to-<role>: "true"`,
the `system:aggregate-to-<role>` roles hold the rules, `view` aggregates into `edit`
and `edit` into `admin`. The stored `rules` are the aggregated result (what
upstream's aggregation controller writes); the authorizer also aggregates at check
time, so a ClusterRole added later with the label extends the role at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tp_sandbox.apiserver.handlers import Api

Rule = dict[str, Any]
_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_BOOT = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AGG = "rbac.authorization.k8s.io/aggregate-to-"


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Rule:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


AGGREGATE_TO_VIEW: list[Rule] = [
    _rule([""], ["configmaps", "endpoints", "persistentvolumeclaims",
                 "persistentvolumeclaims/status", "pods", "replicationcontrollers",
                 "replicationcontrollers/scale", "serviceaccounts", "services",
                 "services/status"], _READ),
    _rule([""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log",
                 "pods/status", "replicationcontrollers/status", "resourcequotas",
                 "resourcequotas/status"], _READ),
    _rule([""], ["namespaces"], _READ),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                     "deployments/scale", "deployments/status", "replicasets",
                     "replicasets/scale", "replicasets/status", "statefulsets",
                     "statefulsets/scale", "statefulsets/status"], _READ),
    _rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
          _READ),
    _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], _READ),
    _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], _READ),
    _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], _READ),
]

AGGREGATE_TO_EDIT: list[Rule] = [
    _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                 "services/proxy"], _READ),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule([""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
          _WRITE),
    _rule([""], ["pods/eviction"], ["create"]),
    _rule([""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                 "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                 "services/proxy"], _WRITE),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule(["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                     "replicasets", "replicasets/scale", "statefulsets",
                     "statefulsets/scale"], _WRITE),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], _WRITE),
    _rule(["batch"], ["cronjobs", "jobs"], _WRITE),
    _rule(["policy"], ["poddisruptionbudgets"], _WRITE),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], _WRITE),
]

AGGREGATE_TO_ADMIN: list[Rule] = [
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
    _rule(["rbac.authorization.k8s.io"], ["rolebindings", "roles"], [*_READ, *_WRITE]),
]


def cluster_roles() -> list[dict[str, Any]]:
    """The default ClusterRoles (without apiVersion/kind)."""
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                  {"nonResourceURLs": ["*"], "verbs": ["*"]}]
    view = AGGREGATE_TO_VIEW
    edit = [*AGGREGATE_TO_EDIT, *view]
    admin = [*AGGREGATE_TO_ADMIN, *edit]

    def agg(role: str) -> dict[str, Any]:
        return {"clusterRoleSelectors": [{"matchLabels": {f"{_AGG}{role}": "true"}}]}

    roles: list[dict[str, Any]] = [
        {"metadata": {"name": "cluster-admin", "labels": dict(_BOOT)}, "rules": everything},
        {"metadata": {"name": "admin", "labels": dict(_BOOT)}, "aggregationRule": agg("admin"),
         "rules": admin},
        {"metadata": {"name": "edit", "labels": {**_BOOT, f"{_AGG}admin": "true"}},
         "aggregationRule": agg("edit"), "rules": edit},
        {"metadata": {"name": "view", "labels": {**_BOOT, f"{_AGG}edit": "true"}},
         "aggregationRule": agg("view"), "rules": view},
    ]
    for role, rules in (("admin", AGGREGATE_TO_ADMIN), ("edit", AGGREGATE_TO_EDIT),
                        ("view", AGGREGATE_TO_VIEW)):
        roles.append({"metadata": {"name": f"system:aggregate-to-{role}",
                                   "labels": {**_BOOT, f"{_AGG}{role}": "true"}},
                      "rules": rules})
    roles.append({"metadata": {"name": "system:auth-delegator", "labels": dict(_BOOT)},
                  "rules": [_rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
                            _rule(["authorization.k8s.io"], ["subjectaccessreviews"],
                                  ["create"])]})
    roles.append({"metadata": {"name": "system:basic-user", "labels": dict(_BOOT)},
                  "rules": [_rule(["authorization.k8s.io"],
                                  ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                                  ["create"]),
                            _rule(["authentication.k8s.io"], ["selfsubjectreviews"],
                                  ["create"])]})
    return roles


def create(api: Api) -> None:
    """Create the default ClusterRoles and the bindings of cluster-admin and basic-user."""
    roles = api.rt("rbac.authorization.k8s.io", "clusterroles")
    for role in cluster_roles():
        api.create(roles, "", role)
    bindings = api.rt("rbac.authorization.k8s.io", "clusterrolebindings")
    for name, group in (("cluster-admin", "system:masters"),
                        ("system:basic-user", "system:authenticated")):
        api.create(bindings, "", {
            "metadata": {"name": name, "labels": dict(_BOOT)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": group}]})
