"""The kubelet: Node object, pod watch, one `PodWorker` per pod, the kubelet API.

Tasks and threads (all named; failures logged):

    node-heartbeat      patches the Node's Ready condition every `status_interval` (and
                        registers the Node again if it is gone); touches run/node.heartbeat
    pod-watch (thread)  list + watch of pods with spec.nodeName=<node>, events to a queue
    pod-dispatch        starts/updates/stops workers from the queue
    pod-<ns>/<name>     one per pod (see `pods`)
    kubelet API         aiohttp on run/kubelet.sock (see `server`)

Shutdown (SIGTERM): the sandbox is going down, so every pod is stopped (grace capped
by `shutdown_grace`) and its netns removed; the Pod objects stay in the API and get
new sandboxes when the node comes back. After a crash instead, leftovers are adopted
on start: a pod that still exists keeps its address and netns and its containers are
started again (stale processes are killed first: their log pipes died with us);
netns and files of pods that no longer exist are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tp_protocol.settings import get_settings

from ..paths import Instance
from .errors import ApiError, ApiNotFound, NodeError
from .events import EventSink
from .kubeapi import KubeApi, Obj
from .network import Ipam, pod_netns_names, teardown_pod_network
from .pods import NodeContext, PodWorker, _proc_start_time, rfc3339
from .runtime import MountPoints

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.37.0-sandbox"
RUNTIME_VERSION = "tp-sandbox://0.1"


def _meminfo_kib() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 8 * 1024 * 1024


def node_object(name: str, pod_cidr: str, address: str) -> Obj:
    """The Node as the kubelet registers it."""
    resources = {"cpu": str(os.cpu_count() or 1), "memory": f"{_meminfo_kib()}Ki",
                 "pods": "110", "ephemeral-storage": "10Gi"}
    uname = platform.uname()
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "node-role.kubernetes.io/control-plane": ""}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "capacity": resources, "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": address},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _read("/etc/machine-id"), "systemUUID": _read("/etc/machine-id"),
                "bootID": _read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": uname.release, "osImage": "tp-sandbox (host processes)",
                "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION, "operatingSystem": "linux",
                "architecture": "amd64"},
            "conditions": node_conditions(True),
        },
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def node_conditions(ready: bool) -> list[Obj]:
    now = rfc3339(time.time())
    conds = [{"type": t, "status": "False", "reason": f"KubeletHas{r}",
              "message": f"kubelet has {m}", "lastHeartbeatTime": now,
              "lastTransitionTime": now}
             for t, r, m in (("MemoryPressure", "SufficientMemory", "sufficient memory"),
                             ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                             ("PIDPressure", "SufficientPID", "sufficient PID available"))]
    conds.append({"type": "Ready", "status": "True" if ready else "False",
                  "reason": "KubeletReady" if ready else "KubeletNotReady",
                  "message": "kubelet is posting ready status" if ready
                  else "kubelet stopped", "lastHeartbeatTime": now, "lastTransitionTime": now})
    return conds


class Kubelet:
    """The node agent of one sandbox instance."""

    def __init__(self, instance: Instance, kubeconfig: Path) -> None:
        s = get_settings()
        self.instance = instance
        self.settings = s.node
        self.node_name = s.node.node_name
        self.api = KubeApi.from_kubeconfig(kubeconfig)
        self.ctx = NodeContext(
            api=self.api, instance=instance, ipam=Ipam(s.sandbox.node_pod_cidr),
            mounts=MountPoints(), pods_dir=instance.state_dir / "pods",
            host_ip=s.sandbox.api_address, node_name=self.node_name)
        self.events = EventSink(self.api, self.node_name)
        self.ctx.events = self.events
        self._events: asyncio.Queue[tuple[str, Obj | set[str]]] = asyncio.Queue()
        self._stop_watch = threading.Event()
        self._watch_thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def workers(self) -> dict[str, PodWorker]:
        return self.ctx.workers

    def find(self, namespace: str, name: str) -> PodWorker | None:
        for w in list(self.workers.values()):
            if w.ns == namespace and w.name == name and not w.stopped.is_set():
                return w
        return None

    # -- start -------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.ctx.pods_dir.mkdir(parents=True, exist_ok=True)
        await self._register_node()
        self.events.start()
        pods, _ = await asyncio.to_thread(self.api.list_pods, self.node_name)
        await self._adopt_leftovers({p["metadata"]["uid"]: p for p in pods})
        self._tasks.append(asyncio.create_task(self._guard(self._heartbeat(), "node-heartbeat"),
                                               name="node-heartbeat"))
        self._tasks.append(asyncio.create_task(self._guard(self._dispatch(), "pod-dispatch"),
                                               name="pod-dispatch"))
        self._watch_thread = threading.Thread(target=self._watch_loop, name="pod-watch",
                                              daemon=True)
        self._watch_thread.start()

    async def _guard(self, coro: Any, name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", name)

    async def _register_node(self) -> None:
        body = node_object(self.node_name, get_settings().sandbox.node_pod_cidr,
                           get_settings().sandbox.api_address)
        existing = await asyncio.to_thread(self.api.get_node, self.node_name)
        if existing is None:
            await asyncio.to_thread(self.api.create_node, body)
        else:
            await asyncio.to_thread(self.api.patch_node, self.node_name,
                                    {"metadata": {"labels": body["metadata"]["labels"]},
                                     "spec": body["spec"]})
        await asyncio.to_thread(self.api.patch_node_status, self.node_name,
                                {"status": body["status"]})
        log.info("node %s registered", self.node_name)

    async def _heartbeat(self) -> None:
        """Patch the Ready condition; register again if the Node is gone. Each success
        also touches run/node.heartbeat, which the supervisor watches for stalls."""
        beat = self.instance.run_dir / "node.heartbeat"
        while True:
            try:
                await asyncio.to_thread(self.api.patch_node_status, self.node_name,
                                        {"status": {"conditions": node_conditions(True)}})
            except ApiNotFound:
                log.warning("node %s is gone from the API; registering it again",
                            self.node_name)
                try:
                    await self._register_node()
                except ApiError as exc:  # retried at the next heartbeat
                    log.warning("node registration failed: %s", exc)
            except ApiError as exc:
                log.warning("node heartbeat failed: %s", exc)
            else:
                with contextlib.suppress(OSError):
                    beat.write_text(f"{time.time():.3f}\n")
            await asyncio.sleep(self.settings.status_interval)

    async def _adopt_leftovers(self, live: dict[str, Obj]) -> None:
        """Pods left by an earlier run of the node: adopt the live ones, clean the rest."""
        records: dict[str, Obj] = {}
        for pod_dir in self.ctx.pods_dir.iterdir() if self.ctx.pods_dir.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                records[pod_dir.name] = json.loads((pod_dir / "pod.json").read_text())
        for uid, rec in records.items():
            for pid, start in (rec.get("pids") or {}).values():
                if start and _proc_start_time(pid) == start:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
            if uid in live and rec.get("ip"):
                self.ctx.ipam.claim(uid, rec["ip"])
                self.ctx.mounts.adopt(uid, rec.get("mount_paths") or [])
            else:
                log.info("removing leftovers of pod %s/%s", rec.get("namespace"), rec.get("name"))
                self.ctx.mounts.adopt(uid, rec.get("mount_paths") or [])
                self.ctx.mounts.release(uid)
                with contextlib.suppress(NodeError):
                    await asyncio.to_thread(teardown_pod_network, self.instance, uid)
                await asyncio.to_thread(shutil.rmtree, self.ctx.pods_dir / uid, True)
        known = {self.instance.pod_netns(uid) for uid in records if uid in live}
        for name in pod_netns_names(self.instance):
            if name not in known:
                log.info("removing stale pod netns %s", name)
                proc = await asyncio.create_subprocess_exec("ip", "netns", "del", name)
                await proc.wait()
        for uid, pod in live.items():
            self._admit(pod, records.get(uid))

    # -- pods --------------------------------------------------------------------------
    def _admit(self, pod: Obj, adopted: Obj | None = None) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if pod["metadata"].get("deletionTimestamp") and not adopted:
            # Deleted before we ever ran it: nothing to stop, just finish the deletion.
            self._tasks.append(asyncio.create_task(
                asyncio.to_thread(self.api.delete_pod_now, pod["metadata"]["namespace"],
                                  pod["metadata"]["name"], uid), name=f"finish-delete-{uid[:8]}"))
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not adopted:
            return  # finished before this node run; nothing left to do
        log.info("pod %s/%s admitted", pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.workers[uid] = PodWorker(self.ctx, pod, adopted)

    async def _dispatch(self) -> None:
        while True:
            kind, obj = await self._events.get()
            if kind == "SYNC":
                assert isinstance(obj, set)
                for uid, w in list(self.workers.items()):
                    if uid not in obj:
                        w.gone()
                continue
            assert isinstance(obj, dict)
            if kind in ("ADDED", "MODIFIED"):
                self._admit(obj)
            elif kind == "DELETED":
                gone = self.workers.get(obj["metadata"]["uid"])
                if gone is not None:
                    gone.gone()

    def _emit(self, kind: str, obj: Obj | set[str]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, obj))

    def _watch_loop(self) -> None:
        """Thread: list, then watch from the list's resourceVersion; again on any error."""
        rv = ""
        while not self._stop_watch.is_set():
            try:
                if not rv:
                    pods, rv = self.api.list_pods(self.node_name)
                    for p in pods:
                        self._emit("ADDED", p)
                    self._emit("SYNC", {p["metadata"]["uid"] for p in pods})
                for kind, obj in self.api.watch_pods(self.node_name, rv,
                                                     self.settings.watch_timeout):
                    if self._stop_watch.is_set():
                        return
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind != "BOOKMARK":
                        self._emit(kind, obj)
            except ApiError as exc:
                if self._stop_watch.is_set():
                    return
                log.warning("pod watch: %s; re-listing", exc)
                rv = ""
                self._stop_watch.wait(self.settings.watch_retry_backoff)
            except Exception:
                log.exception("pod watch failed; re-listing")
                rv = ""
                self._stop_watch.wait(self.settings.watch_retry_backoff)

    # -- stop --------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop every pod (leaving Pod objects in place), then our tasks, then the watch."""
        self.ctx.shutting_down = True
        self._stop_watch.set()
        await asyncio.gather(*(w.stop_for_shutdown() for w in list(self.workers.values())),
                             return_exceptions=True)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.events.stop()
        with contextlib.suppress(ApiError):
            await asyncio.to_thread(self.api.patch_node_status, self.node_name,
                                    {"status": {"conditions": node_conditions(False)}})
        if self._watch_thread is not None:
            # The thread ends at its next event or watch timeout; it is a daemon thread.
            self._watch_thread.join(timeout=self.settings.watch_thread_join)
        self.api.close()
        log.info("kubelet stopped")
