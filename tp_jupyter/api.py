"""The plain-Python API of tp, used by the `tp` CLI and the magics.

    connect(...) -> ConnectResult    starts the daemon if needed, connects it
    status()     -> Status           daemon, cluster, manager, DNS and subnets blocks
    quit()       -> QuitResult       disconnects and stops the daemon
    list_workloads(namespace) -> WorkloadListing      `tp list`
    intercept(workload, namespace, port, ...) -> InterceptResult
    leave(name) -> LeaveResult
    uninstall(agent | all_agents | everything) -> UninstallResult

Every call goes through `daemon_client.DaemonClient`. Results render themselves as text
(`str`, and `_repr_pretty_` for IPython) and HTML (`_repr_html_`), and give their stable
machine-readable fields with `to_dict()` (`--format json|yaml`, docs/cli-output.md).
Errors are the front's `TpError`s (tp_jupyter.errors), one line each.
"""

from __future__ import annotations

import contextlib
import datetime
import html
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_daemon import leftovers
from tp_daemon.root import client as root_client
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import intercept_spec
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import get_settings

from tp_jupyter import daemon_client, daemon_spawn, mirror_view
from tp_jupyter.errors import DaemonError, TpError, UsageError
from tp_jupyter.render import Rendered

ProgressCallback = Callable[[str], None]


def _block(title: str, rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [title] + [f"  {k.ljust(width)}: {v}" for k, v in rows]


def _html_table(title: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<b>{html.escape(title)}</b><table>{body}</table>"


def path_text(path: str, address: str) -> str:
    """`tp status`: how the daemon reaches the traffic-manager."""
    if path == "direct":
        return f"direct, TLS to {address} (LoadBalancer)"
    return f"port-forward through the API server to {address}"


def data_path_rows(st: dpb.StatusInfo) -> list[tuple[str, str]]:
    """`tp status`: how this session's connections and matched requests travelled."""
    if st.connection.manager_path == "direct":
        rows = [("Connections", f"{st.raw_dials} as raw TLS streams to the traffic-manager, "
                                f"{st.grpc_dials} through gRPC tunnels")]
        if st.raw_dial_note:
            rows.append(("Raw dials", st.raw_dial_note))
    else:
        rows = [("Connections", f"{st.pod_route_connections} by pod port-forward, "
                                f"{st.tunnel_connections} through the traffic-manager")]
    rows += [(f"Link of {ic.spec.name}",
              f"{ic.link_state}; {ic.link_connections} connections by link, "
              f"{ic.relay_connections} through the traffic-manager")
             for ic in st.intercepts if ic.link_state]
    return rows


def data_path_dict(st: dpb.StatusInfo) -> dict[str, Any]:
    return {"pod_route_connections": st.pod_route_connections,
            "tunnel_connections": st.tunnel_connections,
            "raw_dials": st.raw_dials, "grpc_dials": st.grpc_dials,
            "raw_dial_note": st.raw_dial_note or None,
            "links": [{"intercept": ic.spec.name, "state": ic.link_state,
                       "link_connections": ic.link_connections,
                       "relay_connections": ic.relay_connections}
                      for ic in st.intercepts if ic.link_state]}


def path_dict(path: str, address: str, note: str) -> dict[str, Any]:
    return {"manager_path": path or None, "manager_address": address or None,
            "manager_path_note": note or None}


@dataclass(repr=False)
class ConnectResult(Rendered):
    """What `tp connect` did; prints as `Connected to context <ctx> (<server>)`."""

    context: str
    server: str
    namespace: str
    manager_namespace: str
    already_connected: bool = False
    manager_installed: bool = False
    proxy_mode: bool = False
    socks_address: str = ""
    version_warning: str = ""
    session_id: str = ""
    daemon_version: str = ""
    manager_version: str = ""
    proxy_env: bool = False  # the notebook set the kernel's proxy variables
    manager_path: str = ""  # "direct" | "port-forward"
    manager_address: str = ""
    manager_path_note: str = ""  # why not direct (one line)

    @classmethod
    def from_info(cls, info: dpb.ConnectInfo) -> ConnectResult:
        return cls(info.cluster_context, info.cluster_server, info.namespace,
                   info.manager_namespace, info.already_connected, info.manager_installed,
                   info.mode == dpb.MODE_PROXY, info.socks_address, info.version_warning,
                   info.session_id, info.daemon_version, info.manager_version,
                   manager_path=info.manager_path, manager_address=info.manager_address,
                   manager_path_note=info.manager_path_note)

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/connect.json)."""
        return {"context": self.context, "server": self.server, "namespace": self.namespace,
                "manager_namespace": self.manager_namespace,
                "already_connected": self.already_connected,
                "manager_installed": self.manager_installed,
                "mode": "proxy" if self.proxy_mode else "tun",
                "socks_address": self.socks_address or None,
                "session_id": self.session_id, "daemon_version": self.daemon_version,
                "manager_version": self.manager_version,
                "version_warning": self.version_warning or None,
                **path_dict(self.manager_path, self.manager_address, self.manager_path_note)}

    def lines(self) -> list[str]:
        lines = []
        if self.manager_installed:
            lines.append(f"Installed the traffic-manager in namespace {self.manager_namespace}")
        if self.already_connected:
            lines.append(f"Already connected to context {self.context} ({self.server}); "
                         "nothing to do")
        else:
            lines.append(f"Connected to context {self.context} ({self.server})")
        if self.proxy_mode:
            lines.append(self.proxy_line())
        if self.manager_path_note:
            lines.append(self.manager_path_note[0].upper() + self.manager_path_note[1:])
        if self.version_warning:
            lines.append(f"Warning: {self.version_warning}")
        return lines

    def proxy_line(self) -> str:
        """One line: what works in proxy mode, what does not, and why."""
        why = root_client.unavailable_reason() or "--proxy-mode was given"
        where = f"socks5h://{self.socks_address}"
        if self.proxy_env:
            return (f"Proxy mode: requests/httpx in this kernel reach the cluster through "
                    f"{where} (ALL_PROXY/HTTP(S)_PROXY set until `%tp quit`); cluster names "
                    f"do not resolve for urllib, curl or other programs: {why}")
        return (f"Proxy mode: cluster names and addresses are reachable through the SOCKS5 "
                f"proxy {where} (remote DNS) only; they do not resolve for programs that "
                f"do not use it (urllib, curl): {why}")

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        return "<br>".join(html.escape(line) for line in self.lines())


@dataclass(repr=False)
class Status(Rendered):
    """`tp status`: daemon, cluster, manager, DNS and subnets blocks."""

    daemon_running: bool
    connected: bool = False
    info: dpb.StatusInfo = field(default_factory=dpb.StatusInfo)

    def blocks(self) -> list[tuple[str, list[tuple[str, str]]]]:
        if not self.daemon_running:
            return [("Daemon: not running", [])]
        st = self.info
        blocks: list[tuple[str, list[tuple[str, str]]]] = [
            ("Daemon: running", [("Version", st.daemon.version), ("PID", str(st.daemon.pid)),
                                 ("Log file", st.daemon.log_file),
                                 ("Root", "yes" if st.root else "no (proxy mode only)")])]
        if not self.connected:
            rows = [("Last error", st.last_error)] if st.last_error else []
            blocks.append(("Cluster: not connected (run `tp connect`)", rows))
            return blocks
        c = st.connection
        ci = c.cluster_info
        if st.unreachable_since:
            since = datetime.datetime.fromtimestamp(st.unreachable_since).strftime("%H:%M:%S")
            cluster = f"Cluster: unreachable since {since} (reconnecting)"
            manager = "Traffic manager: unreachable (reconnecting)"
        else:
            cluster, manager = "Cluster: connected", "Traffic manager: connected"
        blocks.append((cluster, [("Context", c.cluster_context),
                                 ("Server", c.cluster_server),
                                 ("Namespace", c.namespace)]))
        manager_rows = [("Namespace", c.manager_namespace), ("Version", c.manager_version),
                        ("Session", c.session_id)]
        if c.manager_path:
            manager_rows.append(("Path", path_text(c.manager_path, c.manager_address)))
        if c.manager_path_note:
            manager_rows.append(("Not direct", c.manager_path_note))
        if st.reconnected:
            manager_rows.append(("Reconnected", st.reconnected))
        if st.last_error:
            manager_rows.append(("Last error", st.last_error))
        blocks.append((manager, manager_rows))
        if c.mode == dpb.MODE_PROXY:
            dns = [("Mode", f"remote, through SOCKS5 socks5h://{c.socks_address}")]
        else:
            dns = [("Mode", "port 53 redirected to the daemon (resolv.conf untouched)")]
        dns += [("Cluster domain", ci.cluster_domain), ("DNS service", ci.dns_ip)]
        blocks.append(("DNS:", dns))
        subnets = [*ci.pod_cidrs, ci.service_cidr]
        mode = "routed (TUN + nftables)" if c.mode == dpb.MODE_TUN else "via SOCKS5 proxy"
        blocks.append((f"Subnets: ({len(subnets)}, {mode})", [("-", s) for s in subnets]))
        mirrors = [(ic.spec.name, mirror_view.copies_text(ic)) for ic in st.intercepts
                   if ic.spec.mirror]
        if mirrors:
            blocks.append(("Mirrors:", mirrors))
        blocks.append(("Data path:", data_path_rows(st)))
        return blocks

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/status.json)."""
        st = self.info
        daemon = None
        if self.daemon_running:
            daemon = {"version": st.daemon.version, "pid": st.daemon.pid,
                      "log_file": st.daemon.log_file, "root": st.root}
        connection = None
        if self.connected:
            c = st.connection
            ci = c.cluster_info
            connection = {
                "context": c.cluster_context, "server": c.cluster_server,
                "namespace": c.namespace, "manager_namespace": c.manager_namespace,
                "manager_version": c.manager_version, "session_id": c.session_id,
                "mode": "proxy" if c.mode == dpb.MODE_PROXY else "tun",
                "socks_address": c.socks_address or None,
                "cluster_domain": ci.cluster_domain, "dns_ip": ci.dns_ip,
                "pod_cidrs": list(ci.pod_cidrs), "service_cidr": ci.service_cidr,
                **path_dict(c.manager_path, c.manager_address, c.manager_path_note)}
        unreachable = None
        if self.connected and st.unreachable_since:
            unreachable = datetime.datetime.fromtimestamp(
                st.unreachable_since, tz=datetime.UTC).isoformat()
        return {"daemon_running": self.daemon_running, "daemon": daemon,
                "connected": self.connected, "connection": connection,
                "unreachable_since": unreachable,
                "reconnected": (st.reconnected or None) if self.connected else None,
                "intercepts": [intercept_dict(ic) for ic in st.intercepts],
                "data_path": data_path_dict(st) if self.connected else None,
                "last_error": st.last_error or None}

    def __str__(self) -> str:
        lines: list[str] = []
        for title, rows in self.blocks():
            if title.startswith("Subnets"):
                lines += [title] + [f"  - {v}" for _, v in rows]
            else:
                lines += _block(title, rows)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return "".join(_html_table(title, rows) for title, rows in self.blocks())


@dataclass(repr=False)
class QuitResult(Rendered):
    was_running: bool
    was_connected: bool = False
    cleaned: list[str] = field(default_factory=list)
    """What a daemon that died had left on this workstation and quit removed."""

    def __str__(self) -> str:
        if not self.was_running:
            text = "tp daemon is not running"
        else:
            text = ("Disconnected; tp daemon stopped" if self.was_connected
                    else "tp daemon stopped")
        if self.cleaned:
            text += "\nRemoved what a daemon that died left behind: " + ", ".join(self.cleaned)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"was_running": self.was_running, "was_connected": self.was_connected,
                **({"cleaned": list(self.cleaned)} if self.cleaned else {})}



def connect(kubeconfig: str | None = None, *, context: str | None = None,
            namespace: str | None = None, manager_namespace: str | None = None,
            proxy_mode: bool = False, progress: ProgressCallback | None = None,
            manager_image: str | None = None, agent_image: str | None = None,
            registry: str | None = None, image_pull_secrets: list[str] | None = None,
            manager_address: str | None = None, manager_service_type: str | None = None
            ) -> ConnectResult:
    """Connect the workstation to the cluster (starting the daemon if needed).

    The image options apply when this connect installs the traffic-manager:
    `registry` (e.g. `registry.example.com/team`) holds both images; `manager_image` /
    `agent_image` are `[REGISTRY/]NAME[:TAG]` (no tag: this client's version);
    `image_pull_secrets` name Secrets for a private registry. `manager_address` is
    auto|direct|port-forward|HOST:PORT (direct connect, see `tp connect --help`);
    `manager_service_type` LoadBalancer makes an install expose the manager for it.
    """
    started = False
    # an early daemon (`tp connect`, daemon_spawn) may answer already: it is still ours
    if daemon_spawn.pending() or not daemon_client.running():
        daemon_client.start_daemon()
        started = True
    request = dpb.ConnectRequest(kubeconfig=kubeconfig or "", context=context or "",
                                 namespace=namespace or "",
                                 manager_namespace=manager_namespace or "",
                                 proxy_mode=proxy_mode, manager_image=manager_image or "",
                                 agent_image=agent_image or "", image_registry=registry or "",
                                 image_pull_secrets=image_pull_secrets or [],
                                 manager_address=manager_address or "",
                                 manager_service_type=manager_service_type or "")
    with daemon_client.DaemonClient() as client:
        try:
            with _progress(client, progress, None):
                info = client.connect(request)
        except TpError:
            if started:  # leave nothing behind: the daemon this call started goes too
                with contextlib.suppress(TpError):
                    _stop(client)
            raise
    return ConnectResult.from_info(info)


def status() -> Status:
    """The daemon's and connection's state (works when the daemon is not running)."""
    if not daemon_client.running():
        return Status(daemon_running=False)
    with daemon_client.DaemonClient() as client:
        info = client.status()
    return Status(daemon_running=True, connected=info.connected, info=info)


def quit() -> QuitResult:
    """Disconnect (routes, DNS, nft, session) and stop the daemon."""
    if not daemon_client.running():
        # a daemon that was killed leaves its record (and maybe sshfs mounts): remove them
        from tp_daemon.intercepts import volumes
        unmounted = [f"folder {path} (unmounted)" for path in volumes.cleanup_stale()]
        return QuitResult(was_running=False, cleaned=unmounted + leftovers.clean())
    with daemon_client.DaemonClient() as client:
        was_connected = _stop(client)
    return QuitResult(was_running=True, was_connected=was_connected,
                      cleaned=leftovers.clean())


def _stop(client: daemon_client.DaemonClient) -> bool:
    pid = client.version().pid  # to wait for the process itself, not poll its socket
    info = client.quit()
    if not daemon_client.wait_stopped(get_settings().notebook.daemon_stop_timeout, pid):
        raise DaemonError("the tp daemon did not stop after quit; see its log file and end "
                          "it with `kill`")
    return info.was_connected


# --- intercepts -----------------------------------------------------------------------------

_STATES = {
    dpb.WORKLOAD_STATE_READY_NOT_INSTALLED: "ready to intercept (traffic-agent not yet installed)",
    dpb.WORKLOAD_STATE_READY_INSTALLED: "ready to intercept (traffic-agent already installed)",
    dpb.WORKLOAD_STATE_INTERCEPTED: "intercepted",
}


def _state_name(state: int) -> str:
    return str(mpb.InterceptState.Name(state)).removeprefix("INTERCEPT_STATE_")


def intercepting_lines(spec: mpb.InterceptSpec) -> list[str]:
    """`all TCP connections`, or the header matches as the seed prints them."""
    if spec.mechanism == mpb.MECHANISM_HTTP or spec.header_matches or spec.mirror:
        conditions = mirror_view.filter_lines(spec)
        if spec.mirror and not conditions:
            return ["a copy of every HTTP request (the app answers)"]
        head = ("a copy of HTTP requests that match all of (the app answers):" if spec.mirror
                else "HTTP requests that match all of:")
        return [head] + [f"  {c}" for c in conditions]
    return ["all TCP connections"]


def intercept_rows(info: mpb.InterceptInfo, mount_point: str | None = None
                   ) -> list[tuple[str, str]]:
    """The seed's block as (label, value) rows; `Volume Mount Point` only when given."""
    spec = info.spec
    rows = [("Intercept name", spec.name), ("State", _state_name(info.state)),
            ("Workload kind", spec.workload_kind or "Deployment"),
            ("Destination", f"{spec.target_host or '127.0.0.1'}:{spec.target_port}")]
    if mount_point is not None:
        rows.append(("Volume Mount Point", mount_point or "none"))
    lines = intercepting_lines(spec)
    rows.append(("Intercepting", lines[0]))
    rows += [("", line) for line in lines[1:]]
    if spec.mirror:
        rows.append(("Copies", mirror_view.copies_text(info)))
    if info.message and info.state != mpb.INTERCEPT_STATE_ACTIVE:
        rows.append(("Message", info.message))
    elif info.message:  # an active intercept's message is a warning (e.g. version skew)
        rows.append(("Warning", info.message))
    return rows


def intercept_dict(info: mpb.InterceptInfo) -> dict[str, Any]:
    """One intercept in machine-readable output (`status`, `list`, `intercept`)."""
    spec = info.spec
    http = spec.mechanism == mpb.MECHANISM_HTTP or bool(spec.header_matches)
    return {
        "name": spec.name, "id": info.id, "workload": spec.workload,
        "workload_kind": spec.workload_kind or "Deployment", "namespace": spec.namespace,
        "state": _state_name(info.state).lower(),
        "mechanism": "http" if http else "tcp",
        "header_matches": [{"name": m.name, "regex": m.regex} for m in spec.header_matches],
        **mirror_view.intercept_fields(info),
        "service_port": spec.service_port or None,
        "destination": {"host": spec.target_host or "127.0.0.1", "port": spec.target_port},
        "mount_point": spec.mount_point or None, "client_session": info.client_session,
        "owner": spec.owner or None,
        "agent_pod": info.agent_pod or None, "pod_ip": info.pod_ip or None,
        "message": info.message or None,
        "created": (info.created.ToDatetime(tzinfo=datetime.UTC).isoformat()
                    if info.HasField("created") else None),
    }


def _theirs(ic: mpb.InterceptInfo) -> bool:
    """Another developer's: the manager lists it without its id, and names its owner."""
    return not ic.id and bool(ic.spec.owner or ic.spec.client)


def _owner(ic: mpb.InterceptInfo) -> str:
    """Who holds an intercept: the Kubernetes username, else the daemon's user@host."""
    return ic.spec.owner or ic.spec.client or "another developer"


def _block_lines(rows: list[tuple[str, str]], indent: str = "    ") -> list[str]:
    width = max((len(k) for k, v in rows if k), default=0)
    out = []
    for k, v in rows:
        if k:
            out.append(f"{indent}{k.ljust(width)}: {v}".rstrip() if not v
                       else f"{indent}{k.ljust(width)}: {v}")
        else:
            out.append(f"{indent}{v}")
    return out


def _rows_html(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in rows) + "</table>"


@dataclass(repr=False)
class WorkloadListing(Rendered):
    """`tp list`: one line per workload, intercepted ones followed by their blocks."""

    namespace: str
    workloads: list[dpb.WorkloadInfo]

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/list.json)."""
        return {"namespace": self.namespace, "workloads": [
            {"name": w.name, "namespace": w.namespace or self.namespace,
             "kind": w.kind or "Deployment",
             "state": str(dpb.WorkloadState.Name(w.state)).removeprefix(
                 "WORKLOAD_STATE_").lower(),
             "reason": w.reason or None,
             "intercepts": [intercept_dict(ic) for ic in w.intercepts]}
            for w in self.workloads]}

    def state_text(self, w: dpb.WorkloadInfo) -> str:
        if w.state == dpb.WORKLOAD_STATE_NOT_INTERCEPTABLE:
            return f"not interceptable: {w.reason}"
        theirs = [ic for ic in w.intercepts if _theirs(ic)]
        if theirs and len(theirs) == len(w.intercepts):  # none of them is yours
            return f"intercepted by {', '.join(sorted({_owner(ic) for ic in theirs}))}"
        return _STATES.get(w.state, "unknown")

    @staticmethod
    def rows(ic: mpb.InterceptInfo) -> list[tuple[str, str]]:
        """An intercept's block; another developer's (listed without its id) names them."""
        rows = intercept_rows(ic)
        if _theirs(ic):
            client = f" ({ic.spec.client})" if ic.spec.owner and ic.spec.client else ""
            rows.append(("Intercepted by", _owner(ic) + client))
        return rows

    @staticmethod
    def label(w: dpb.WorkloadInfo) -> str:
        """The name, with the kind when it is not a Deployment (the seed's lines stay)."""
        kind = w.kind or "Deployment"
        return w.name if kind == "Deployment" else f"{w.name} ({kind})"

    def __str__(self) -> str:
        if not self.workloads:
            return (f"No workloads (Deployments, ReplicaSets, StatefulSets) in namespace "
                    f"{self.namespace}")
        width = max(len(self.label(w)) for w in self.workloads)
        lines: list[str] = []
        for w in self.workloads:
            lines.append(f"{self.label(w).ljust(width)}: {self.state_text(w)}")
            for ic in w.intercepts:
                lines += _block_lines(self.rows(ic))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = ""
        for w in self.workloads:
            blocks = "".join(_rows_html(self.rows(ic)) for ic in w.intercepts)
            body += (f"<tr><td style='text-align:left'><b>{html.escape(self.label(w))}</b></td>"
                     f"<td style='text-align:left'>{html.escape(self.state_text(w))}{blocks}"
                     "</td></tr>")
        return f"<b>Workloads in {html.escape(self.namespace)}</b><table>{body}</table>"


@dataclass(repr=False)
class InterceptResult(Rendered):
    """What `tp intercept` made; prints as the seed's `Using Deployment X` and block."""

    info: mpb.InterceptInfo
    workload_kind: str = "Deployment"
    mount_point: str | None = None
    env_files: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.info.spec.name)

    @property
    def state(self) -> str:
        return _state_name(self.info.state)

    @property
    def env(self) -> dict[str, str]:
        """The intercepted container's environment, references resolved."""
        return dict(self.info.environment)

    def rows(self) -> list[tuple[str, str]]:
        return intercept_rows(self.info, self.mount_point)

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/intercept.json)."""
        data = intercept_dict(self.info)
        data["workload_kind"] = self.workload_kind
        data["mount_point"] = self.mount_point or None
        data["environment"] = dict(sorted(self.env.items()))
        data["env_files"] = list(self.env_files)
        return data

    def __str__(self) -> str:
        lines = [f"Using {self.workload_kind} {self.info.spec.workload}"]
        lines += _block_lines(self.rows())
        lines += [f"Wrote the environment to {path}" for path in self.env_files]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (f"<b>Using {html.escape(self.workload_kind)} "
                f"{html.escape(self.info.spec.workload)}</b>" + _rows_html(self.rows()))


@dataclass(repr=False)
class LeaveResult(Rendered):
    name: str
    note: str = ""
    """e.g. the traffic-manager had already forgotten it ("" = none)."""

    def __str__(self) -> str:
        return f"Left intercept {self.name}" + (f" ({self.note})" if self.note else "")

    def to_dict(self) -> dict[str, Any]:
        return {"left": self.name, **({"note": self.note} if self.note else {})}


@dataclass(repr=False)
class UninstallResult(Rendered):
    restored: list[str]
    manager_removed: bool = False
    ended: list[mpb.InterceptSpec] = field(default_factory=list)
    """Other developers' intercepts that ended with their agents (`--force`)."""

    def __str__(self) -> str:
        lines = [f"Removed the traffic-agent from {r}" for r in self.restored]
        if not self.restored:
            lines.append("No traffic-agent to remove")
        lines += [f"Ended the intercept {s.name} of {s.owner or s.client or 'another client'}"
                  f"{f' ({s.client})' if s.owner and s.client else ''} on "
                  f"{s.workload}.{s.namespace}" for s in self.ended]
        if self.manager_removed:
            lines.append("Removed the traffic-manager and disconnected; run `tp connect` to "
                         "start again")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return "<br>".join(html.escape(line) for line in str(self).splitlines())

    def to_dict(self) -> dict[str, Any]:
        return {"restored": list(self.restored), "manager_removed": self.manager_removed,
                "ended": [{"name": s.name, "owner": s.owner or None,
                           "client": s.client or None, "workload": s.workload,
                           "namespace": s.namespace} for s in self.ended]}


def _client() -> daemon_client.DaemonClient:
    if not daemon_client.running():
        raise UsageError("not connected: run `tp connect` first", code="not_connected")
    return daemon_client.DaemonClient()


def list_workloads(namespace: str | None = None) -> WorkloadListing:
    """The namespace's workloads and their intercept state (default: the connected one)."""
    with _client() as client:
        reply = client.list_workloads(dpb.ListRequest(namespace=namespace or ""))
        if not namespace:
            namespace = client.status().connection.namespace
    return WorkloadListing(namespace, list(reply.workloads))


@contextlib.contextmanager
def _spec_usage() -> Iterator[None]:
    """The shared intercept-spec checks (tp_protocol.intercept_spec) as the front's error."""
    try:
        yield
    except intercept_spec.InvalidInterceptSpec as e:
        raise UsageError(str(e)) from e


def parse_port(port: int | str) -> tuple[int, str]:
    """`-p LOCAL[:SVCPORT]` -> (local port, service port name or number or "")."""
    with _spec_usage():
        return intercept_spec.parse_port(port)


def parse_http_match(matches: Sequence[str] | str | None) -> list[mpb.HeaderMatch] | None:
    """`KEY=REGEX` pairs (all must match); None means a global intercept (`all` or none)."""
    with _spec_usage():
        return intercept_spec.parse_http_match(matches)


def parse_mount(mount: bool | str | None) -> tuple[bool, str]:
    """`--mount true|false|DIR` -> (no_mount, mount_point)."""
    if mount is None or mount is True or (isinstance(mount, str)
                                          and mount.lower() in ("true", "yes", "")):
        return False, ""
    if isinstance(mount, str) and mount.endswith((":ro", ":rw")):
        # `DIR:ro` / `:ro` (a temp folder, read-only): the daemon reads the suffix
        folder, mode = mount[:-3], mount[-3:]
        return False, (str(Path(folder).expanduser().absolute()) if folder else "") + mode
    if mount is False or (isinstance(mount, str) and mount.lower() in ("false", "no")):
        return True, ""
    return False, str(Path(str(mount)).expanduser().absolute())


def intercept(workload: str, namespace: str | None = None, port: int | str = 8080, *,
              http_match: Sequence[str] | str | None = None, name: str | None = None,
              env_file: str | None = None, env_json: str | None = None,
              mount: bool | str | None = True, target_host: str = "127.0.0.1",
              replace: bool = False, progress: ProgressCallback | None = None,
              replace_app: bool = False, hold: bool = False,
              hold_timeout: float | None = None, mirror: bool = False,
              http_path_equal: str | None = None, http_path_prefix: str | None = None,
              http_path_regex: str | None = None,
              http_method: Sequence[str] | str | None = None) -> InterceptResult:
    """Route the workload's traffic (or, with `http_match`, matching requests) to `port`.

    `port` is LOCAL or "LOCAL:SVCPORT"; `http_match` a list of "KEY=REGEX" (all must
    match) or "all"; `mount` True (a temp folder), False or a folder for the volumes;
    `env_file`/`env_json` receive the container's environment; `replace_app` (`tp replace`)
    also stops the app container while intercepted; `hold` holds matching requests for
    `tp_jupyter.held()` (`tp_jupyter.holding`); `mirror` makes a wiretap
    (`tp_jupyter.mirror_command`); the `http_path_*`/`http_method` filters are ANDed with
    `http_match`. On any error nothing is left behind
    (the intercept is removed, an agent injected for it uninstalled).
    """
    local, service_port = parse_port(port)
    matches = parse_http_match(http_match)
    no_mount, mount_point = parse_mount(mount)
    spec = mpb.InterceptSpec(
        name=name or "", workload=workload, namespace=namespace or "",
        service_port=service_port, target_host=target_host, target_port=local,
        mechanism=mpb.MECHANISM_TCP if matches is None else mpb.MECHANISM_HTTP,
        header_matches=matches or [], mount_point=mount_point, replace_app=replace_app,
        mirror=mirror)
    if mirror:
        spec.mechanism = mpb.MECHANISM_HTTP   # a wiretap copies requests, all by default
    with _spec_usage():
        intercept_spec.apply_filters(spec, path_equal=http_path_equal,
                                     path_prefix=http_path_prefix, path_regex=http_path_regex,
                                     methods=http_method)
        intercept_spec.validate(spec)
    if hold_timeout is not None and (not hold or hold_timeout <= 0):
        raise UsageError("--hold-timeout goes with --hold and must be more than 0 seconds")
    request = dpb.InterceptRequest(spec=spec, replace=replace, no_mount=no_mount,
                                   hold=hold, hold_timeout=hold_timeout or 0.0)
    with _client() as client, _progress(client, progress, "intercept"):
        reply = client.intercept(request)
    info = reply.intercept
    result = InterceptResult(info, reply.workload_kind or "Deployment",
                             None if no_mount else info.spec.mount_point)
    try:
        if env_file:
            _write(env_file, "".join(f"{k}={_one_line(v)}\n"
                                     for k, v in sorted(info.environment.items())))
            result.env_files.append(env_file)
        if env_json:
            _write(env_json, json.dumps(dict(sorted(info.environment.items())), indent=2)
                   + "\n")
            result.env_files.append(env_json)
    except UsageError:
        with contextlib.suppress(TpError):
            leave(info.spec.name)
        raise
    return result


def _one_line(value: str) -> str:
    # docker's env-file format has no quoting: a newline would start a new variable
    return value.replace("\n", "\\n")


def _write(path: str, text: str) -> None:
    try:
        Path(path).expanduser().write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path} ({e.strerror}); give a writable path (the "
                         "intercept was left)") from e


@contextlib.contextmanager
def _progress(client: daemon_client.DaemonClient, progress: ProgressCallback | None,
              operation: str | None) -> Iterator[None]:
    """The daemon's progress messages (of `operation`, or all) go to `progress`."""
    if progress is None:
        yield
        return
    sink = progress

    def show(event: dpb.Progress) -> None:
        if event.message and operation in (None, event.operation):
            sink(event.message)

    with client.progress(show):
        yield


def leave(name: str) -> LeaveResult:
    """Remove one of your intercepts (traffic returns to the app; its mount point goes)."""
    with _client() as client:
        reply = client.leave(name)
    return LeaveResult(name, reply.note)


def uninstall(agent: str | Sequence[str] | None = None, *, all_agents: bool = False,
              everything: bool = False, namespace: str | None = None,
              force: bool = False) -> UninstallResult:
    """Remove traffic-agents (restoring the workloads exactly); `everything` also removes
    the traffic-manager and disconnects. Agents other developers intercept through are
    refused (the error names them) unless `force` (their intercepts end)."""
    agents = [agent] if isinstance(agent, str) else list(agent or [])
    if not agents and not all_agents and not everything:
        raise UsageError("say what to uninstall: --agent WORKLOAD, --all-agents or "
                         "--everything")
    with _client() as client:
        reply = client.uninstall(dpb.UninstallRequest(
            agents=agents, all_agents=all_agents, everything=everything,
            namespace=namespace or "", force=force))
    return UninstallResult(list(reply.restored), reply.manager_removed, list(reply.ended))
