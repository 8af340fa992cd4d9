"""`tp version` and `tp config view`: what runs, in which versions, with which settings.

    version() -> VersionReport      client, daemon, traffic-manager (what the daemon API
                                    reports) and the skew rule when they differ
    config_view() -> ConfigView     every effective setting and where it came from:
                                    `default`, `file` ($TP_SETTINGS) or `environment`

Both are read without connecting: a daemon that does not run, or is not connected, is
reported as such. The settings shown are this process's (the daemon reads the same
`$TP_SETTINGS` when `tp connect` starts it from this environment).

Errors: an unreadable or invalid `$TP_SETTINGS` file is a one-line `UsageError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_daemon import paths
from tp_protocol import VERSION
from tp_protocol import daemon_pb2 as dpb
from tp_protocol.settings import Settings, get_settings

from tp_jupyter import daemon_client
from tp_jupyter.errors import UsageError
from tp_jupyter.render import Rendered

# --- version --------------------------------------------------------------------------------


def _key(version: str) -> tuple[int, ...]:
    """`0.2.0` -> (0, 2, 0); a pre-release suffix is ignored (only the order matters)."""
    release = re.split(r"[-+]", version, maxsplit=1)[0]
    return tuple(int(n) for n in re.findall(r"\d+", release)[:3])


def skew(client: str, daemon: str | None, manager: str | None) -> list[str]:
    """The version skew rule, one line per component that differs from the client."""
    lines = []
    if daemon and daemon != client:
        age = "older" if _key(daemon) < _key(client) else "newer"
        lines.append(f"daemon {daemon} is {age} than client {client}: run `tp quit` then "
                     "`tp connect` to restart it with this client")
    if manager and manager != client:
        if _key(manager) < _key(client):
            lines.append(f"traffic-manager {manager} is older than client {client}: run "
                         "`tp uninstall --everything` then `tp connect` to upgrade it")
        else:
            lines.append(f"traffic-manager {manager} is newer than client {client}: upgrade "
                         "this client (`pip install -U tp-jupyter`) to match it")
    return lines


@dataclass(repr=False)
class VersionReport(Rendered):
    """`tp version`: one line per component, then the skew rule when versions differ."""

    client: str
    daemon: dpb.VersionInfo | None = None          # None: no daemon answers
    manager_version: str | None = None             # None: not connected
    manager_namespace: str | None = None
    # (workload, namespace, version) of each connected traffic-agent in the connected
    # namespace and the namespaces of your intercepts; None when not connected
    agents: list[tuple[str, str, str]] | None = None

    @property
    def skew(self) -> list[str]:
        return skew(self.client, self.daemon.version if self.daemon else None,
                    self.manager_version)

    def rows(self) -> list[tuple[str, str]]:
        daemon = (f"{self.daemon.version} (pid {self.daemon.pid})" if self.daemon
                  else "not running")
        manager = (f"{self.manager_version} (namespace {self.manager_namespace})"
                   if self.manager_version else "not connected")
        rows = [("Client", self.client), ("Daemon", daemon), ("Traffic Manager", manager)]
        rows += [(f"Traffic Agent {w}.{ns}", v) for w, ns, v in self.agents or []]
        return rows

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        lines = [f"{k.ljust(width)}: {v}" for k, v in self.rows()]
        return "\n".join(lines + [f"Version skew: {line}" for line in self.skew])

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/version.json)."""
        return {
            "client": {"version": self.client},
            "daemon": ({"version": self.daemon.version, "pid": self.daemon.pid}
                       if self.daemon else None),
            "traffic_manager": ({"version": self.manager_version,
                                 "namespace": self.manager_namespace}
                                if self.manager_version else None),
            "agents": (None if self.agents is None else
                       [{"workload": w, "namespace": ns, "version": v}
                        for w, ns, v in self.agents]),
            "skew": self.skew,
        }


def version() -> VersionReport:
    """This client's version, and the daemon's and traffic-manager's when they answer."""
    report = VersionReport(VERSION)
    if not daemon_client.running():
        return report
    with daemon_client.DaemonClient() as client:
        report.daemon = client.version()
        status = client.status()
    if status.connected:
        report.manager_version = status.connection.manager_version or None
        report.manager_namespace = status.connection.manager_namespace or None
        # the connected namespace's agents, and those of namespaces you intercept in
        namespaces = sorted({status.connection.namespace}
                            | {ic.spec.namespace for ic in status.intercepts})
        report.agents = []
        with daemon_client.DaemonClient() as client:
            for namespace in namespaces:
                listed = client.list_workloads(dpb.ListRequest(namespace=namespace))
                if not listed.HasField("error"):
                    report.agents += [(w.name, w.namespace or namespace, v)
                                      for w in listed.workloads for v in w.agent_versions]
    return report


# --- config view ----------------------------------------------------------------------------

SOURCES = ("default", "file", "environment")


@dataclass
class Setting:
    name: str            # `section.field`, or the environment's own names (`kubeconfig`)
    value: Any
    source: str          # one of SOURCES
    origin: str | None   # the file, or the environment variable; None for a default


def _environment() -> list[Setting]:
    """Values the front and the daemon it starts take from environment variables."""
    defaults = {
        "settings_file": ("TP_SETTINGS", None),
        "daemon_home": ("TP_HOME", str(Path.home() / ".cache" / "tp-jupyter"
                                       / f"netns-{paths.netns_id()}")),
        "daemon_log_level": ("TP_LOG_LEVEL", "INFO"),
        "kubeconfig": ("KUBECONFIG", str(Path.home() / ".kube" / "config")),
    }
    out = []
    for name, (variable, default) in defaults.items():
        value = os.environ.get(variable)
        if value:
            out.append(Setting(name, value, "environment", variable))
        else:
            out.append(Setting(name, default, "default", None))
    return out


def _file_values(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except OSError as e:
        raise UsageError(f"cannot read the $TP_SETTINGS file {path} ({e.strerror}); fix "
                         "the path or unset TP_SETTINGS") from e
    except ValueError as e:
        raise UsageError(f"the $TP_SETTINGS file {path} is not valid JSON ({e}); fix it or "
                         "unset TP_SETTINGS") from e
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise UsageError(f'the $TP_SETTINGS file {path} must be {{"section": {{"field": '
                         'value}}}}; fix it or unset TP_SETTINGS')
    return values


@dataclass(repr=False)
class ConfigView(Rendered):
    """`tp config view`: `name = value  (source)` per setting."""

    settings_file: str | None
    settings: list[Setting] = field(default_factory=list)
    environment: list[Setting] = field(default_factory=list)

    def __str__(self) -> str:
        rows = [*self.environment, *self.settings]
        width = max(len(s.name) for s in rows)
        values = [json.dumps(s.value) if not isinstance(s.value, str) else s.value
                  for s in rows]
        vwidth = max(len(v) for v in values)
        lines = []
        for s, v in zip(rows, values, strict=True):
            source = s.source if s.origin is None else f"{s.source} ({s.origin})"
            lines.append(f"{s.name.ljust(width)} = {v.ljust(vwidth)}  {source}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/config-view.json)."""
        return {"settings_file": self.settings_file,
                "environment": [dataclasses.asdict(s) for s in self.environment],
                "settings": [dataclasses.asdict(s) for s in self.settings]}


def config_view() -> ConfigView:
    """Every effective setting, and whether it is the default or came from $TP_SETTINGS."""
    path = os.environ.get("TP_SETTINGS") or None
    overrides = _file_values(path) if path else {}
    try:
        effective = get_settings()
    except ValueError as e:   # an unknown section or field in the file
        raise UsageError(f"the $TP_SETTINGS file {path}: {e}; fix it or unset "
                         "TP_SETTINGS") from e
    view = ConfigView(path, environment=_environment())
    for section in dataclasses.fields(Settings):
        values = getattr(effective, section.name)
        given = overrides.get(section.name, {})
        for f in dataclasses.fields(values):
            from_file = f.name in given
            view.settings.append(Setting(f"{section.name}.{f.name}",
                                         getattr(values, f.name),
                                         "file" if from_file else "default",
                                         path if from_file else None))
    return view
