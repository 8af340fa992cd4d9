"""Workloads for intercepts: resolve Deployment/Service/port, inject the traffic-agent and
wait for it to arrive, and restore workloads exactly when agents are uninstalled.

`list_workloads` answers ListWorkloads (the `WorkloadState` enum is the contract, the
reason is text); `serving` and `rollout_problem` feed the intercept dispositions
(`tp_cluster.manager.dispositions`).

Kubernetes calls go through `tp_cluster.kube.Kube` (blocking, so they run in threads);
the pod-template surgery is `tp_cluster.injector` (pure functions over dicts). Writes
are PUTs guarded by the resourceVersion just read; a lost race (409) reads again and
recomputes, up to `Settings.intercept.manager_write_retries` times. One lock per
workload keeps a prepare and an uninstall of the same workload from interleaving.

Nothing is left half-done: when a prepare that injected the agent fails (the agent's
pod cannot start, or it does not arrive within `Settings.intercept.activate_timeout`),
the workload is restored before the error is returned.

Errors (`StateError`s, so the servicer turns them into gRPC statuses)::

    StateError (tp_cluster.manager.state)
    +-- WorkloadError           the cluster refused or did not answer     (UNAVAILABLE)
        +-- WorkloadNotFound    no such namespace, Deployment or Service  (NOT_FOUND)
        +-- PortNotFound        the Service has no such port              (INVALID_ARGUMENT)
        +-- AmbiguousService    several Services select the workload      (INVALID_ARGUMENT)
        +-- NotInterceptable    the injector refuses, no Service, 0 replicas, the
                                traffic-manager's own namespace            (FAILED_PRECONDITION)
        +-- AgentFailed         the agent's container cannot start        (FAILED_PRECONDITION)
        +-- AgentTimeout        the agent did not arrive in time          (DEADLINE_EXCEEDED)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tp_protocol import manager_pb2 as pb
from tp_protocol.aio import wait_at_most
from tp_protocol.settings import get_settings

from tp_cluster import injector
from tp_cluster.kube import DeploymentState, Kube, KubeConflict, KubeError
from tp_cluster.manager.state import InterceptInvalid, State, StateError
from tp_cluster.manifests import FATAL_WAITING_REASONS, agent_pull_secrets_from_env
from tp_cluster.manifests import NAME as MANAGER_NAME

FATAL_REASONS = FATAL_WAITING_REASONS
"""Pod waiting reasons that will not fix themselves while we wait."""

log = logging.getLogger(__name__)

DEPLOYMENT = "Deployment"


class WorkloadError(StateError):
    code = "UNAVAILABLE"


class WorkloadNotFound(WorkloadError):
    code = "NOT_FOUND"


class PortNotFound(WorkloadError):
    code = "INVALID_ARGUMENT"


class AmbiguousService(WorkloadError):
    code = "INVALID_ARGUMENT"


class NotInterceptable(WorkloadError):
    code = "FAILED_PRECONDITION"


class AgentFailed(WorkloadError):
    code = "FAILED_PRECONDITION"


class AgentTimeout(WorkloadError):
    code = "DEADLINE_EXCEEDED"


@dataclass
class Resolved:
    """A workload with the Service and service port an intercept is about."""

    deployment: dict[str, Any]
    service: dict[str, Any]
    port: dict[str, Any]
    """The Service's port entry as it was before any injection."""
    container_port: int
    """The app container's port the Service targeted before any injection."""

    @property
    def service_name(self) -> str:
        return str(self.service["metadata"]["name"])

    @property
    def port_label(self) -> str:
        """The port's name, else its number: what intercepts and the agent compare."""
        return str(self.port.get("name") or self.port.get("port"))

    @property
    def installed(self) -> bool:
        return injector.agent_installed(self.deployment)

    @property
    def kind(self) -> str:
        return str(self.deployment.get("kind") or DEPLOYMENT)


def _of_a_deployment(obj: dict[str, Any]) -> bool:
    return any(o.get("kind") == DEPLOYMENT
               for o in obj.get("metadata", {}).get("ownerReferences") or [])


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


def _original_template(deployment: dict[str, Any]) -> dict[str, Any]:
    saved = _annotations(deployment).get(injector.ANNOTATION_TEMPLATE)
    if saved:
        template: dict[str, Any] = json.loads(saved)
        return template
    return dict(deployment.get("spec", {}).get("template") or {})


def _original_ports(service: dict[str, Any]) -> list[dict[str, Any]]:
    saved = _annotations(service).get(injector.ANNOTATION_SERVICE_PORTS)
    if saved:
        ports: list[dict[str, Any]] = json.loads(saved)
        return ports
    return list(service.get("spec", {}).get("ports") or [])


def _describe_ports(ports: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p.get('name')}/{p.get('port')}" if p.get("name") else str(p.get("port"))
                     for p in ports) or "none"


def find_port(service: dict[str, Any], wanted: str) -> dict[str, Any]:
    """The Service's TCP port named or numbered `wanted` ("" = its only one)."""
    name = service["metadata"]["name"]
    tcp = [p for p in _original_ports(service) if (p.get("protocol") or "TCP") == "TCP"]
    if not wanted:
        if len(tcp) != 1:
            raise PortNotFound(f"service {name} has {len(tcp)} ports ({_describe_ports(tcp)}): "
                               "choose one with -p LOCALPORT:SVCPORT")
        return tcp[0]
    for port in tcp:
        if wanted in (str(port.get("name") or ""), str(port.get("port"))):
            return port
    raise PortNotFound(f"service {name} has no port {wanted}; its ports are "
                       f"{_describe_ports(tcp)}: choose one with -p LOCALPORT:SVCPORT")


def container_port(deployment: dict[str, Any], port: dict[str, Any]) -> int:
    """The app container's port number a Service port targets (0 when no container has it)."""
    target: Any = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for container in _original_template(deployment).get("spec", {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target:
                return int(declared.get("containerPort") or 0)
    return 0


def namespace_not_found(namespace: str) -> WorkloadNotFound:
    return WorkloadNotFound(f"namespace {namespace} not found; check the name with "
                            "`kubectl get namespaces`")


def reserved(name: str, namespace: str, manager_namespace: str) -> str:
    """Why a workload of the traffic-manager's namespace is refused ("" elsewhere; pure).

    An agent injected there restarts the traffic-manager (or what it runs beside) and
    cuts every client off, so, as Telepresence does, nothing there is intercepted.
    """
    if not manager_namespace or namespace != manager_namespace:
        return ""
    if name == MANAGER_NAME:
        return ("not interceptable: it is the traffic-manager, which every client's "
                "connection goes through; intercept an application workload")
    return (f"not interceptable: namespace {namespace} is the traffic-manager's; intercept "
            "workloads in your application's namespaces")


def no_replicas(kind: str, workload: dict[str, Any], namespace: str) -> str:
    """Why a workload scaled to 0 is refused ("" otherwise; pure): no pod could take the
    traffic-agent, so an intercept could only time out."""
    if (workload.get("spec") or {}).get("replicas", 1) != 0:
        return ""
    name = workload.get("metadata", {}).get("name", "?")
    return (f"not interceptable: it has 0 replicas, so no pod can take the traffic-agent; "
            f"scale it up: kubectl scale {kind.lower()}/{name} -n {namespace} --replicas=1")


def agent_problem(name: str, namespace: str, rollout: DeploymentState) -> str:
    """A one-line reason when an agent container cannot start; "" while all is well."""
    for pod in rollout.pods:
        reason, message = pod.waiting.get(injector.AGENT_CONTAINER, ("", ""))
        if reason in FATAL_REASONS:
            return (f"the traffic-agent of {name}.{namespace} cannot start: pod {pod.name} "
                    f"{reason}{': ' + message if message else ''}; check the agent image and "
                    f"`kubectl -n {namespace} describe pod {pod.name}`")
    return ""


class Workloads:
    """Agent injection and removal against one cluster, for one manager's `State`."""

    def __init__(self, kube: Kube, state: State, agent_image: str,
                 manager_address: str, manager_namespace: str = "") -> None:
        """`manager_namespace`: the traffic-manager's own, whose workloads are refused."""
        self.kube = kube
        self.state = state
        self.agent_image = agent_image
        self.manager_address = manager_address
        self.manager_namespace = manager_namespace
        self.settings = get_settings().intercept
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, name), asyncio.Lock())

    # --- resolution (blocking) -------------------------------------------------------

    def resolve(self, spec: Any) -> Resolved:
        """Find the spec's Deployment, its Service and the service port; check injectability."""
        ns, name = spec.namespace, spec.workload
        if not name or not ns:
            raise InterceptInvalid("an intercept needs a workload and a namespace")
        # before any read: nothing in the manager's namespace is ever touched
        reason = reserved(name, ns, self.manager_namespace)
        if reason:
            raise NotInterceptable(f"{(spec.workload_kind or DEPLOYMENT).lower()} {name}.{ns} "
                                   f"is {reason}")
        deployment = self.find(ns, name, spec.workload_kind)
        kind = str(deployment.get("kind") or DEPLOYMENT)
        what = f"{kind.lower()} {name}"
        ok, reason = injector.interceptable(kind, deployment)
        if not ok:
            raise NotInterceptable(f"{what}.{ns} is {reason}")
        with self._cluster_errors():
            services = self.kube.list_services(ns)
        if spec.service_name:
            service = next((s for s in services
                            if s["metadata"]["name"] == spec.service_name), None)
            if service is None:
                raise WorkloadNotFound(f"service {spec.service_name} not found in namespace "
                                       f"{ns}: check the name with `kubectl -n {ns} get svc`")
            if not injector.selects(service, deployment):
                raise NotInterceptable(f"service {spec.service_name} does not select the pods "
                                       f"of {what}: choose a Service that does")
        else:
            matching = [s for s in services if injector.selects(s, deployment)]
            if not matching:
                raise NotInterceptable(f"{what}.{ns} is not interceptable: no "
                                       "Service selects its pods; create a Service for it")
            if len(matching) > 1:
                names = ", ".join(s["metadata"]["name"] for s in matching)
                raise AmbiguousService(f"{what} is selected by services {names}: "
                                       "choose one with --service NAME")
            service = matching[0]
        port = find_port(service, spec.service_port)
        ok, reason = injector.interceptable(kind, deployment, [service])
        if not ok:
            raise NotInterceptable(f"{what}.{ns} is {reason}")
        reason = no_replicas(kind, deployment, ns)
        if reason:
            raise NotInterceptable(f"{what}.{ns} is {reason}")
        return Resolved(deployment, service, port, container_port(deployment, port))

    def find(self, ns: str, name: str, kind: str = "") -> dict[str, Any]:
        """The workload named `name` of `kind`, or ("" kind) the first of `injector.KINDS`
        with that name (as Telepresence resolves a bare name); a missing namespace is named
        as such."""
        if kind and kind not in injector.KINDS:
            _, reason = injector.interceptable(kind, {"metadata": {"name": name}})
            raise NotInterceptable(f"{kind} {name}.{ns} is {reason}")
        with self._cluster_errors():
            for candidate in [kind] if kind else injector.KINDS:
                workload = self.kube.get_deployment(ns, name, candidate)
                if workload is not None:
                    workload.setdefault("kind", candidate)
                    return workload
            if not self.kube.namespace_exists(ns):
                raise namespace_not_found(ns)
        raise WorkloadNotFound(f"{(kind or DEPLOYMENT).lower()} {name} not found in namespace "
                               f"{ns}: check the name with `tp list -n {ns}`")

    @contextlib.contextmanager
    def _cluster_errors(self) -> Iterator[None]:
        try:
            yield
        except KubeError as exc:
            raise WorkloadError(f"the traffic-manager's Kubernetes request failed: {exc}; "
                                "check the cluster and try again") from exc

    async def canonical_spec(self, spec: Any) -> Any:
        """The spec with workload kind, Service and port resolved, so that "" / "80" /
        "http" name the same port (conflicts compare them)."""
        resolved = await asyncio.to_thread(self.resolve, spec)
        spec = type(spec).FromString(spec.SerializeToString())
        spec.workload_kind = resolved.kind
        spec.service_name = resolved.service_name
        spec.service_port = resolved.port_label
        return spec

    # --- writes (blocking) ------------------------------------------------------------

    def _inject(self, spec: Any) -> None:
        """Write the injected Deployment (first) and Service; re-read on a lost race."""
        for _ in range(self.settings.manager_write_retries + 1):
            resolved = self.resolve(spec)
            try:
                deployment, service = injector.inject(
                    resolved.deployment, resolved.service, resolved.port_label,
                    self.agent_image, self.manager_address,
                    first_agent_port=self.settings.agent_port_offset,
                    image_pull_secrets=agent_pull_secrets_from_env(),
                    replace_app=bool(spec.replace_app))
            except injector.InjectError as exc:
                raise NotInterceptable(f"{resolved.kind.lower()} {spec.workload}."
                                       f"{spec.namespace} cannot be intercepted: {exc}") from exc
            try:
                with self._cluster_errors():
                    # the Deployment first: until its pods have the agent, an unchanged
                    # Service keeps reaching the app (a rewritten one would reach nothing)
                    if not resolved.installed or spec.replace_app:
                        self.kube.replace(deployment)
                        self._renew_pods(deployment)
                    if service is not None:
                        self.kube.replace(service)
                return
            except WorkloadError as exc:
                if not isinstance(exc.__cause__, KubeConflict):
                    raise
                log.info("injecting into %s.%s lost a race; reading again",
                         spec.workload, spec.namespace)
        raise WorkloadError(f"{spec.workload_kind.lower() or 'deployment'} {spec.workload}."
                            f"{spec.namespace} kept changing while the traffic-agent was "
                            "injected; try again")

    def _renew_pods(self, workload: dict[str, Any]) -> None:
        """A ReplicaSet keeps its pods when its template changes: delete them so that it
        makes them again from the (injected or restored) template."""
        if workload.get("kind") != "ReplicaSet":
            return
        selector = workload.get("spec", {}).get("selector", {}).get("matchLabels") or {}
        if selector:
            self.kube.delete_pods(workload["metadata"]["namespace"], selector)

    def restore(self, namespace: str, name: str, kind: str = DEPLOYMENT) -> bool:
        """Give the workload (`kind`) and its Services back their pre-injection specs.

        False when the workload is gone or has no agent (nothing to do).
        """
        for _ in range(self.settings.manager_write_retries + 1):
            with self._cluster_errors():
                deployment = self.kube.get_deployment(namespace, name, kind)
                if deployment is None:
                    return False
                deployment.setdefault("kind", kind)
                services = [s for s in self.kube.list_services(namespace)
                            if injector.ANNOTATION_SERVICE_PORTS in _annotations(s)
                            and injector.selects(s, deployment)]
            if not injector.agent_installed(deployment) and not services:
                return False
            try:
                with self._cluster_errors():
                    # the Service first: it goes back to the app's port while the pods
                    # still run the app there
                    for service in services:
                        _, restored_service = injector.restore(deployment, service)
                        if restored_service is not None:
                            self.kube.replace(restored_service)
                    if injector.agent_installed(deployment):
                        restored, _ = injector.restore(deployment, None)
                        self.kube.replace(restored)
                        self._renew_pods(restored)
                return True
            except WorkloadError as exc:
                if not isinstance(exc.__cause__, KubeConflict):
                    raise
                log.info("restoring %s.%s lost a race; reading again", name, namespace)
        raise WorkloadError(f"{kind.lower()} {name}.{namespace} kept changing while it was "
                            "restored; run the uninstall again")

    # --- listing and dispositions (blocking) -----------------------------------------

    def list_workloads(self, namespace: str) -> list[Any]:
        """ListWorkloads without the intercepts: Deployments, then ReplicaSets (but those
        of a Deployment) and StatefulSets, each with its state."""
        with self._cluster_errors():
            if not self.kube.namespace_exists(namespace):
                raise namespace_not_found(namespace)
            deployments = self.kube.list_deployments(namespace)
            services = self.kube.list_services(namespace)
            others = self.kube.list_replicasets(namespace) + self.kube.list_statefulsets(
                namespace)
        result = []
        for d in sorted(deployments, key=lambda d: str(d["metadata"]["name"])):
            state, reason = workload_state(DEPLOYMENT, d, services, self.manager_namespace)
            result.append(pb.WorkloadInfo(
                name=d["metadata"]["name"], namespace=namespace, kind=DEPLOYMENT, state=state,
                reason=reason, agent_installed=injector.agent_installed(d)))
        for obj in sorted(others, key=lambda o: (str(o["kind"]), str(o["metadata"]["name"]))):
            if _of_a_deployment(obj):
                continue  # a Deployment's ReplicaSet is listed as its Deployment
            state, reason = workload_state(obj["kind"], obj, services,
                                           self.manager_namespace)
            result.append(pb.WorkloadInfo(name=obj["metadata"]["name"], namespace=namespace,
                                          kind=obj["kind"], state=state, reason=reason,
                                          agent_installed=injector.agent_installed(obj)))
        return result

    def serving(self, namespace: str, service: str) -> str:
        """"" when the Service reaches only agent pods, else what is pending."""
        with self._cluster_errors():
            ready, selected = self.kube.service_backends(namespace, service)
            containers = self.kube.pod_containers(namespace, sorted(set(ready + selected)))
        return serving_problem(service, ready, selected, containers)

    def rollout_problem(self, namespace: str, name: str, kind: str = DEPLOYMENT) -> str:
        """Why the workload's agent cannot start ("" while all is well)."""
        with self._cluster_errors():
            rollout = self.kube.deployment_state(namespace, name, kind or DEPLOYMENT)
        return agent_problem(name, namespace, rollout)

    # --- RPCs -------------------------------------------------------------------------

    async def prepare(self, spec: Any) -> Any:
        """PrepareIntercept: resolve, inject when absent, wait for the agent to arrive."""
        ns, name = spec.namespace, spec.workload
        async with self._lock(ns, name):
            resolved = await asyncio.to_thread(self.resolve, spec)
            installed = resolved.installed
            image = self.agent_image
            # `tp replace` rewrites the template even with an agent (the app goes)
            writes = not installed or bool(spec.replace_app)
            try:
                if writes:
                    log.info("injecting the traffic-agent into %s %s.%s (service %s, port %s)",
                             resolved.kind, name, ns, resolved.service_name,
                             resolved.port_label)
                    await asyncio.to_thread(self._inject, spec)
                else:
                    image = next((c.get("image", "") for c in resolved.deployment["spec"][
                        "template"]["spec"]["containers"]
                        if c.get("name") == injector.AGENT_CONTAINER), image)
                await self._wait_for_agent(ns, name, resolved.kind)
                if spec.replace_app:
                    await self._wait_for_rollout(ns, name, resolved.kind)
            except BaseException:
                if writes:  # nothing half-done: take back what this call changed
                    log.info("preparing %s.%s failed; restoring it", name, ns)
                    try:
                        await asyncio.to_thread(self.restore, ns, name, resolved.kind)
                    except WorkloadError:
                        log.exception("could not restore %s.%s after a failed prepare",
                                      name, ns)
                raise
        return pb.PreparedIntercept(
            workload_kind=resolved.kind, service_name=resolved.service_name,
            service_port_name=str(resolved.port.get("name") or ""),
            service_port=int(resolved.port.get("port") or 0),
            container_port=resolved.container_port, agent_installed=installed,
            agent_image=image)

    async def _wait_for_agent(self, namespace: str, name: str, kind: str) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.settings.activate_timeout
        deadline = loop.time() + timeout
        last = ""
        while not self.state.has_agent(namespace, name):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AgentTimeout(
                    f"the traffic-agent of {name}.{namespace} did not arrive within "
                    f"{timeout:g}s, so the {kind.lower()} was left as it was; see `kubectl -n "
                    f"{namespace} get pods` or raise intercept.activate_timeout")
            version = self.state.version
            with self._cluster_errors():
                rollout = await asyncio.to_thread(self.kube.deployment_state, namespace, name,
                                                  kind)
            problem = agent_problem(name, namespace, rollout)
            if problem:
                raise AgentFailed(problem)
            line = (f"waiting for the traffic-agent of {name}.{namespace} "
                    f"({rollout.updated}/{rollout.desired} updated, {rollout.ready} ready)")
            if line != last:
                log.info("%s", line)
                last = line
            await wait_at_most(self.state.wait_change(version),
                               min(remaining, self.settings.manager_rollout_poll))

    async def _wait_for_rollout(self, namespace: str, name: str,
                                kind: str = DEPLOYMENT) -> None:
        """Until every replica runs the current template (`tp replace`: no app left)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.activate_timeout
        while True:
            with self._cluster_errors():
                rollout = await asyncio.to_thread(self.kube.deployment_state, namespace, name,
                                                  kind)
            if rollout.observed and rollout.updated == rollout.desired == rollout.ready \
                    == rollout.available:
                return
            problem = agent_problem(name, namespace, rollout)
            if problem:
                raise AgentFailed(problem)
            if loop.time() > deadline:
                raise AgentTimeout(f"{name}.{namespace} was not rolled out without its app "
                                   f"within {self.settings.activate_timeout:g}s; see `kubectl "
                                   f"-n {namespace} get pods`")
            await asyncio.sleep(self.settings.manager_rollout_poll)

    async def uninstall(self, request: Any,
                        allow: Callable[[list[tuple[str, str]]], Awaitable[None]] | None = None
                        ) -> Any:
        """UninstallAgents: drop the workloads' intercepts, then restore each workload.
        `allow` sees the (namespace, name) targets first and raises to refuse them all."""
        ns = request.namespace
        if request.workloads and not ns:
            raise InterceptInvalid("name the namespace of the workloads with -n NAMESPACE")
        if not request.workloads and not request.all:
            raise InterceptInvalid("name the workloads (--agent NAME) or use --all-agents")
        with self._cluster_errors():
            if request.workloads:
                targets = []
                for name in request.workloads:
                    workloads = [w for w in [await asyncio.to_thread(
                        self.kube.get_deployment, ns, name, k) for k in injector.KINDS]
                        if w and not _of_a_deployment(w)]
                    if not workloads:
                        if not await asyncio.to_thread(self.kube.namespace_exists, ns):
                            raise namespace_not_found(ns)
                        raise WorkloadNotFound(f"deployment {name} not found in namespace "
                                               f"{ns}: check the name with `tp list -n {ns}`")
                    installed = [w for w in workloads if injector.agent_installed(w)]
                    if not installed:
                        raise NotInterceptable(f"{str(workloads[0]['kind']).lower()} {name}."
                                               f"{ns} has no traffic-agent: nothing to "
                                               "uninstall")
                    targets += [(ns, name, str(w["kind"])) for w in installed]
            else:
                every = (await asyncio.to_thread(self.kube.list_deployments, ns)
                         + await asyncio.to_thread(self.kube.list_workloads_of, ns))
                # a Deployment's ReplicaSets carry its annotations: the Deployment is restored
                targets = [(d["metadata"]["namespace"], d["metadata"]["name"], str(d["kind"]))
                           for d in every
                           if injector.agent_installed(d) and not _of_a_deployment(d)]
        if allow is not None:
            await allow([(ns, name) for ns, name, _ in targets])
        result = pb.UninstallAgentsResult()
        for namespace, name, kind in targets:
            async with self._lock(namespace, name):
                self.state.remove_workload_intercepts(namespace, name,
                                                      "its traffic-agent was uninstalled")
                try:
                    restored = await asyncio.to_thread(self.restore, namespace, name, kind)
                except WorkloadError as exc:
                    result.error = (f"restoring {kind.lower()} {name}.{namespace} failed: "
                                    f"{exc}; run the uninstall again")
                    return result
            if restored:
                log.info("traffic-agent removed from %s %s.%s", kind, name, namespace)
                result.restored.append(f"{kind}/{name}.{namespace}")
        return result


def workload_state(kind: str, workload: dict[str, Any], services: list[dict[str, Any]],
                   manager_namespace: str = "") -> tuple[pb.WorkloadState, str]:
    """(pb.WorkloadState, reason) of a workload that no intercept holds (pure). The state
    is what callers read; the reason is text for people (NOT_INTERCEPTABLE only).
    The checks and their order are those of `Workloads.resolve`."""
    metadata = workload.get("metadata", {})
    namespace = str(metadata.get("namespace", ""))
    reason = reserved(str(metadata.get("name", "")), namespace, manager_namespace)
    if not reason:
        ok, reason = injector.interceptable(kind, workload, services)
        reason = reason if not ok else no_replicas(kind, workload, namespace)
    if reason:
        return pb.WORKLOAD_STATE_NOT_INTERCEPTABLE, reason.removeprefix("not interceptable: ")
    if injector.agent_installed(workload):
        return pb.WORKLOAD_STATE_AGENT_INSTALLED, ""
    return pb.WORKLOAD_STATE_INTERCEPTABLE, ""


def serving_problem(service: str, ready: list[str], selected: list[str],
                    containers: dict[str, list[str]]) -> str:
    """"" once every ready endpoint of the Service is a pod with the traffic-agent (and
    there is one) and no selected pod without it is left; else what is still pending."""
    if not ready:
        return f"service {service} has no ready endpoint yet"
    for name in ready:
        if injector.AGENT_CONTAINER not in containers.get(name, []):
            return f"service {service} still reaches pod {name} without the traffic-agent"
    for name in selected:
        if name in containers and injector.AGENT_CONTAINER not in containers[name]:
            # endpoints change before every proxy has caught up: a new connection may
            # still be sent to a terminating pod and be reset
            return f"pod {name} without the traffic-agent is still terminating"
    return ""
