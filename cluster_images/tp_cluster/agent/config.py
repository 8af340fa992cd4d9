"""The agent's configuration, read from the environment the injector gave it.

See `tp_cluster.injector` for the variables. The app container's environment comes
in under `ENV_PREFIX` (the kubelet has resolved every reference) and is reported to
the manager with the prefix stripped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from tp_cluster.agent import AgentError
from tp_cluster.injector import ENV_PREFIX, MOUNT_ROOT

SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"

# Service-link variables the kubelet gives every container of the pod (the app's too)
_SERVICE_LINK = re.compile(
    r"[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)")


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int


@dataclass(frozen=True)
class PortConfig:
    """One listener: the agent's port and the app's port behind it."""

    name: str
    port: int
    app_port: int
    service_ports: tuple[ServicePort, ...] = ()

    def answers_to(self, wanted: str) -> bool:
        """Whether an intercept's `service_port` (name or number) means this port."""
        names = {self.name, str(self.port), str(self.app_port)}
        for sp in self.service_ports:
            names.update((sp.name, str(sp.port)))
        names.discard("")
        return wanted in names


class MountConfig(NamedTuple):
    """One of the app container's volumes (served to the intercept's owner)."""

    name: str
    mount_path: str
    read_only: bool


@dataclass(frozen=True)
class AgentConfig:
    name: str
    namespace: str
    kind: str
    pod_name: str
    pod_ip: str
    manager_address: str
    ports: tuple[PortConfig, ...]
    mounts: tuple[MountConfig, ...] = ()
    app_container: str = ""
    app_env: Mapping[str, str] = field(default_factory=dict)
    listen_host: str = "0.0.0.0"
    mount_root: str = MOUNT_ROOT
    """Where the injector mounts the app's volumes into the agent (served to the owner)."""
    token_file: str = SA_TOKEN_FILE
    """The pod's projected service-account token: the agent's credentials at the manager
    (read at every call: the kubelet rotates it)."""

    def port_for(self, wanted: str) -> PortConfig:
        """The listener an intercept's service port means; AgentError says why none."""
        if not wanted:
            if len(self.ports) == 1:
                return self.ports[0]
            raise AgentError(f"{self.name} has {len(self.ports)} intercepted ports: "
                             "name the service port (-p LOCALPORT:SVCPORT)")
        for port in self.ports:
            if port.answers_to(wanted):
                return port
        known = ", ".join(p.name or str(p.port) for p in self.ports)
        raise AgentError(f"the agent of {self.name} does not serve port {wanted!r} "
                         f"(it serves {known}); uninstall the agent and intercept again")


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value:
        raise AgentError(f"${key} is not set: the traffic-agent must be injected by tp "
                         "(see tp_cluster.injector)")
    return value


def from_env(env: Mapping[str, str] | None = None) -> AgentConfig:
    env = os.environ if env is None else env
    try:
        raw_ports = json.loads(_required(env, "APP_PORTS"))
        raw_mounts = json.loads(env.get("APP_MOUNTS") or "[]")
        ports = tuple(
            PortConfig(name=str(p.get("name", "")), port=int(p["port"]),
                       app_port=int(p["app_port"]),
                       service_ports=tuple(ServicePort(str(s.get("name", "")), int(s["port"]))
                                           for s in p.get("service_ports", [])))
            for p in raw_ports)
        mounts = tuple(MountConfig(str(m["name"]), str(m["mountPath"]),
                                   bool(m.get("readOnly", False))) for m in raw_mounts)
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentError(f"$APP_PORTS/$APP_MOUNTS are not what the injector writes ({exc}); "
                         "re-inject the agent") from exc
    if not ports:
        raise AgentError("$APP_PORTS lists no port: re-inject the agent")
    return AgentConfig(
        name=_required(env, "AGENT_NAME"),
        namespace=_required(env, "AGENT_NAMESPACE"),
        kind=env.get("AGENT_KIND") or "Deployment",
        pod_name=env.get("POD_NAME", ""),
        pod_ip=env.get("POD_IP", ""),
        manager_address=_required(env, "MANAGER_ADDRESS"),
        ports=ports, mounts=mounts,
        app_container=env.get("APP_CONTAINER", ""),
        app_env=app_environment(env),
        listen_host=env.get("AGENT_LISTEN_HOST") or "0.0.0.0",
        mount_root=env.get("AGENT_MOUNT_ROOT") or MOUNT_ROOT,
        token_file=env.get("AGENT_TOKEN_FILE") or SA_TOKEN_FILE,
    )


def app_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The app container's environment: its own variables (copied under ENV_PREFIX by the
    injector) over the service-link variables every container of the pod gets."""
    result = {k: v for k, v in env.items() if _SERVICE_LINK.fullmatch(k)}
    result.update({k[len(ENV_PREFIX):]: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
    return result
