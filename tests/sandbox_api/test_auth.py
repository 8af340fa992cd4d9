"""Authentication and RBAC as a real cluster answers them."""

from __future__ import annotations

import json
import subprocess

import pytest
from apiserver_testing import Server
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.timeout(60)

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_curl_without_credentials_gets_the_401_status(server: Server) -> None:
    proc = subprocess.run(["curl", "-sk", "-w", "\n%{http_code}", f"{server.url}/api"],
                          capture_output=True, text=True, timeout=20, check=True)
    body, _, code = proc.stdout.rpartition("\n")
    assert code == "401"
    assert json.loads(body) == UNAUTHORIZED


def test_a_bad_token_gets_the_401_status(server: Server) -> None:
    resp = server.raw("GET", "/api/v1/pods", token="nope")
    assert resp.status == 401 and json.loads(resp.data) == UNAUTHORIZED


def test_health_and_version_are_public(server: Server) -> None:
    for path in ("/readyz", "/livez", "/healthz"):
        resp = server.raw("GET", path, token=None)
        assert (resp.status, resp.data) == (200, b"ok")
    version = json.loads(server.raw("GET", "/version", token=None).data)
    assert version["gitVersion"] == "v1.37.0-sandbox" and version["minor"] == "37"


def _service_account_client(server: Server, core: client.CoreV1Api, namespace: str,
                            name: str) -> client.CoreV1Api:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    req = core.create_namespaced_service_account_token(name, namespace, {
        "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"],
                 "expirationSeconds": 3600}})
    assert req.status.token.count(".") == 2 and req.status.expiration_timestamp
    return client.CoreV1Api(server.client_for(req.status.token))


def test_a_token_request_token_is_allowed_what_rbac_grants_and_403_otherwise(
        server: Server, core: client.CoreV1Api, namespace: str) -> None:
    sa_core = _service_account_client(server, core, namespace, "reader")
    with pytest.raises(ApiException) as err:
        sa_core.list_namespaced_pod(namespace)
    assert err.value.status == 403
    st = json.loads(err.value.body)
    assert st["reason"] == "Forbidden"
    assert st["message"] == (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:reader" cannot list '
        f'resource "pods" in API group "" in the namespace "{namespace}"')

    rbac = client.RbacAuthorizationV1Api(core.api_client)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                  {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"],
                   "resourceNames": ["only-this"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]})
    assert sa_core.list_namespaced_pod(namespace).items == []
    with pytest.raises(ApiException) as err:
        sa_core.list_namespaced_secret(namespace)
    assert err.value.status == 403
    with pytest.raises(ApiException) as err:
        sa_core.list_pod_for_all_namespaces()
    assert json.loads(err.value.body)["message"].endswith("at the cluster scope")
    # A subresource with resourceNames: only the named pod may be port-forwarded.
    with pytest.raises(ApiException) as err:
        sa_core.connect_get_namespaced_pod_portforward("other", namespace, ports="80")
    assert json.loads(err.value.body)["message"] == (
        f'pods "other" is forbidden: User "system:serviceaccount:{namespace}:reader" cannot '
        f'create resource "pods/portforward" in API group "" in the namespace "{namespace}"')


def test_a_cluster_role_binding_grants_across_namespaces(server: Server,
                                                         core: client.CoreV1Api,
                                                         namespace: str) -> None:
    sa_core = _service_account_client(server, core, namespace, "viewer")
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    rbac.create_cluster_role_binding({
        "metadata": {"name": f"viewer-{namespace}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}]})
    assert sa_core.list_service_for_all_namespaces().items
    # Discovery is open to every authenticated user, as system:discovery is upstream.
    assert json.loads(server.raw("GET", "/api", token=sa_core.api_client.configuration
                                 .api_key["authorization"][len("Bearer "):]).data)["versions"]


def test_token_request_for_a_missing_service_account_is_404(core: client.CoreV1Api,
                                                            namespace: str) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service_account_token("ghost", namespace, {"spec": {}})
    assert err.value.status == 404


def test_the_bearer_scheme_is_accepted_in_any_case_as_load_incluster_config_sends_it(
        server: Server) -> None:
    from apiserver_testing import ADMIN_TOKEN

    for scheme in ("bearer", "BEARER", "Bearer"):
        resp = server.raw("GET", "/api", token=None,
                          headers={"Authorization": f"{scheme} {ADMIN_TOKEN}"})
        assert resp.status == 200, scheme
    resp = server.raw("GET", "/api", token=None, headers={"Authorization": "Basic abc"})
    assert resp.status == 401
