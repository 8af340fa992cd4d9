"""One pod's life on the node: `PodWorker`.

    setup (IP, netns+veth, files, volumes, env)  -- retried while config refs are missing
    init containers, one after the other          -- each must exit 0
    main containers, each in its own loop         -- image pull back-off, restarts with
                                                     CrashLoopBackOff, probes
    termination (deletionTimestamp or DELETED)    -- SIGTERM, grace, SIGKILL, teardown,
                                                     delete with grace 0

Status is derived from the worker's state whenever something changes and written
through the status subresource only when it differs from what was written last.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import logging
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_protocol.aio import wait_at_most
from tp_protocol.settings import get_settings

from .. import netns
from ..paths import Instance
from .errors import ApiError, ApiNotFound, ConfigRefError, NodeError, PodSetupError
from .events import EventSink
from .kubeapi import KubeApi, Obj
from .network import Ipam, pod_network_intact, setup_pod_network, teardown_pod_network
from .podconfig import PodConfigBuilder, PodFiles, expand
from .probes import run_probe
from .runtime import ContainerProcess, MountPoints, exit_reason, start_container
from .security import ContainerConfigError, process_security

log = logging.getLogger(__name__)

_GENERIC_IMAGES = {"busybox": ["sh"], "alpine": ["sh"], "debian": ["sh"], "ubuntu": ["sh"],
                   "python": ["python3"]}


def image_user(image: str) -> int:
    """The uid `image` runs as when the pod sets no runAsUser (its Dockerfile's USER)."""
    from .. import images

    return images.user_of(image)


def resolve_image(image: str) -> list[str] | None:
    """Default argv of `image` from the catalog (None: not in the catalog)."""
    try:
        from .. import images  # written by another helper; optional until it lands
    except ImportError:
        name = image.rsplit("/", 1)[-1].split("@", maxsplit=1)[0].split(":", maxsplit=1)[0]
        return _GENERIC_IMAGES.get(name)
    result: list[str] | None = images.resolve(image)
    return result


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass
class NodeContext:
    """What every pod worker shares with the kubelet."""

    api: KubeApi
    instance: Instance
    ipam: Ipam
    mounts: MountPoints
    pods_dir: Path
    host_ip: str
    node_name: str
    shutting_down: bool = False
    workers: dict[str, PodWorker] = field(default_factory=dict)
    events: EventSink | None = None


@dataclass
class ContainerState:
    """A container's status fields, kept between its instances."""

    spec: Obj
    init: bool
    restart_count: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    pull_failed: bool = False
    container_id: str = ""
    proc: ContainerProcess | None = None
    done: bool = False  # terminated for good (no restart will follow)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> Obj:
        image = self.spec.get("image", "")
        out: Obj = {"name": self.name, "image": image,
                    "imageID": f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
                    "ready": self.ready, "started": self.started,
                    "restartCount": self.restart_count, "state": self.state,
                    "lastState": self.last_state}
        if self.container_id:
            out["containerID"] = f"tp://{self.container_id}"
        return out


class PodWorker:
    """Runs one pod from setup to teardown."""

    def __init__(self, ctx: NodeContext, pod: Obj, adopted: Obj | None = None) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.ns: str = meta["namespace"]
        self.name: str = meta["name"]
        self.dir = ctx.pods_dir / self.uid
        self.adopted = adopted
        self.pod_ip = ""
        self.netns = ctx.instance.pod_netns(self.uid)
        self.files: PodFiles | None = None
        self.builder: PodConfigBuilder | None = None
        self.start_time = time.time()
        self.network_ready = False
        self.initialized = False
        self.init_failed = False
        self.setup_error: tuple[str, str] | None = None
        self.deleting = asyncio.Event()
        self.force_gone = False
        self.stopped = asyncio.Event()
        self.exec_procs: set[asyncio.subprocess.Process] = set()
        self._changed = asyncio.Event()
        self._transitions: dict[str, tuple[str, str]] = {}
        self._last_written: Obj | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        spec = pod["spec"]
        old_status = pod.get("status") or {}
        previous = {c["name"]: c.get("restartCount", 0) for c in
                    [*(old_status.get("containerStatuses") or []),
                     *(old_status.get("initContainerStatuses") or [])]}
        self.init_states = [ContainerState(c, True) for c in spec.get("initContainers") or []]
        self.states = [ContainerState(c, False) for c in spec.get("containers") or []]
        for cs in [*self.init_states, *self.states]:
            cs.restart_count = int(previous.get(cs.name, 0))
        started = (pod.get("status") or {}).get("startTime")
        if started:
            with contextlib.suppress(ValueError):
                self.start_time = datetime.datetime.fromisoformat(
                    started.replace("Z", "+00:00")).timestamp()
        self.task = asyncio.create_task(self._run(), name=f"pod-{self.ns}/{self.name}")
        self.status_task = asyncio.create_task(self._status_writer(),
                                               name=f"pod-status-{self.ns}/{self.name}")

    # -- events from the kubelet -------------------------------------------------------
    def update(self, pod: Obj) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def gone(self) -> None:
        """The pod was removed from the API (forced delete): stop without writing back."""
        self.force_gone = True
        self.deleting.set()

    def container(self, name: str) -> ContainerState | None:
        for cs in [*self.states, *self.init_states]:
            if cs.name == name:
                return cs
        return None

    def env_of(self, name: str) -> dict[str, str]:
        return dict((self.files.env if self.files else {}).get(name, {}))

    def event(self, etype: str, reason: str, message: str, container: str = "") -> None:
        if self.ctx.events is not None and not self.ctx.shutting_down:
            self.ctx.events.emit(self.pod, etype, reason, message, container)

    def notify(self) -> None:
        self._changed.set()

    # -- life --------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            if await self._setup() and await self._run_init_containers():
                await self._run_containers()
            await self.deleting.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s: worker failed", self.ns, self.name)
            await self.deleting.wait()
        finally:
            await asyncio.shield(self._terminate())

    def _persist(self, **extra: Any) -> None:
        path = self.dir / "pod.json"
        data: Obj = {}
        if path.exists():
            with contextlib.suppress(ValueError):
                data = json.loads(path.read_text())
        data.update({"uid": self.uid, "namespace": self.ns, "name": self.name,
                     "ip": self.pod_ip}, **extra)
        path.write_text(json.dumps(data))

    async def _setup(self) -> bool:
        """Network, files and volumes; retried while references are missing."""
        settings = get_settings().node
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pod_ip = self.ctx.ipam.allocate(self.uid)
        self._persist()
        keep = bool(self.adopted) and await asyncio.to_thread(
            pod_network_intact, self.ctx.instance, self.uid, self.pod_ip)
        if not keep:
            await asyncio.to_thread(setup_pod_network, self.ctx.instance, self.uid, self.pod_ip)
        self.network_ready = True
        self.notify()
        while not self.deleting.is_set():
            self.builder = PodConfigBuilder(self.ctx.api, self.ctx.instance, self.pod,
                                            pod_dir=self.dir, pod_ip=self.pod_ip,
                                            host_ip=self.ctx.host_ip)
            try:
                self.files = await asyncio.to_thread(self.builder.build)
            except ConfigRefError as exc:
                self.setup_error = ("CreateContainerConfigError", str(exc))
            except (PodSetupError, ApiError) as exc:
                self.setup_error = ("CreateContainerError", str(exc))
            else:
                self.setup_error = None
                break
            self.notify()
            await self._sleep_unless_deleting(settings.image_pull_backoff)
        if self.files is None:
            return False
        held: list[str] = []
        for mounts in self.files.mounts.values():
            for m in mounts:
                held += self.ctx.mounts.acquire(self.uid, m)
        self._persist(mount_paths=sorted(set(held)))
        self._tasks.append(asyncio.create_task(self._token_refresher(),
                                               name=f"pod-token-{self.ns}/{self.name}"))
        self._tasks.append(asyncio.create_task(self._volume_syncer(),
                                               name=f"pod-volumes-{self.ns}/{self.name}"))
        self.notify()
        return True

    async def _sleep_unless_deleting(self, seconds: float) -> None:
        await wait_at_most(self.deleting.wait(), seconds)

    async def _token_refresher(self) -> None:
        period = get_settings().node.token_expiration * 0.8
        while not self.deleting.is_set():
            await self._sleep_unless_deleting(period)
            if self.deleting.is_set() or self.builder is None:
                return
            try:
                await asyncio.to_thread(self.builder.refresh_token)
            except NodeError as exc:
                log.warning("pod %s/%s: token refresh failed: %s", self.ns, self.name, exc)

    async def _volume_syncer(self) -> None:
        """configMap/secret volumes follow their objects (a kubelet's periodic sync)."""
        period = get_settings().node.config_volume_sync
        while not self.deleting.is_set():
            await self._sleep_unless_deleting(period)
            if self.deleting.is_set() or self.builder is None:
                return
            try:
                changed = await asyncio.to_thread(self.builder.refresh_config_volumes)
            except (NodeError, OSError) as exc:
                log.warning("pod %s/%s: volume sync failed: %s", self.ns, self.name, exc)
                continue
            if changed:
                log.info("pod %s/%s: %d configMap/secret volume file(s) updated", self.ns,
                         self.name, changed)

    def _argv(self, cs: ContainerState, image_argv: list[str]) -> list[str]:
        env = self.env_of(cs.name)
        command = [expand(a, env) for a in cs.spec.get("command") or []]
        args = [expand(a, env) for a in cs.spec.get("args") or []]
        if command:
            return command + args
        if not args:
            return list(image_argv)
        # A generic image's one-word default is a CMD (args replace it, as with docker's
        # busybox/python); a longer default is our images' ENTRYPOINT (args follow it).
        return args if len(image_argv) == 1 else [*image_argv, *args]

    async def _pull(self, cs: ContainerState) -> list[str] | None:
        """The image's default argv, waiting in ImagePullBackOff while it is unknown."""
        image = cs.spec.get("image", "")
        policy = cs.spec.get("imagePullPolicy") or "IfNotPresent"
        first = True
        while not self.deleting.is_set():
            argv = resolve_image(image)
            pulling = policy == "Always" or argv is None or cs.pull_failed
            if pulling:
                self.event("Normal", "Pulling", f'Pulling image "{image}"', cs.name)
            if argv is not None:
                if pulling:
                    self.event("Normal", "Pulled", f'Successfully pulled image "{image}" in '
                               '0s (0s including waiting). Image size: 0 bytes.', cs.name)
                else:
                    self.event("Normal", "Pulled",
                               f'Container image "{image}" already present on machine',
                               cs.name)
                cs.pull_failed = False
                return argv
            cs.pull_failed = True
            failure = (f'Failed to pull image "{image}": {image} is not in the sandbox image '
                       "catalog (see `tp sandbox images`)")
            if first:
                self.event("Warning", "Failed", failure, cs.name)
                self.event("Warning", "Failed", "Error: ErrImagePull", cs.name)
            cs.state = {"waiting": {"reason": "ErrImagePull", "message": failure}}
            self.notify()
            first = False
            # as the kubelet: a failed pull shows ErrImagePull, then waits in back-off
            backoff = f'Back-off pulling image "{image}"'
            await self._sleep_unless_deleting(get_settings().node.image_pull_error_seconds)
            if self.deleting.is_set():
                break
            cs.state = {"waiting": {"reason": "ImagePullBackOff", "message": backoff}}
            self.notify()
            self.event("Normal", "BackOff", backoff, cs.name)
            self.event("Warning", "Failed", "Error: ImagePullBackOff", cs.name)
            await self._sleep_unless_deleting(get_settings().node.image_pull_backoff)
        return None

    async def _start(self, cs: ContainerState, argv: list[str]) -> ContainerProcess | None:
        assert self.files is not None
        hostname = self.pod["spec"].get("hostname") or self.name
        try:
            security = process_security(self.pod, cs.spec, image_user(cs.spec.get("image", "")))
        except ContainerConfigError as exc:
            cs.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            self.notify()
            return None
        try:
            proc = await start_container(
                self.dir, cs.name, argv, env=self.files.env[cs.name],
                mounts=self.files.mounts[cs.name], netns_path=str(netns.netns_path(self.netns)),
                hostname=hostname, workdir=cs.spec.get("workingDir"),
                security=security.spec())
        except OSError as exc:
            cs.state = {"waiting": {"reason": "CreateContainerError", "message": str(exc)}}
            self.event("Warning", "Failed", f"Error: {exc}", cs.name)
            self.notify()
            return None
        self.event("Normal", "Created", f"Created container: {cs.name}", cs.name)
        self.event("Normal", "Started", f"Started container {cs.name}", cs.name)
        cs.proc = proc
        cs.container_id = proc.container_id
        cs.started = True
        cs.state = {"running": {"startedAt": rfc3339(proc.started_at)}}
        self._persist(pids={c.name: [c.proc.pid, _proc_start_time(c.proc.pid)]
                            for c in [*self.init_states, *self.states] if c.proc})
        self.notify()
        return proc

    def _terminated(self, proc: ContainerProcess, code: int) -> Obj:
        return {"terminated": {"exitCode": code, "reason": exit_reason(code),
                               "startedAt": rfc3339(proc.started_at),
                               "finishedAt": rfc3339(proc.finished_at or time.time()),
                               "containerID": f"tp://{proc.container_id}"}}

    async def _run_init_containers(self) -> bool:
        for cs in self.init_states:
            while True:
                if self.deleting.is_set():
                    return False
                argv = await self._pull(cs)
                if argv is None:
                    return False
                proc = await self._start(cs, self._argv(cs, argv))
                code = await self._wait_or_delete(proc) if proc else 128
                if code is None:
                    return False
                if proc:
                    cs.state = self._terminated(proc, code)
                if code == 0:
                    cs.ready = True
                    cs.done = True
                    self.notify()
                    break
                if self.pod["spec"].get("restartPolicy") == "Never":
                    self.init_failed = True
                    cs.done = True
                    self.notify()
                    return False
                cs.last_state = cs.state
                await self._backoff(cs)
        self.initialized = True
        self.notify()
        return True

    async def _wait_or_delete(self, proc: ContainerProcess) -> int | None:
        """The exit code, or None when the pod is being deleted first."""
        waiter = asyncio.create_task(proc.wait(), name=f"wait-{proc.container_id[:8]}")
        deleting = asyncio.create_task(self.deleting.wait(), name=f"del-{self.uid[:8]}")
        done, _ = await asyncio.wait({waiter, deleting}, return_when=asyncio.FIRST_COMPLETED)
        deleting.cancel()
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        return None

    async def _backoff(self, cs: ContainerState) -> None:
        s = get_settings().node
        delay = min(s.crashloop_backoff_initial * 2 ** min(cs.restart_count, 16),
                    s.crashloop_backoff_max)
        reason = "CrashLoopBackOff"
        cs.state = {"waiting": {"reason": reason, "message":
                                f"back-off {delay:g}s restarting failed container={cs.name} "
                                f"pod={self.name}_{self.ns}({self.uid})"}}
        cs.ready = False
        self.notify()
        self.event("Warning", "BackOff", f"Back-off restarting failed container {cs.name} in "
                   f"pod {self.name}_{self.ns}({self.uid})", cs.name)
        await self._sleep_unless_deleting(delay)
        cs.restart_count += 1

    async def _run_containers(self) -> None:
        loops = [asyncio.create_task(self._container_loop(cs), name=f"ctr-{self.name}/{cs.name}")
                 for cs in self.states]
        self._tasks += loops
        await asyncio.wait(loops)
        for t in loops:
            if not t.cancelled() and t.exception() is not None:
                log.error("pod %s/%s: container loop failed", self.ns, self.name,
                          exc_info=t.exception())

    async def _container_loop(self, cs: ContainerState) -> None:
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        while not self.deleting.is_set():
            image_argv = await self._pull(cs)
            if image_argv is None:
                return
            proc = await self._start(cs, self._argv(cs, image_argv))
            if proc is None:
                if (cs.state.get("waiting") or {}).get("reason") == "CreateContainerConfigError":
                    # as the kubelet: the reason stays, no restart is counted
                    await self._sleep_unless_deleting(get_settings().node.image_pull_backoff)
                    continue
                await self._backoff(cs)
                continue
            probes = self._start_probes(cs, proc)
            code = await self._wait_or_delete(proc)
            for p in probes:
                p.cancel()
            if code is None:
                return  # _terminate stops the process
            cs.ready = False
            terminated = self._terminated(proc, code)
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                cs.state = terminated
                cs.done = True
                self.notify()
                return
            cs.last_state = terminated
            await self._backoff(cs)

    # -- probes ------------------------------------------------------------------------
    def _start_probes(self, cs: ContainerState, proc: ContainerProcess) -> list[asyncio.Task[Any]]:
        spec = cs.spec
        startup_done = asyncio.Event()
        if "startupProbe" not in spec:
            startup_done.set()
        if "readinessProbe" not in spec:
            cs.ready = True  # ready once running (and started, if it has a startup probe)
        tasks = []
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in spec:
                tasks.append(asyncio.create_task(
                    self._probe_loop(kind, spec[kind], cs, proc, startup_done),
                    name=f"probe-{kind}-{self.name}/{cs.name}"))
        if "startupProbe" in spec and "readinessProbe" not in spec:
            cs.ready = False
            tasks.append(asyncio.create_task(self._ready_after(startup_done, cs),
                                             name=f"ready-after-startup-{cs.name}"))
        self.notify()
        return tasks

    async def _ready_after(self, startup_done: asyncio.Event, cs: ContainerState) -> None:
        await startup_done.wait()
        cs.ready = True
        self.notify()

    async def _probe_loop(self, kind: str, probe: Obj, cs: ContainerState,
                          proc: ContainerProcess, startup_done: asyncio.Event) -> None:
        default_timeout = get_settings().node.exec_probe_timeout_default
        if kind != "startupProbe":
            await startup_done.wait()
        await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
        period = float(probe.get("periodSeconds") or 10)
        success_needed = int(probe.get("successThreshold") or 1)
        failure_limit = int(probe.get("failureThreshold") or 3)
        successes = failures = 0
        while proc.proc.returncode is None:
            try:
                ok, message = await run_probe(
                    probe, cs.spec, node_netns=self.ctx.instance.node_netns, pod_ip=self.pod_ip,
                    pid=proc.pid, env=self.env_of(cs.name), default_limit=default_timeout)
            except Exception as exc:  # a probe bug must not kill the pod worker
                log.exception("pod %s/%s: %s of %s crashed", self.ns, self.name, kind, cs.name)
                ok, message = False, str(exc)
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                log.info("pod %s/%s: %s of %s failed: %s", self.ns, self.name, kind,
                         cs.name, message)
                what = {"readinessProbe": "Readiness", "livenessProbe": "Liveness",
                        "startupProbe": "Startup"}[kind]
                self.event("Warning", "Unhealthy", f"{what} probe failed: {message}", cs.name)
            if kind == "readinessProbe":
                ready = successes >= success_needed or (cs.ready and failures < failure_limit)
                if ready != cs.ready:
                    cs.ready = ready
                    self.notify()
            elif kind == "startupProbe":
                if ok:
                    startup_done.set()
                    return
                if failures >= failure_limit:
                    self.event("Normal", "Killing", f"Container {cs.name} failed startup "
                               "probe, will be restarted", cs.name)
                    proc.signal(signal.SIGKILL)
                    return
            elif failures >= failure_limit:  # liveness: restart the container
                log.info("pod %s/%s: liveness of %s failed, killing", self.ns, self.name,
                         cs.name)
                self.event("Normal", "Killing", f"Container {cs.name} failed liveness probe, "
                           "will be restarted", cs.name)
                await proc.stop(self._grace())
                return
            await asyncio.sleep(period)

    # -- termination -------------------------------------------------------------------
    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds")
        if grace is None:
            grace = get_settings().node.default_grace_period
        if self.ctx.shutting_down:
            grace = min(float(grace), get_settings().node.shutdown_grace)
        return float(grace)

    async def stop_for_shutdown(self) -> None:
        """The node is going down: stop this pod but leave the API object alone."""
        self.deleting.set()
        await self.stopped.wait()

    async def _terminate(self) -> None:
        try:
            grace = self._grace()
            running = [cs for cs in [*self.init_states, *self.states]
                       if cs.proc is not None and cs.proc.exit_code is None]
            if not self.force_gone:
                for cs in running:
                    self.event("Normal", "Killing", f"Stopping container {cs.name}", cs.name)
            codes = await asyncio.gather(*(cs.proc.stop(grace) for cs in running if cs.proc),
                                         return_exceptions=True)
            for cs, code in zip(running, codes, strict=True):
                if cs.proc is not None and isinstance(code, int):
                    cs.state = self._terminated(cs.proc, code)
                cs.ready = False
            for p in self.exec_procs:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.notify()
            if not self.force_gone and not self.ctx.shutting_down:
                await self._write_status()
            await self._teardown()
            if not self.force_gone and not self.ctx.shutting_down:
                await asyncio.to_thread(self.ctx.api.delete_pod_now, self.ns, self.name,
                                        self.uid)
        except Exception:
            log.exception("pod %s/%s: termination failed", self.ns, self.name)
        finally:
            self.status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.status_task
            self.stopped.set()
            self.ctx.workers.pop(self.uid, None)
            log.info("pod %s/%s stopped", self.ns, self.name)

    async def _teardown(self) -> None:
        self.ctx.mounts.release(self.uid)
        try:
            await asyncio.to_thread(teardown_pod_network, self.ctx.instance, self.uid)
        except NodeError as exc:
            log.error("pod %s/%s: %s", self.ns, self.name, exc)
        self.ctx.ipam.release(self.uid)
        await asyncio.to_thread(shutil.rmtree, self.dir, True)

    # -- status ------------------------------------------------------------------------
    def _condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        prev = self._transitions.get(kind)
        if prev is None or prev[0] != status:
            self._transitions[kind] = (status, rfc3339(time.time()))
        cond: Obj = {"type": kind, "status": status, "lastProbeTime": None,
                     "lastTransitionTime": self._transitions[kind][1]}
        if not ok and reason:
            cond.update(reason=reason, message=message)
        return cond

    def _phase(self) -> str:
        if self.init_failed:
            return "Failed"
        if not self.initialized:
            return "Pending"
        if any("running" in cs.state for cs in self.states):
            return "Running"
        if self.states and all(cs.done for cs in self.states):
            codes = [cs.state.get("terminated", {}).get("exitCode", 1) for cs in self.states]
            return "Succeeded" if all(c == 0 for c in codes) else "Failed"
        if any(cs.started for cs in self.states):
            return "Running"
        return "Pending"

    def compute_status(self) -> Obj:
        if self.setup_error:
            for cs in [*self.init_states, *self.states]:
                if not cs.started:
                    cs.state = {"waiting": {"reason": self.setup_error[0],
                                            "message": self.setup_error[1]}}
        for cs in self.states:
            if not self.initialized and not cs.started and not self.setup_error:
                cs.state = {"waiting": {"reason": "PodInitializing"}} if self.init_states \
                    else cs.state
        unready = [cs.name for cs in self.states if not cs.ready]
        uninit = [cs.name for cs in self.init_states if not cs.done]
        ready_msg = f"containers with unready status: [{' '.join(unready)}]"
        status: Obj = {
            "phase": self._phase(),
            "conditions": [
                self._condition("PodReadyToStartContainers", self.network_ready),
                self._condition("Initialized", self.initialized, "ContainersNotInitialized",
                                f"containers with incomplete status: [{' '.join(uninit)}]"),
                self._condition("Ready", not unready and self.initialized, "ContainersNotReady",
                                ready_msg),
                self._condition("ContainersReady", not unready and self.initialized,
                                "ContainersNotReady", ready_msg),
                self._condition("PodScheduled", True),
            ],
            "hostIP": self.ctx.host_ip,
            "hostIPs": [{"ip": self.ctx.host_ip}],
            "startTime": rfc3339(self.start_time),
            "containerStatuses": [cs.status() for cs in self.states],
            "qosClass": "BestEffort",
        }
        if self.pod_ip and self.network_ready:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if self.init_states:
            status["initContainerStatuses"] = [cs.status() for cs in self.init_states]
        return status

    async def _write_status(self) -> None:
        status = self.compute_status()
        if status == self._last_written:
            return
        await asyncio.to_thread(self.ctx.api.patch_pod_status, self.ns, self.name, status)
        self._last_written = status

    async def _status_writer(self) -> None:
        backoff = get_settings().node.watch_retry_backoff
        while True:
            await self._changed.wait()
            self._changed.clear()
            # coalesce bursts of changes into one write
            await asyncio.sleep(get_settings().node.status_coalesce_delay)
            if self.force_gone:
                continue
            try:
                await self._write_status()
            except ApiNotFound:
                continue  # deleted under us; the DELETED event will follow
            except ApiError as exc:
                log.warning("pod %s/%s: status write failed (%s), retrying", self.ns,
                            self.name, exc)
                await asyncio.sleep(backoff)
                self._changed.set()
