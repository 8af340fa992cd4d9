"""`tp gather-logs` on the manager's side: its own recent log and every agent's.

    BUFFER.install(max_bytes)      keep the manager's recent log lines in memory
    gather(state, kube, max_bytes) one `ComponentLog` per component (manager first)

The manager's own log comes from an in-memory ring of its log records (`LogBuffer`,
installed by `python -m tp_cluster.manager`), so it needs no API access and still has
what was logged when pods/log is refused. Agents' logs are read with pods/log through
the manager's Kubernetes adapter (its ClusterRole grants `get` on `pods/log`, read only):
that has what the agent printed before it reached the manager, and a crashed agent's
last words, which a log streamed over the agent's session would miss. The agents are
the pods whose traffic-agent arrived (`State` agent sessions).

Errors: a log that cannot be read is a `ComponentLog` with `error` (one line), never a
failed call.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tp_protocol import manager_pb2 as pb
from tp_protocol.logtail import tail

from tp_cluster.errors import ClusterError
from tp_cluster.injector import AGENT_CONTAINER
from tp_cluster.kube import Kube
from tp_cluster.manager.state import State

MANAGER = "traffic-manager"
AGENT = "traffic-agent"


class LogBuffer(logging.Handler):
    """The manager's recent log lines, at most `max_bytes` (oldest dropped first)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: collections.deque[bytes] = collections.deque()
        self.size = 0          # bytes held
        self.total = 0         # bytes ever logged
        self.max_bytes = 0
        self._guard = threading.Lock()   # records come from worker threads too
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def install(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        root = logging.getLogger()
        if self not in root.handlers:
            root.addHandler(self)

    @property
    def installed(self) -> bool:
        return self in logging.getLogger().handlers

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
        except Exception:
            self.handleError(record)
            return
        with self._guard:
            self.lines.append(line)
            self.size += len(line)
            self.total += len(line)
            while self.size > self.max_bytes and len(self.lines) > 1:
                self.size -= len(self.lines.popleft())

    def text(self) -> tuple[bytes, int]:
        """(what is held, bytes logged since start)."""
        with self._guard:
            return b"".join(self.lines), self.total


BUFFER = LogBuffer()
"""The manager process's buffer (installed by `python -m tp_cluster.manager`)."""


def _own(namespace: str, max_bytes: int) -> Any:
    entry = pb.ComponentLog(component=MANAGER, namespace=namespace, container=MANAGER,
                            source="memory")
    if not BUFFER.installed:
        entry.error = "this traffic-manager keeps no log buffer (not started as a pod)"
        return entry
    held, total = BUFFER.text()
    text, cut = tail(held, max_bytes)
    entry.text, entry.size, entry.truncated = text, total, cut or total > len(held)
    return entry


async def gather(state: State, kube: Kube | None, namespace: str, max_bytes: int,
                 tail_lines: int, *,
                 readable: Callable[[str, str], Awaitable[bool]] | None = None
                 ) -> AsyncIterator[Any]:
    """The manager's log, then each arrived agent's (pods/log), each at most `max_bytes`;
    an agent's log only where `readable(namespace, workload)` (the caller's rights)."""
    yield _own(namespace, max_bytes)
    agents = sorted({(s.agent.namespace, s.agent.pod_name, s.agent.name)
                     for s in list(state.sessions.values()) if s.kind == "agent"})
    for ns, pod, workload in agents:
        entry = pb.ComponentLog(component=AGENT, namespace=ns, pod=pod, workload=workload,
                                container=AGENT_CONTAINER, source="pods/log")
        if readable is not None and not await readable(ns, workload):
            entry.error = (f"you may not read {workload}.{ns}'s logs (needs get on the "
                           "workload in that namespace)")
        elif kube is None:
            entry.error = "this traffic-manager runs without Kubernetes access"
        elif not pod:
            entry.error = "the agent did not say which pod it runs in"
        else:
            try:
                data = await asyncio.to_thread(kube.pod_log, ns, pod, AGENT_CONTAINER,
                                               tail_lines)
            except ClusterError as e:
                entry.error = str(e)
            else:
                entry.text, entry.truncated = tail(data, max_bytes)
                entry.size = len(data)
        yield entry
