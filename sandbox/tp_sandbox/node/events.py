"""The kubelet's Events (Pulling, Pulled, Failed, BackOff, Created, Started, Killing,
Unhealthy) with the wording of the real kubelet, written in order by one task and
aggregated by `tp_sandbox.eventlog` (a repeat bumps `count`)."""

from __future__ import annotations

import asyncio
import logging

from tp_protocol.aio import spawn

from ..eventlog import Aggregator, Write
from .errors import ApiError, ApiNotFound
from .kubeapi import KubeApi, Obj

log = logging.getLogger(__name__)


class EventSink:
    """Queue of Event writes; `emit` never blocks nor fails the pod worker."""

    def __init__(self, api: KubeApi, node_name: str) -> None:
        self.api = api
        self.aggregator = Aggregator("kubelet", node_name)
        self._queue: asyncio.Queue[tuple[Obj, str, str, str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = spawn(self._run(), "kubelet-events", log)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def emit(self, pod: Obj, etype: str, reason: str, message: str,
             container: str = "") -> None:
        """An event about `pod` (or, with `container`, one of its containers)."""
        path = ""
        if container:
            spec = pod.get("spec", {})
            init = any(c.get("name") == container for c in spec.get("initContainers") or [])
            path = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
        self._queue.put_nowait((pod, etype, reason, message, path))

    async def _run(self) -> None:
        while True:
            pod, etype, reason, message, path = await self._queue.get()
            obj = {"kind": "Pod", "apiVersion": "v1", "metadata": pod.get("metadata", {})}
            write = self.aggregator.record(obj, etype, reason, message, path)
            try:
                await asyncio.to_thread(self._write, write)
            except ApiNotFound:
                self.aggregator.forget(write)
                retry = self.aggregator.record(obj, etype, reason, message, path)
                try:
                    await asyncio.to_thread(self._write, retry)
                except ApiError as exc:
                    log.warning("could not record event %s: %s", reason, exc)
            except ApiError as exc:
                log.warning("could not record event %s: %s", reason, exc)

    def _write(self, write: Write) -> None:
        if write.patch is None:
            self.api.create_event(write.namespace, write.body)
        else:
            self.api.patch_event(write.namespace, write.name, write.patch)
