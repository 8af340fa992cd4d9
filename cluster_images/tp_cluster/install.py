"""Install the traffic-manager on first connect, and remove it (`tp uninstall --everything`).

Used by the workstation daemon with a `Kube` built from the user's kubeconfig:

    result = ensure_manager(kube, "ambassador", progress=print)
    if result.skew: print(result.skew)

`ensure_manager` creates what is missing (Namespace, ServiceAccount, ClusterRole,
ClusterRoleBinding, Deployment, Service), upgrades a Deployment of another version,
and waits for the rollout, reporting progress and pod problems (ImagePullBackOff,
CrashLoopBackOff) in one line each. Nothing is left half-done: a failed first
install removes what it created.

Errors::

    InstallError            the install or rollout failed; the message says what to do
    +-- InstallTimeout      the rollout did not finish within the timeout
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tp_protocol import VERSION
from tp_protocol.settings import get_settings

from tp_cluster.errors import ClusterError
from tp_cluster.kube import DeploymentState, Kube, KubeError
from tp_cluster.manifests import NAME, VERSION_ANNOTATION, manager_objects

Progress = Callable[[str], None]

FATAL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                 "CreateContainerConfigError", "CrashLoopBackOff"}
"""Pod waiting reasons that will not fix themselves while we wait."""


class InstallError(ClusterError):
    """Installing or upgrading the traffic-manager failed."""


class InstallTimeout(InstallError):
    """The rollout did not finish in time."""


@dataclass
class InstallResult:
    installed: bool = False
    """This call created the Deployment (first connect)."""

    upgraded: bool = False
    """An existing Deployment of another version was brought to ours."""

    manager_version: str = ""
    skew: str = ""
    """One line about client/manager version skew ("" when they agree)."""

    created: list[str] = field(default_factory=list)


def version_skew(client_version: str, manager_version: str) -> str:
    """A one-line warning when versions differ; "" when they agree."""
    if not manager_version or client_version == manager_version:
        return ""
    return (f"version skew: this client is {client_version}, the traffic-manager is "
            f"{manager_version}; run `tp uninstall --everything` and connect again to "
            "install the matching traffic-manager")


def _describe(state: DeploymentState) -> str:
    return (f"waiting for the traffic-manager rollout ({state.ready}/{state.desired} ready, "
            f"{state.updated} updated)")


def wait_for_rollout(kube: Kube, namespace: str, timeout: float, progress: Progress,
                     poll: float = 0.5) -> DeploymentState:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        state = kube.deployment_state(namespace, NAME)
        if not state.exists:
            raise InstallError(f"deployment {namespace}/{NAME} disappeared during the rollout; "
                               "connect again")
        if state.observed and state.desired and state.updated >= state.desired \
                and state.available >= state.desired and state.ready >= state.desired:
            progress(f"traffic-manager ready ({state.ready}/{state.desired})")
            return state
        for pod in state.pods:
            if pod.waiting_reason in FATAL_REASONS:
                raise InstallError(
                    f"traffic-manager pod {pod.name}: {pod.waiting_reason}"
                    f"{': ' + pod.waiting_message if pod.waiting_message else ''}; check the "
                    f"image and `kubectl -n {namespace} describe pod {pod.name}`")
        line = _describe(state)
        if line != last:
            progress(line)
            last = line
        if time.monotonic() > deadline:
            raise InstallTimeout(f"the traffic-manager was not ready after {timeout:g}s "
                                 f"({state.ready}/{state.desired} ready); see `kubectl -n "
                                 f"{namespace} get pods` or raise connect.install_timeout")
        time.sleep(poll)


def ensure_manager(kube: Kube, namespace: str = "", progress: Progress | None = None,
                   timeout: float | None = None, image: str | None = None) -> InstallResult:
    """Make sure a ready traffic-manager of our version runs in `namespace` (blocking)."""
    settings = get_settings().connect
    namespace = namespace or settings.manager_namespace
    timeout = settings.install_timeout if timeout is None else timeout
    report: Progress = progress or (lambda _line: None)
    objects = manager_objects(namespace, VERSION, image=image)
    result = InstallResult()
    try:
        before = kube.deployment_state(namespace, NAME)
    except KubeError as exc:
        raise _install_error(exc, namespace) from exc
    try:
        if before.exists:
            result.manager_version = before.annotations.get(VERSION_ANNOTATION, "")
            if result.manager_version != VERSION:
                report(f"upgrading the traffic-manager from {result.manager_version or '?'} "
                       f"to {VERSION} in namespace {namespace}")
        else:
            report(f"installing the traffic-manager {VERSION} in namespace {namespace}")
        for obj in objects:
            if kube.create(obj):
                result.created.append(f"{obj['kind']}/{obj['metadata']['name']}")
            elif obj["kind"] in ("ClusterRole", "Deployment") and (
                    result.manager_version != VERSION):
                kube.update(obj)
                result.upgraded = result.upgraded or obj["kind"] == "Deployment"
        result.installed = not before.exists
        wait_for_rollout(kube, namespace, timeout, report)
    except (KubeError, InstallError) as exc:
        if not before.exists:  # a failed first install leaves nothing behind
            _remove_created(kube, objects, result.created)
        if isinstance(exc, KubeError):
            raise _install_error(exc, namespace) from exc
        raise
    result.manager_version = VERSION
    return result


def _install_error(exc: KubeError, namespace: str) -> InstallError:
    if exc.status == 403:
        return InstallError(f"not allowed to install the traffic-manager ({exc}); ask a "
                            f"cluster admin to install it in namespace {namespace}")
    return InstallError(f"installing the traffic-manager failed: {exc}")


def _remove_created(kube: Kube, objects: list[dict[str, Any]], created: list[str]) -> None:
    for obj in reversed(objects):
        if f"{obj['kind']}/{obj['metadata']['name']}" in created:
            # best effort: the error that made us clean up is the one to report
            with contextlib.suppress(KubeError):
                kube.delete(obj)


def uninstall_manager(kube: Kube, namespace: str = "") -> list[str]:
    """Delete every install object (reverse order); returns the kinds/names removed."""
    namespace = namespace or get_settings().connect.manager_namespace
    removed = []
    for obj in reversed(manager_objects(namespace)):
        if kube.delete(obj):
            removed.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return removed
