"""TokenReview, SubjectAccessReview and the self reviews, answered from the sandbox's
own tokens and RBAC (incl. the aggregated admin/edit/view ClusterRoles), through the
official client as a webhook or a controller would ask them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apiserver_testing import Server
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.timeout(60)

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def authn(kube: client.ApiClient) -> client.AuthenticationV1Api:
    return client.AuthenticationV1Api(kube)


@pytest.fixture(scope="module")
def authz(kube: client.ApiClient) -> client.AuthorizationV1Api:
    return client.AuthorizationV1Api(kube)


def _token(core: client.CoreV1Api, namespace: str, name: str, audiences: list[str],
           bound: dict[str, Any] | None = None) -> str:
    spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": 3600}
    if bound:
        spec["boundObjectRef"] = bound
    req = core.create_namespaced_service_account_token(name, namespace, {"spec": spec})
    return str(req.status.token)


def _review(authn: client.AuthenticationV1Api, token: str,
            audiences: list[str] | None = None) -> Any:
    spec: dict[str, Any] = {"token": token}
    if audiences:
        spec["audiences"] = audiences
    return authn.create_token_review({"spec": spec}).status


def test_a_service_account_token_reviews_as_its_service_account(
        core: client.CoreV1Api, authn: client.AuthenticationV1Api, namespace: str) -> None:
    sa = core.create_namespaced_service_account(namespace, {"metadata": {"name": "robot"}})
    st = _review(authn, _token(core, namespace, "robot", [API_AUDIENCE]))
    assert st.authenticated is True and st.error is None
    assert st.user.username == f"system:serviceaccount:{namespace}:robot"
    assert st.user.uid == sa.metadata.uid
    assert st.user.groups == ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                              "system:authenticated"]
    assert st.audiences == [API_AUDIENCE]


def test_an_invalid_token_does_not_authenticate(authn: client.AuthenticationV1Api) -> None:
    st = _review(authn, "not-a-token")
    assert st.authenticated is False and st.error


def test_a_token_for_another_audience_reviews_only_for_that_audience(
        server: Server, core: client.CoreV1Api, authn: client.AuthenticationV1Api,
        namespace: str) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "vaulted"}})
    token = _token(core, namespace, "vaulted", ["vault"])
    st = _review(authn, token)
    assert st.authenticated is False and "audiences" in st.error
    st = _review(authn, token, ["vault", "other"])
    assert st.authenticated is True and st.audiences == ["vault"]
    # Nor may it call the API server, whose audience it does not carry.
    resp = server.raw("GET", f"/api/v1/namespaces/{namespace}/pods", token=token)
    assert resp.status == 401


def test_a_pod_bound_token_dies_with_its_pod(core: client.CoreV1Api,
                                             authn: client.AuthenticationV1Api,
                                             namespace: str) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "podsa"}})
    pod = core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
        "serviceAccountName": "podsa", "containers": [{"name": "c", "image": "busybox"}]}})
    token = _token(core, namespace, "podsa", [API_AUDIENCE],
                   {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod.metadata.uid})
    st = _review(authn, token)
    assert st.authenticated is True
    assert st.user.extra["authentication.kubernetes.io/pod-name"] == ["p"]
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    st = _review(authn, token)
    assert st.authenticated is False and "deleted" in st.error


def test_a_static_user_token_reviews_with_its_groups(server: Server,
                                                     authn: client.AuthenticationV1Api) -> None:
    st = _review(authn, "admin-token-for-tests")
    assert st.authenticated is True and st.user.username == "admin"
    assert st.user.groups == ["system:masters", "system:authenticated"]
    assert _review(authn, "admin-token-for-tests", ["vault"]).authenticated is False


def _sar(authz: client.AuthorizationV1Api, user: str, groups: list[str], verb: str,
         resource: str, *, namespace: str = "", group: str = "") -> Any:
    return authz.create_subject_access_review({"spec": {
        "user": user, "groups": groups, "resourceAttributes": {
            "verb": verb, "resource": resource, "namespace": namespace, "group": group}}}
    ).status


def test_subject_access_review_evaluates_edit_bound_in_a_namespace(
        core: client.CoreV1Api, authz: client.AuthorizationV1Api, namespace: str) -> None:
    client.RbacAuthorizationV1Api(core.api_client).create_namespaced_role_binding(
        namespace, {"metadata": {"name": "alice-edit"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                "kind": "ClusterRole", "name": "edit"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": "alice"}]})
    groups = ["developers", "system:authenticated"]
    allowed = _sar(authz, "alice", groups, "create", "deployments", namespace=namespace,
                   group="apps")
    assert allowed.allowed is True
    assert allowed.reason == (f'RBAC: allowed by RoleBinding "alice-edit/{namespace}" of '
                              'ClusterRole "edit" to User "alice"')
    # edit includes view (aggregated), but not RBAC or cluster-scoped writes.
    assert _sar(authz, "alice", groups, "list", "endpointslices", namespace=namespace,
                group="discovery.k8s.io").allowed is True
    assert _sar(authz, "alice", groups, "create", "rolebindings", namespace=namespace,
                group="rbac.authorization.k8s.io").allowed is False
    assert _sar(authz, "alice", groups, "create", "namespaces").allowed is False
    assert _sar(authz, "alice", groups, "create", "pods", namespace="default").allowed is False
    assert _sar(authz, "bob", groups, "create", "pods", namespace=namespace).allowed is False


def test_a_clusterrole_labelled_aggregate_to_edit_extends_edit_at_once(
        core: client.CoreV1Api, authz: client.AuthorizationV1Api, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "carol-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "carol"}]})
    assert _sar(authz, "carol", [], "create", "widgets", namespace=namespace,
                group="example.com").allowed is False
    name = f"widgets-{namespace}"
    rbac.create_cluster_role({"metadata": {"name": name, "labels": {
        "rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"],
                   "verbs": ["create"]}]})
    try:
        assert _sar(authz, "carol", [], "create", "widgets", namespace=namespace,
                    group="example.com").allowed is True
    finally:
        rbac.delete_cluster_role(name)


def test_the_default_clusterroles_are_aggregated_as_upstream(core: client.CoreV1Api) -> None:
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    edit = rbac.read_cluster_role("edit")
    assert edit.aggregation_rule.cluster_role_selectors[0].match_labels == {
        "rbac.authorization.k8s.io/aggregate-to-edit": "true"}
    assert edit.metadata.labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    view = rbac.read_cluster_role("view")
    assert view.metadata.labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert all("secrets" not in (r.resources or []) for r in view.rules)
    names = {r.metadata.name for r in rbac.list_cluster_role().items}
    assert {"cluster-admin", "admin", "edit", "view", "system:aggregate-to-edit",
            "system:auth-delegator"} <= names


def test_reviews_need_create_on_the_review_resource(
        server: Server, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = _token(core, namespace, "nobody", [API_AUDIENCE])
    nobody = server.client_for(token)
    with pytest.raises(ApiException) as err:
        client.AuthenticationV1Api(nobody).create_token_review({"spec": {"token": token}})
    assert err.value.status == 403
    assert "tokenreviews" in json.loads(err.value.body)["message"]
    # ...while the self reviews are for everyone.
    me = client.AuthenticationV1Api(nobody).create_self_subject_review({})
    assert me.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"
    ssar = client.AuthorizationV1Api(nobody).create_self_subject_access_review({"spec": {
        "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": namespace}}})
    assert ssar.status.allowed is False


def test_a_local_subject_access_review_is_confined_to_its_namespace(
        authz: client.AuthorizationV1Api, namespace: str) -> None:
    st = authz.create_namespaced_local_subject_access_review(namespace, {
        "metadata": {"namespace": namespace}, "spec": {
            "user": "admin", "groups": ["system:masters"],
            "resourceAttributes": {"verb": "get", "resource": "pods"}}}).status
    assert st.allowed is True
    with pytest.raises(ApiException) as err:
        authz.create_namespaced_local_subject_access_review(namespace, {
            "metadata": {"namespace": namespace}, "spec": {
                "user": "x", "resourceAttributes": {"verb": "get", "resource": "pods",
                                                    "namespace": "other"}}})
    assert err.value.status == 422


def test_a_subject_access_review_without_user_or_groups_is_invalid(
        authz: client.AuthorizationV1Api) -> None:
    with pytest.raises(ApiException) as err:
        authz.create_subject_access_review({"spec": {"resourceAttributes": {
            "verb": "get", "resource": "pods"}}})
    assert err.value.status == 422


def _as(server: Server, token: str, **headers: str) -> client.ApiClient:
    api = server.client_for(token)
    for name, value in headers.items():
        api.set_default_header(name.replace("_", "-"), value)
    return api


def test_an_admin_may_impersonate_a_user_and_their_groups(server: Server,
                                                         namespace: str) -> None:
    api = _as(server, "admin-token-for-tests", Impersonate_User="alice",
              Impersonate_Group="developers")
    me = client.AuthenticationV1Api(api).create_self_subject_review({}).status.user_info
    assert (me.username, me.groups) == ("alice", ["developers", "system:authenticated"])
    with pytest.raises(ApiException) as err:  # alice has no binding in this server
        client.CoreV1Api(api).list_namespaced_pod(namespace)
    assert err.value.status == 403 and 'User "alice"' in json.loads(err.value.body)["message"]


def test_impersonation_needs_the_impersonate_verb(server: Server, core: client.CoreV1Api,
                                                  namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "editor"}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "worker"}})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "editor-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "editor", "namespace": namespace}]})
    token = _token(core, namespace, "editor", [API_AUDIENCE])
    # edit may impersonate the namespace's service accounts (as upstream), not users.
    as_worker = _as(server, token, Impersonate_User=f"system:serviceaccount:{namespace}:worker")
    me = client.AuthenticationV1Api(as_worker).create_self_subject_review({}).status.user_info
    assert me.groups == ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                         "system:authenticated"]
    with pytest.raises(ApiException) as err:
        client.AuthenticationV1Api(_as(server, token, Impersonate_User="admin")
                                   ).create_self_subject_review({})
    assert err.value.status == 403
    assert json.loads(err.value.body)["message"] == (
        f'users "admin" is forbidden: User "system:serviceaccount:{namespace}:editor" cannot '
        'impersonate resource "users" in API group "" at the cluster scope')
    with pytest.raises(ApiException) as err:
        client.AuthenticationV1Api(_as(server, token, Impersonate_Group="system:masters")
                                   ).create_self_subject_review({})
    assert err.value.status == 400


def test_a_self_subject_rules_review_lists_what_the_caller_may_do(
        server: Server, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "lister"}})
    client.RbacAuthorizationV1Api(core.api_client).create_namespaced_role_binding(
        namespace, {"metadata": {"name": "lister-view"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "ServiceAccount", "name": "lister",
                                  "namespace": namespace}]})
    api = server.client_for(_token(core, namespace, "lister", [API_AUDIENCE]))
    st = client.AuthorizationV1Api(api).create_self_subject_rules_review(
        {"spec": {"namespace": namespace}}).status
    assert st.incomplete is False
    pods = [r for r in st.resource_rules if "pods" in (r.resources or [])]
    assert pods and all(r.verbs == ["get", "list", "watch"] for r in pods)
    assert any("/version" in r.non_resource_urls for r in st.non_resource_rules)
    other = client.AuthorizationV1Api(api).create_self_subject_rules_review(
        {"spec": {"namespace": "default"}}).status
    assert not [r for r in other.resource_rules if "pods" in (r.resources or [])]
