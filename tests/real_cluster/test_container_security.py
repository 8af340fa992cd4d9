"""How the sandbox's kubelet turns a securityContext into process credentials."""

from __future__ import annotations

from typing import Any

import pytest
from tp_sandbox.node.security import CAPABILITIES, ContainerConfigError, process_security

NET_BIND_SERVICE = CAPABILITIES.index("NET_BIND_SERVICE")


def _pod(pod_sc: dict[str, Any] | None = None, **container_sc: Any) -> tuple[dict[str, Any],
                                                                             dict[str, Any]]:
    container: dict[str, Any] = {"name": "app", "image": "busybox"}
    if container_sc:
        container["securityContext"] = container_sc
    pod = {"metadata": {"name": "web", "namespace": "team", "uid": "u-1"},
           "spec": {"containers": [container], "securityContext": pod_sc or {}}}
    return pod, container


def test_a_container_without_security_context_runs_as_before() -> None:
    pod, container = _pod()
    assert process_security(pod, container).spec() == {
        "uid": None, "gid": 0, "groups": [], "capabilities": None, "no_new_privs": False,
        "read_only_root": False}


def test_the_containers_fields_win_over_the_pods() -> None:
    pod, container = _pod({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                           "supplementalGroups": [4000]}, runAsUser=1001)
    security = process_security(pod, container)
    assert (security.uid, security.gid, security.groups) == (1001, 3000, (4000, 2000))


def test_the_images_user_applies_without_run_as_user() -> None:
    pod, container = _pod()
    assert process_security(pod, container, image_user=10001).uid == 10001


def test_run_as_non_root_refuses_a_root_image_with_the_kubelets_message() -> None:
    pod, container = _pod({"runAsNonRoot": True})
    with pytest.raises(ContainerConfigError) as refused:
        process_security(pod, container)
    assert str(refused.value) == ('container has runAsNonRoot and image will run as root '
                                  '(pod: "web_team(u-1)", container: app)')
    process_security(pod, container, image_user=10001)  # a non-root image is fine


def test_restricted_settings_keep_only_the_added_capability_and_set_no_new_privs() -> None:
    pod, container = _pod({"runAsUser": 10001}, allowPrivilegeEscalation=False,
                          readOnlyRootFilesystem=True,
                          capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})
    security = process_security(pod, container)
    assert security.capabilities == (NET_BIND_SERVICE,)
    assert security.no_new_privs and security.read_only_root


def test_a_root_container_dropping_one_capability_keeps_the_others() -> None:
    pod, container = _pod(capabilities={"drop": ["NET_RAW"]})
    kept = process_security(pod, container).capabilities
    assert kept is not None
    assert CAPABILITIES.index("NET_RAW") not in kept and NET_BIND_SERVICE in kept
