"""`tp gather-logs [-o FILE.zip]` (as Telepresence 2.32): one zip with the daemon's log,
the traffic-manager's and every traffic-agent's, and a `manifest.json`.

The daemon's log is read here (its file); the others are collected by the traffic-manager
(daemon GatherLogs -> manager GatherLogs: its own in-memory log, the agents' through
pods/log). Each log keeps at most `connect.gather_logs_max_bytes` (its tail). The
manifest says, per component, where it came from, its size, whether it was truncated,
and why it could not be read (daemon not running, not connected, pods/log refused...).

Layout: `daemon/daemon.log`, `traffic-manager/<namespace>.log`,
`traffic-agent/<namespace>/<pod>.log`, `manifest.json`.

Errors: an unwritable output path is a one-line `UsageError` (nothing is written).
"""

from __future__ import annotations

import datetime
import html
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tp_daemon import paths
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as mpb
from tp_protocol.logtail import tail
from tp_protocol.settings import get_settings

from tp_jupyter import daemon_client
from tp_jupyter.errors import TpError, UsageError
from tp_jupyter.render import Rendered

DEFAULT_OUTPUT = "tp-logs.zip"


def _entry(component: str, *, source: str, namespace: str = "", pod: str = "",
           container: str = "", workload: str = "") -> dict[str, Any]:
    return {"component": component, "namespace": namespace or None, "pod": pod or None,
            "container": container or None, "workload": workload or None, "source": source,
            "file": None, "size": 0, "bytes": 0, "truncated": False, "error": None}


@dataclass(repr=False)
class GatherLogsResult(Rendered):
    """The zip written and its manifest."""

    file: str
    manifest: dict[str, Any]

    def lines(self) -> list[str]:
        lines = [f"Wrote {self.file}"]
        for c in self.manifest["components"]:
            where = "/".join(x for x in (c["namespace"], c["pod"]) if x)
            what = f"{c['component']}{' ' + where if where else ''}"
            if c["error"]:
                lines.append(f"  {what}: not collected ({c['error']})")
            else:
                cut = f", truncated from {c['size']} bytes" if c["truncated"] else ""
                lines.append(f"  {what}: {c['bytes']} bytes{cut}")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        return "<br>".join(html.escape(line) for line in self.lines())

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/gather-logs.json)."""
        return {"file": self.file, "manifest": self.manifest}


def gather_logs(output: str | None = None, max_bytes: int | None = None) -> GatherLogsResult:
    """Write the zip (default `tp-logs.zip` here) and return what it holds."""
    limit = max_bytes or get_settings().connect.gather_logs_max_bytes
    if limit <= 0:
        raise UsageError(f"--max-bytes {limit}: give a positive number of bytes")
    target = Path(output or DEFAULT_OUTPUT).expanduser().absolute()
    if target.suffix != ".zip":
        raise UsageError(f"-o {output}: the output is a zip; give a FILE.zip")
    if not target.parent.is_dir():
        raise UsageError(f"-o {output}: folder {target.parent} does not exist; create it "
                         "or give another path")
    files: dict[str, bytes] = {}
    components: list[dict[str, Any]] = []

    log_file = paths.log_path()
    daemon = _entry("daemon", source=f"file:{log_file}")
    try:
        data = log_file.read_bytes()
    except OSError as e:
        daemon["error"] = f"cannot read {log_file} ({e.strerror})"
    else:
        text, cut = tail(data, limit)
        daemon.update(file="daemon/daemon.log", size=len(data), bytes=len(text), truncated=cut)
        files["daemon/daemon.log"] = text
    components.append(daemon)

    cluster: list[mpb.ComponentLog] = []
    unreachable = ""
    if not daemon_client.running():
        unreachable = "the tp daemon is not running: run `tp connect` first"
    else:
        try:
            with daemon_client.DaemonClient() as client:
                cluster = client.gather_logs(limit)
        except TpError as e:
            unreachable = str(e)
    if unreachable:
        for name in ("traffic-manager", "traffic-agent"):
            entry = _entry(name, source="traffic-manager")
            entry["error"] = unreachable
            components.append(entry)
    for item in cluster:
        entry = _entry(item.component, source=item.source, namespace=item.namespace,
                       pod=item.pod, container=item.container, workload=item.workload)
        if item.error:
            entry["error"] = item.error
        else:
            name = (f"traffic-manager/{item.namespace}.log" if item.component ==
                    "traffic-manager" else f"{item.component}/{item.namespace}/{item.pod}.log")
            files[name] = bytes(item.text)
            entry.update(file=name, size=int(item.size), bytes=len(item.text),
                         truncated=bool(item.truncated))
        components.append(entry)

    manifest = {"created": datetime.datetime.now(datetime.UTC).isoformat(),
                "client_version": VERSION, "max_bytes": limit, "components": components}
    try:
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
            zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    except OSError as e:
        raise UsageError(f"cannot write {target} ({e.strerror}); give a writable path with "
                         "-o") from e
    return GatherLogsResult(str(target), manifest)
