"""Every timeout, TTL, limit and default of tp-jupyter, in one settings object.

`Settings` is made of one section per component; each field carries its default
and a docstring that says what it governs. Code reads `get_settings()` instead of
hard-coding numbers. A JSON file named by `$TP_SETTINGS` overrides fields, e.g.
``{"connect": {"session_ttl": 30}}``.

Sections add fields in their own class only (helpers editing in parallel).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SandboxSettings:
    """The sandbox cluster as a whole: processes, addresses, lifecycle."""

    api_port: int = 16443
    """Host-loopback port of the default sandbox's API server (named instances pick a free one)."""

    api_address: str = "172.30.0.1"
    """API server address inside the sandbox (on the node's loopback; laptops route only to it)."""

    api_inner_port: int = 6443
    """API server port on `api_address`, as seen from pods and laptops."""

    pod_cidr: str = "10.244.0.0/16"
    """Cluster-wide pod range."""

    node_pod_cidr: str = "10.244.0.0/24"
    """The node's `spec.podCIDR`; pod addresses are /32s from it."""

    service_cidr: str = "10.96.0.0/16"
    """Service ClusterIP range; a Service outside it is refused with the range in the message."""

    cluster_domain: str = "cluster.local"
    """Cluster DNS domain."""

    dns_service_ip: str = "10.96.0.10"
    """ClusterIP of the cluster DNS service named in pods' resolv.conf."""

    laptop_address_prefix: str = "172.31.0."
    """Laptop K gets `<prefix>K`; its only route leads to `api_address`."""

    up_timeout: float = 30.0
    """Seconds `tp sandbox up` waits for the API server (and node) to serve."""

    stop_grace: float = 5.0
    """Seconds a sandbox process gets after SIGTERM before SIGKILL on `down`."""

    restart_backoff_max: float = 10.0
    """Ceiling of the supervisor's back-off between restarts of a crashed sandbox process."""


@dataclass
class ApiServerSettings:
    """The sandbox's Kubernetes-compatible API server."""

    watch_history: int = 5000
    """Events kept for resuming watches; an older resourceVersion gets 410 Gone."""

    watch_bookmark_interval: float = 30.0
    """Seconds between BOOKMARK events on watches that asked for them."""

    watch_default_timeout: float = 1800.0
    """Seconds a watch stays open when the client sets no timeoutSeconds."""

    request_body_limit: int = 3 * 1024 * 1024
    """Largest request body accepted (bytes), as etcd's object limit."""


@dataclass
class ControllerSettings:
    """Controllers of the sandbox (deployments, replica sets, endpoints, GC, namespaces)."""

    resync_interval: float = 30.0
    """Seconds between full resyncs of each controller's informer."""

    progress_deadline_default: int = 600
    """Deployment `progressDeadlineSeconds` when the spec leaves it out."""


@dataclass
class NodeSettings:
    """The sandbox node: kubelet, kube-proxy and cluster DNS."""

    node_name: str = "sandbox-node"
    """Name of the single Node object."""

    status_interval: float = 10.0
    """Seconds between Node status heartbeats."""

    crashloop_backoff_initial: float = 1.0
    """First restart back-off of a crashing container (doubles up to the maximum)."""

    crashloop_backoff_max: float = 20.0
    """Largest restart back-off (Kubernetes uses 300 s; the sandbox keeps tests quick)."""

    image_pull_backoff: float = 2.0
    """Seconds between retries of an image that is not in the catalog."""

    default_grace_period: int = 30
    """terminationGracePeriodSeconds when the pod spec leaves it out."""

    log_max_bytes: int = 16 * 1024 * 1024
    """Largest container log kept per container (older bytes are dropped)."""


@dataclass
class ConnectSettings:
    """Workstation side of `tp connect`: daemon, session, routing and DNS."""

    manager_namespace: str = "ambassador"
    """Namespace of the traffic-manager (the seed's default)."""

    session_ttl: float = 15.0
    """Seconds the manager keeps a silent client session before it expires with its intercepts."""

    remain_interval: float = 5.0
    """Seconds between the daemon's `Remain` calls."""

    rpc_timeout: float = 10.0
    """Default timeout of a unary gRPC call."""

    install_timeout: float = 120.0
    """Seconds to wait for the traffic-manager rollout on first connect."""

    connect_timeout: float = 30.0
    """Seconds `tp connect` waits for the daemon to report connected."""

    reconnect_backoff_max: float = 5.0
    """Ceiling of the back-off between reconnects when the port-forward or manager drops."""

    dns_timeout: float = 4.0
    """Seconds the daemon's resolver waits for an answer (manager or upstream)."""


@dataclass
class InterceptSettings:
    """Intercepts, traffic-agent and traffic capture."""

    agent_port_offset: int = 9900
    """Reserved for the agent's own admin port."""

    activate_timeout: float = 60.0
    """Seconds `tp intercept` waits for the agent to arrive and the intercept to be ACTIVE."""

    capture_body_limit: int = 4096
    """Bytes of each request/response body kept in a traffic row."""

    traffic_history: int = 10000
    """Traffic rows the daemon keeps (oldest dropped first)."""

    local_dial_timeout: float = 5.0
    """Seconds to reach the local destination before answering 502."""


@dataclass
class NotebookSettings:
    """The notebook front."""

    widget_refresh_interval: float = 0.5
    """Seconds between refreshes of the live traffic widget."""


@dataclass
class Settings:
    """All of tp-jupyter's settings, one section per component."""

    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    apiserver: ApiServerSettings = field(default_factory=ApiServerSettings)
    controllers: ControllerSettings = field(default_factory=ControllerSettings)
    node: NodeSettings = field(default_factory=NodeSettings)
    connect: ConnectSettings = field(default_factory=ConnectSettings)
    intercept: InterceptSettings = field(default_factory=InterceptSettings)
    notebook: NotebookSettings = field(default_factory=NotebookSettings)

    def override(self, values: dict[str, Any]) -> None:
        """Apply ``{"section": {"field": value}}``; unknown names are an error."""
        for section_name, fields in values.items():
            section = getattr(self, section_name, None)
            if section is None or not dataclasses.is_dataclass(section):
                raise ValueError(f"unknown settings section {section_name!r}")
            known = {f.name for f in dataclasses.fields(section)}
            for name, value in fields.items():
                if name not in known:
                    raise ValueError(f"unknown setting {section_name}.{name}")
                setattr(section, name, value)


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, with `$TP_SETTINGS` (a JSON file) applied once."""
    global _settings
    if _settings is None:
        settings = Settings()
        path = os.environ.get("TP_SETTINGS")
        if path:
            with open(path, encoding="utf-8") as f:
                settings.override(json.load(f))
        _settings = settings
    return _settings
