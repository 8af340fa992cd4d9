"""The plain-Python API of connect/status/quit, used by the `tp` CLI and the magics.

    connect(...) -> ConnectResult    starts the daemon if needed, connects it
    status()     -> Status           daemon, cluster, manager, DNS and subnets blocks
    quit()       -> QuitResult       disconnects and stops the daemon

Results render themselves as text (`str`) and HTML (`_repr_html_`). Errors are the
front's `TpError`s (tp_jupyter.errors), one line each.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

from tp_protocol import daemon_pb2 as dpb
from tp_protocol.settings import get_settings

from tp_jupyter import daemon_client
from tp_jupyter.errors import ClusterError, DaemonError, TpError, UsageError

ProgressCallback = Callable[[str], None]

_ERRORS: dict[int, type[TpError]] = {
    dpb.ERROR_CODE_USAGE: UsageError,
    dpb.ERROR_CODE_KUBECONFIG: UsageError,
    dpb.ERROR_CODE_NOT_FOUND: UsageError,
    dpb.ERROR_CODE_CONFLICT: UsageError,
    dpb.ERROR_CODE_CLUSTER_UNREACHABLE: ClusterError,
    dpb.ERROR_CODE_PERMISSION: ClusterError,
    dpb.ERROR_CODE_INSTALL: ClusterError,
    dpb.ERROR_CODE_VERSION_SKEW: ClusterError,
}


def raise_for(error: dpb.Error) -> None:
    """Turn a reply's `error` into the matching front exception."""
    raise _ERRORS.get(error.code, DaemonError)(error.message)


def _block(title: str, rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [title] + [f"  {k.ljust(width)}: {v}" for k, v in rows]


def _html_table(title: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<b>{html.escape(title)}</b><table>{body}</table>"


@dataclass
class ConnectResult:
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

    @classmethod
    def from_info(cls, info: dpb.ConnectInfo) -> ConnectResult:
        return cls(info.cluster_context, info.cluster_server, info.namespace,
                   info.manager_namespace, info.already_connected, info.manager_installed,
                   info.mode == dpb.MODE_PROXY, info.socks_address, info.version_warning)

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
            lines.append("Proxy mode (routes and DNS need root, or --proxy-mode was given): "
                         "cluster names and addresses are reachable through the SOCKS5 proxy "
                         f"socks5h://{self.socks_address} (remote DNS)")
        if self.version_warning:
            lines.append(f"Warning: {self.version_warning}")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        return "<br>".join(html.escape(line) for line in self.lines())


@dataclass
class Status:
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
        blocks.append(("Cluster: connected", [("Context", c.cluster_context),
                                              ("Server", c.cluster_server),
                                              ("Namespace", c.namespace)]))
        manager_rows = [("Namespace", c.manager_namespace), ("Version", c.manager_version),
                        ("Session", c.session_id)]
        if st.last_error:
            manager_rows.append(("Last error", st.last_error))
        blocks.append(("Traffic manager: " + ("reconnecting" if st.last_error else "connected"),
                       manager_rows))
        if c.mode == dpb.MODE_PROXY:
            dns = [("Mode", f"remote, through SOCKS5 socks5h://{c.socks_address}")]
        else:
            dns = [("Mode", "port 53 redirected to the daemon (resolv.conf untouched)")]
        dns += [("Cluster domain", ci.cluster_domain), ("DNS service", ci.dns_ip)]
        blocks.append(("DNS:", dns))
        subnets = [*ci.pod_cidrs, ci.service_cidr]
        mode = "routed (TUN + nftables)" if c.mode == dpb.MODE_TUN else "via SOCKS5 proxy"
        blocks.append((f"Subnets: ({len(subnets)}, {mode})", [("-", s) for s in subnets]))
        return blocks

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


@dataclass
class QuitResult:
    was_running: bool
    was_connected: bool = False

    def __str__(self) -> str:
        if not self.was_running:
            return "tp daemon is not running"
        return ("Disconnected; tp daemon stopped" if self.was_connected
                else "tp daemon stopped")

    def _repr_html_(self) -> str:
        return html.escape(str(self))


def connect(kubeconfig: str | None = None, *, context: str | None = None,
            namespace: str | None = None, manager_namespace: str | None = None,
            proxy_mode: bool = False, progress: ProgressCallback | None = None
            ) -> ConnectResult:
    """Connect the workstation to the cluster (starting the daemon if needed)."""
    started = False
    if not daemon_client.running():
        daemon_client.start_daemon()
        started = True
    request = dpb.ConnectRequest(kubeconfig=kubeconfig or "", context=context or "",
                                 namespace=namespace or "",
                                 manager_namespace=manager_namespace or "",
                                 proxy_mode=proxy_mode)
    with daemon_client.DaemonClient() as client:
        if progress is not None:
            sink = progress

            def show(event: dpb.Progress) -> None:
                if event.message:
                    sink(event.message)

            with client.progress(show):
                info = client.connect(request)
        else:
            info = client.connect(request)
        if info.HasField("error"):
            if started:  # leave nothing behind: the daemon this call started goes too
                _stop(client)
            raise_for(info.error)
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
        return QuitResult(was_running=False)
    with daemon_client.DaemonClient() as client:
        was_connected = _stop(client)
    return QuitResult(was_running=True, was_connected=was_connected)


def _stop(client: daemon_client.DaemonClient) -> bool:
    info = client.quit()
    if info.HasField("error"):
        raise_for(info.error)
    if not daemon_client.wait_stopped(get_settings().connect.quit_timeout):
        raise DaemonError("the tp daemon did not stop after quit; see its log file and end "
                          "it with `kill`")
    return info.was_connected
