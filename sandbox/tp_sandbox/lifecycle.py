"""`tp sandbox up|down|status|kubeconfig|exec|demo` as a plain-Python API.

`up` makes, in order, and records each item in `state.json` *before* making it, so
that `down` can undo a crash at any point: state dir, PKI, tokens.json, the node
namespace, the laptops (namespace, veth, route, resolv.conf, kubeconfig), the host
kubeconfig; then it starts the supervisor detached (`setsid -f`, its own log) and
waits for `/readyz` (and the Node, unless `node=False`). A failure undoes everything.

`down` stops the supervisor, then any process left behind: those of the pid files
whose command line still names the instance, and every process living in one of
the instance's namespaces (pods' containers after a `kill -9`); then it unmounts
whatever is mounted under the state dir, deletes every namespace of the instance
(recorded or matching its names, pods' `<prefix>pod-*` included) and the state dir.
Logs: moved to `/tmp/tp-sandbox-logs-<name>-<time>` (so a crash can be read after
`down`), or deleted with `keep_logs=False`.

Up/down of one instance are serialised by a lock file beside the state dir.
Errors: see `tp_sandbox.errors`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_protocol.settings import get_settings

from tp_sandbox import kubeconfig as kc
from tp_sandbox import laptops as net
from tp_sandbox import netns, team
from tp_sandbox.errors import (
    SandboxError,
    SandboxNotUpError,
    SandboxStartError,
    SandboxUsageError,
)
from tp_sandbox.paths import Instance, base_dir
from tp_sandbox.pki import default_sans, ensure_pki
from tp_sandbox.supervisor import STATUS_FILE, SUPERVISOR_PID, heartbeat_age

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- state


def _read_state(instance: Instance) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(instance.state_file.read_text(encoding="utf-8"))
        return state
    except (OSError, ValueError):
        return {}


def _write_state(instance: Instance, state: dict[str, Any]) -> None:
    path = instance.state_file
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(path)


@contextlib.contextmanager
def _locked(instance: Instance) -> Iterator[None]:
    """Serialise up/down of one instance (the lock lives beside, not in, the state dir)."""
    root = base_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".{instance.name or 'default'}.lock"
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            # nothing left to guard once the instance is gone; don't litter the root
            if not instance.state_dir.exists():
                path.unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    # keep empty arguments: the default instance's supervisor runs with `--name ""`
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def _alive(pid: int) -> bool:
    """Running and not a zombie (a detached child of this process may linger as one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_supervisor_of(pid: int, instance: Instance) -> bool:
    argv = _cmdline(pid)
    return ("tp_sandbox.supervisor" in argv and "--name" in argv
            and argv[argv.index("--name") + 1:][:1] == [instance.name])


def supervisor_pid(instance: Instance) -> int | None:
    """PID of the instance's running supervisor, if any."""
    pid = _read_pid(instance.run_dir / SUPERVISOR_PID)
    if pid is not None and _alive(pid) and _is_supervisor_of(pid, instance):
        return pid
    return None


def _belongs(pid: int, instance: Instance) -> bool:
    """Whether a pid file's process is still one of ours (pids get reused)."""
    argv = _cmdline(pid)
    if not any(a.startswith("tp_sandbox.") for a in argv):
        return False
    state_dir = str(instance.state_dir)
    pattern = net.instance_netns_pattern(instance)
    return any(a == state_dir or a.startswith(state_dir + "/") or pattern.match(a)
               for a in argv) or _is_supervisor_of(pid, instance)


def _wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(get_settings().sandbox.poll_interval / 4)
        left = [p for p in left if _alive(p)]
    return left


def _kill(pids: Sequence[int], grace: float) -> None:
    """SIGTERM, wait `grace`, SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        pids = _wait_gone(pids, grace)
        if not pids:
            return


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def processes_in_netns(names: Sequence[str]) -> list[int]:
    """PIDs of processes whose network namespace is one of `names`."""
    inodes = {i for i in (_netns_inode(n) for n in names) if i is not None}
    if not inodes:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                found.append(int(entry))
        except OSError:
            continue
    return [p for p in found if p != os.getpid()]


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` in this mount namespace, deepest first."""
    prefix = str(root.resolve() if root.exists() else root)
    points = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


# --------------------------------------------------------------------------- results


@dataclass
class UpResult:
    """What `up` did; the last printed line is the host kubeconfig path."""

    instance: Instance
    kubeconfig: Path
    api_url: str
    already_up: bool
    laptops: int
    seconds: float

    laptop_users: list[str] = field(default_factory=list)
    """Who each laptop's kubeconfig acts as (laptop 1 first)."""
    manager_seconds: float = 0.0
    """Of `seconds`, the time the admin's traffic-manager install took (after the
    cluster served)."""

    def __str__(self) -> str:
        how = "already up" if self.already_up else f"up in {self.seconds:.1f}s"
        name = self.instance.name or "default"
        lines = [f"sandbox {name} {how}: API {self.api_url}, {self.laptops} laptop(s)"]
        if self.laptop_users:
            lines.append("laptops: " + ", ".join(
                f"{k} {user}" for k, user in enumerate(self.laptop_users, 1))
                + " (developers with ClusterRole edit); the admin's kubeconfig "
                  "(system:masters) is below, a laptop's: `tp sandbox kubeconfig --laptop K "
                  "--admin`")
        lines.append(str(self.kubeconfig))
        return "\n".join(lines)


@dataclass
class DownResult:
    instance: Instance
    removed_netns: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    logs: Path | None = None
    was_up: bool = False

    def __str__(self) -> str:
        name = self.instance.name or "default"
        if not (self.was_up or self.removed_netns or self.killed):
            return f"sandbox {name} is not up; nothing to remove"
        parts = [f"sandbox {name} removed ({len(self.removed_netns)} namespace(s)"
                 f", {len(self.killed)} process(es))"]
        if self.logs:
            parts.append(f"logs kept in {self.logs}")
        return "\n".join(parts)


@dataclass
class ProcessStatus:
    name: str
    pid: int | None
    up: bool
    restarts: int
    heartbeat_age: float | None = None
    stalled: bool = False
    age: float = 0.0  # seconds since this run of the process started


@dataclass
class NodeStatus:
    name: str
    ready: bool
    heartbeat_age: float | None  # seconds since the Ready condition's lastHeartbeatTime


@dataclass
class StatusResult:
    instance: Instance
    exists: bool
    supervisor: int | None = None
    processes: list[ProcessStatus] = field(default_factory=list)
    api_url: str = ""
    api_ready: bool = False
    nodes: list[NodeStatus] = field(default_factory=list)
    laptops: list[tuple[str, str, bool]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What is unhealthy, one short phrase each ("node NotReady (last heartbeat 12s ago)")."""

    @property
    def up(self) -> bool:
        return self.supervisor is not None and self.api_ready

    @property
    def healthy(self) -> bool:
        """Up, and every process, the node and the controllers are working."""
        return self.exists and self.up and not self.problems

    @property
    def exit_code(self) -> int:
        """`tp sandbox status`'s exit status: 0 healthy, 1 unhealthy, 3 not up."""
        return 0 if self.healthy else (3 if not self.exists else 1)

    def __str__(self) -> str:
        name = self.instance.name or "default"
        if not self.exists:
            return f"sandbox {name}: not up (start it with 'tp sandbox up')"
        head = "up" if self.healthy else "UNHEALTHY: " + "; ".join(self.problems or [
            "API server not ready"])
        lines = [f"sandbox {name}: {head}",
                 f"  supervisor   {self.supervisor or 'not running'}",
                 f"  API          {self.api_url} {'ready' if self.api_ready else 'NOT READY'}"]
        for p in self.processes:
            beat = (f" heartbeat {p.heartbeat_age:.0f}s ago"
                    if p.heartbeat_age is not None else "")
            lines.append(f"  {p.name:<12} {'up' if p.up else 'down':<5} pid {p.pid or '-':<8}"
                         f" restarts {p.restarts}{beat}{' STALLED' if p.stalled else ''}")
        for n in self.nodes:
            beat = (f" (last heartbeat {n.heartbeat_age:.0f}s ago)"
                    if n.heartbeat_age is not None else "")
            lines.append(f"  Node object  {n.name} {'Ready' if n.ready else 'NotReady'}{beat}")
        for ns, addr, ok in self.laptops:
            lines.append(f"  laptop       {ns} {addr} {'ok' if ok else 'MISSING'}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- up


def _check_up_args(laptops: int, laptop_users: Sequence[str] = ()) -> None:
    limit = get_settings().sandbox.max_laptops
    if not 0 <= laptops <= limit:
        raise SandboxUsageError(f"--laptops must be between 0 and {limit}, got {laptops}")
    for user in laptop_users:
        if user not in (*kc.USERS, kc.ADMIN):
            raise SandboxUsageError(f"--laptop-users: unknown user {user!r}; the sandbox's "
                                    f"users are {', '.join(kc.USERS)} and {kc.ADMIN}")
    if len(laptop_users) > laptops:
        raise SandboxUsageError(f"--laptop-users names {len(laptop_users)} users for "
                                f"{laptops} laptop(s); give at most one per laptop")
    for tool in ("ip", "nft", "setsid", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            raise SandboxUsageError(f"'{tool}' is missing; install iproute2, nftables and "
                                    "util-linux (./run install)")
    if os.geteuid() != 0:
        raise SandboxUsageError("the sandbox needs root (network namespaces); run as root")


def resolv_conf(instance: Instance, k: int) -> Path:
    return instance.laptop_dir(k) / "resolv.conf"


def laptop_kubeconfig(instance: Instance, k: int) -> Path:
    return instance.laptop_dir(k) / "kubeconfig"


def _running(instance: Instance, state: dict[str, Any]) -> bool:
    return (state.get("phase") == "up" and supervisor_pid(instance) is not None
            and kc.readyz(instance, int(state.get("api_port", 0))))


def up(instance: Instance | None = None, laptops: int = 1, node: bool = True,
       progress: Progress = _stderr, laptop_users: Sequence[str] = ()) -> UpResult:
    """Bring the instance up (or report that it is); undo everything on failure.

    Laptop K's kubeconfig authenticates as developer K (`kubeconfig.USERS`: alice, bob,
    ...; ClusterRole `edit`), or as the K-th of `laptop_users` when given (`admin` for the
    admin); every laptop gets every user's kubeconfig as `kubeconfig-<user>` and the
    admin's as `kubeconfig-admin` either way. With a node, the admin installs the
    traffic-manager (developers may not; `team.install_manager`)."""
    instance = instance or Instance.from_env()
    _check_up_args(laptops, laptop_users)
    started = time.monotonic()
    with _locked(instance):
        state = _read_state(instance)
        if _running(instance, state):
            return UpResult(instance, instance.kubeconfig,
                            f"https://127.0.0.1:{state['api_port']}", True,
                            int(state.get("laptops", 0)), 0.0)
        if instance.state_dir.exists() or net.instance_netns(instance):
            progress("removing the remains of a sandbox that is not running")
            _down_locked(instance, keep_logs=False)
        try:
            result = _make(instance, laptops, node, progress, started,
                             laptop_users=list(laptop_users))
        except BaseException as e:
            logs = _down_locked(instance, keep_logs=True).logs
            if isinstance(e, KeyboardInterrupt):
                raise
            where = f"; logs kept in {logs}" if logs else ""
            msg = str(e).rstrip(".") if isinstance(e, SandboxError) else f"{type(e).__name__}: {e}"
            raise SandboxStartError(f"sandbox up failed: {msg}{where}") from e
    return result


def _make(instance: Instance, laptops: int, node: bool, progress: Progress,
          started: float, *, laptop_users: list[str]) -> UpResult:
    s = get_settings().sandbox
    port = s.api_port if not instance.name else _free_port()
    state: dict[str, Any] = {"name": instance.name, "phase": "creating", "api_port": port,
                             "laptops": laptops, "node": node, "netns": [],
                             "laptop_users": laptop_users}
    for d in (instance.state_dir, instance.logs_dir, instance.run_dir):
        d.mkdir(parents=True, exist_ok=True)
    instance.state_dir.chmod(0o700)
    _write_state(instance, state)

    def record(ns: str) -> None:
        state["netns"].append(ns)
        _write_state(instance, state)

    progress("creating certificates and tokens")
    ensure_pki(instance.pki_dir, *default_sans(s.api_address, _kubernetes_ip(),
                                               s.cluster_domain))
    token = kc.ensure_admin_token(instance)
    user_tokens = {u: kc.ensure_user_token(instance, u) for u in kc.USERS}
    inner = f"https://{s.api_address}:{s.api_inner_port}"

    progress(f"creating node namespace {instance.node_netns}")
    record(instance.node_netns)
    net.make_node(instance)
    for k in range(1, laptops + 1):
        progress(f"creating laptop {instance.laptop_netns(k)} ({net.laptop_address(k)})")
        record(instance.laptop_netns(k))
        net.make_laptop(instance, k)
        d = instance.laptop_dir(k)
        d.mkdir(parents=True, exist_ok=True)
        resolv_conf(instance, k).write_text("nameserver 127.0.0.53\noptions edns0\n")
        _make_laptop_mountns(instance, k)
        for user, tok in user_tokens.items():
            kc.write(d / f"kubeconfig-{user}", kc.render(instance, inner, tok, user))
        kc.write(d / f"kubeconfig-{kc.ADMIN}", kc.render(instance, inner, token))
        as_user = team.laptop_user(laptop_users, k)
        kc.write(laptop_kubeconfig(instance, k), kc.render(
            instance, inner, *((token,) if as_user == kc.ADMIN
                               else (user_tokens[as_user], as_user))))
    kc.write(instance.kubeconfig, kc.render(instance, f"https://127.0.0.1:{port}", token))
    for user, tok in user_tokens.items():
        kc.write(kc.user_kubeconfig(instance, user),
                 kc.render(instance, f"https://127.0.0.1:{port}", tok, user))

    progress("starting the supervisor")
    _start_supervisor(instance)
    pid = _wait(lambda: supervisor_pid(instance), 10.0, "the supervisor to start",
                instance, "supervisor")
    state["supervisor_pid"] = pid
    _write_state(instance, state)

    api_url = f"https://127.0.0.1:{port}"
    progress(f"waiting for the API server at {api_url}")
    deadline = time.monotonic() + s.up_timeout
    _wait(lambda: kc.readyz(instance, port, token) or None,
          deadline - time.monotonic(), "the API server to serve", instance, "apiserver")
    progress(f"API server ready after {time.monotonic() - started:.1f}s")
    _bind_developers(instance)
    if node:
        progress("waiting for the node to be Ready")
        _wait(lambda: _node_ready(instance) or None, max(deadline - time.monotonic(), 1.0),
              "the node to be Ready", instance, "node")
        progress("the admin installs the traffic-manager")
        manager_started = time.monotonic()
        team.install_manager(instance, progress)
        state["manager_seconds"] = time.monotonic() - manager_started
    state["phase"] = "up"
    _write_state(instance, state)
    return UpResult(instance, instance.kubeconfig, api_url, False, laptops,
                    time.monotonic() - started,
                    [team.laptop_user(laptop_users, k) for k in range(1, laptops + 1)],
                    float(state.get("manager_seconds", 0.0)))


def laptop_mountns(instance: Instance, k: int) -> Path:
    """The file that holds laptop K's mount namespace (kept alive by a bind mount)."""
    return instance.laptop_dir(k) / "ns" / "mnt"


def _make_laptop_mountns(instance: Instance, k: int) -> None:
    """Give laptop K one mount namespace for its life, like a machine has: a mount made by
    one `tp sandbox exec` (the daemon's sshfs) is seen by every later one. The file is
    bound in a private-propagation folder (the kernel refuses a namespace file on a
    shared mount); `down` unmounts both with everything else under the state dir."""
    timeout = get_settings().sandbox.command_timeout
    holder = laptop_mountns(instance, k)
    holder.parent.mkdir(parents=True, exist_ok=True)
    for argv in (["mount", "--bind", str(holder.parent), str(holder.parent)],
                 ["mount", "--make-private", str(holder.parent)]):
        subprocess.run(argv, check=True, capture_output=True, timeout=timeout)
    holder.touch()
    # slave: mounts made on the host later still show in the laptop, not the reverse
    subprocess.run(["unshare", f"--mount={holder}", "--propagation", "slave", "--",
                    "mount", "--bind", str(resolv_conf(instance, k)), "/etc/resolv.conf"],
                   check=True, capture_output=True, timeout=timeout)


def _bind_developers(instance: Instance) -> None:
    """Give the named users' group `edit` in every namespace (idempotent)."""
    from kubernetes import client

    body: Any = {"metadata": {"name": kc.DEVELOPERS_BINDING},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": kc.DEVELOPERS_GROUP}]}
    with kc.api_client(instance.kubeconfig) as api:
        try:
            client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
                body, _request_timeout=get_settings().sandbox.status_probe_timeout)
        except client.ApiException as e:
            if e.status != 409:
                raise SandboxStartError(f"cannot bind the sandbox users to 'edit': "
                                        f"{e.status} {e.reason}") from e


def _kubernetes_ip() -> str:
    import ipaddress
    net_ = ipaddress.ip_network(get_settings().sandbox.service_cidr)
    return str(net_.network_address + 1)


def _start_supervisor(instance: Instance) -> None:
    # setsid -f: a new session, reparented away from us, so it outlives `tp sandbox up`.
    with open(instance.logs_dir / "supervisor.log", "ab") as log:
        subprocess.run(
            ["setsid", "-f", sys.executable, "-m", "tp_sandbox.supervisor",
             "--name", instance.name],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=instance.state_dir)


def _wait(check: Callable[[], Any], timeout: float, what: str, instance: Instance,
          log_name: str) -> Any:
    """Poll `check` until it returns non-None; else fail naming the log to read."""
    deadline = time.monotonic() + timeout
    interval = get_settings().sandbox.poll_interval
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            tail = _tail(instance.logs_dir / f"{log_name}.log")
            raise SandboxStartError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f" (last line of {log_name}.log: {tail!r})" if tail else ""))
        time.sleep(interval)


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _node_ready(instance: Instance) -> bool:
    from kubernetes import client

    try:
        with kc.api_client(instance.kubeconfig) as api:
            nodes = client.CoreV1Api(api).list_node(
                _request_timeout=get_settings().sandbox.status_probe_timeout).items
    except Exception:
        return False
    return any(_is_ready(n) for n in nodes)


def _is_ready(node: Any) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


# --------------------------------------------------------------------------- down


def down(instance: Instance | None = None, keep_logs: bool = True) -> DownResult:
    """Remove every process, namespace, mount and file of the instance. Idempotent."""
    instance = instance or Instance.from_env()
    with _locked(instance):
        return _down_locked(instance, keep_logs)


def _down_locked(instance: Instance, keep_logs: bool) -> DownResult:
    s = get_settings().sandbox
    state = _read_state(instance)
    result = DownResult(instance, was_up=instance.state_dir.exists())

    sup = supervisor_pid(instance)
    if sup is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
        if _wait_gone([sup], s.supervisor_stop_timeout):
            _kill([sup], 0.0)
        result.killed.append(sup)

    leftovers = []
    if instance.run_dir.is_dir():
        for pid_file in instance.run_dir.glob("*.pid"):
            pid = _read_pid(pid_file)
            if pid is not None and pid != os.getpid() and _alive(pid) and _belongs(pid, instance):
                leftovers.append(pid)
    names = net.instance_netns(instance, state.get("netns", []))
    leftovers += [p for p in processes_in_netns(names) if p not in leftovers]
    if leftovers:
        _kill(leftovers, s.stop_grace)
        result.killed += leftovers

    for point in _mounts_under(instance.state_dir):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False,
                       timeout=s.command_timeout)

    for ns in names:
        net.delete_netns(ns)
        result.removed_netns.append(ns)

    if instance.state_dir.exists():
        logs = instance.logs_dir
        if keep_logs and logs.is_dir() and any(logs.iterdir()):
            dest = Path("/tmp") / (f"tp-sandbox-logs-{instance.name or 'default'}-"
                                   f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            shutil.move(str(logs), dest)
            result.logs = dest
        shutil.rmtree(instance.state_dir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------- status


def status(instance: Instance | None = None) -> StatusResult:
    """Processes, API readiness, nodes, laptops and health of the instance.

    Health is more than processes: the API server must answer, the Node's Ready
    condition must be True with a heartbeat younger than `node_stale_after`, and the
    controllers' heartbeat file younger than `controllers_stale_after` (the limits the
    supervisor publishes in run/status.json, so a sandbox started with other settings
    is judged by its own)."""
    instance = instance or Instance.from_env()
    s = get_settings().sandbox
    state = _read_state(instance)
    result = StatusResult(instance, exists=bool(state))
    if not state:
        return result
    port = int(state.get("api_port", 0))
    result.api_url = f"https://127.0.0.1:{port}"
    result.supervisor = supervisor_pid(instance)
    try:
        published = json.loads((instance.run_dir / STATUS_FILE).read_text())
        children = published["children"]
    except (OSError, ValueError, KeyError):
        published, children = {}, []
    grace = float(published.get("health_grace") or s.health_grace)
    now = time.time()
    limits: dict[str, float] = {}
    for c in children:
        pid = c.get("pid")
        running = bool(result.supervisor and pid and _alive(pid))
        beat = c.get("heartbeat")
        age = heartbeat_age(Path(beat), now) if beat else None
        limit = float(c.get("stale_after") or 0)
        limits[c["name"]] = limit
        started = float(c.get("started") or now)
        fresh_start = age is None or age > now - started  # nothing from this run yet
        stalled = running and bool(beat) and (
            now - started > limit + grace if fresh_start else age is not None and age > limit)
        result.processes.append(ProcessStatus(c["name"], pid, running,
                                              int(c.get("restarts", 0)), age, stalled,
                                              now - started))
    token = None
    with contextlib.suppress(OSError, ValueError, SandboxError):
        token = kc.ensure_admin_token(instance) if instance.tokens_file.exists() else None
    result.api_ready = kc.readyz(instance, port, token) if port else False
    node_listed = False
    if result.api_ready:
        from kubernetes import client

        with contextlib.suppress(Exception), kc.api_client(instance.kubeconfig) as api:
            for n in client.CoreV1Api(api).list_node(
                    _request_timeout=s.status_probe_timeout).items:
                result.nodes.append(_node_status(n, now))
            node_listed = True
    for k in range(1, int(state.get("laptops", 0)) + 1):
        ns = instance.laptop_netns(k)
        result.laptops.append((ns, net.laptop_address(k), ns in net.list_netns()))
    result.problems = _problems(result, state, node_listed,
                                limits.get("node") or s.node_stale_after, grace)
    return result


def _node_status(node: Any, now: float) -> NodeStatus:
    ready, age = False, None
    for c in (node.status.conditions if node.status else None) or []:
        if c.type == "Ready":
            ready = c.status == "True"
            if c.last_heartbeat_time is not None:
                age = max(0.0, now - c.last_heartbeat_time.timestamp())
    return NodeStatus(str(node.metadata.name if node.metadata else "?"), ready, age)


def _problems(result: StatusResult, state: dict[str, Any], node_listed: bool,
              node_limit: float, grace: float) -> list[str]:
    """One phrase per unhealthy part, in the order a user should look at them."""
    if result.supervisor is None:
        return ["supervisor not running (run 'tp sandbox down' and 'tp sandbox up')"]
    out: list[str] = []
    procs = {p.name: p for p in result.processes}
    api = procs.get("apiserver")
    if not result.api_ready:
        restarting = api is None or not api.up or api.age < grace
        out.append("apiserver restarting" if restarting
                   else "apiserver not answering (see logs/apiserver.log)")
    for p in result.processes:
        if p.name == "apiserver":
            continue
        if not p.up:
            out.append(f"{p.name} restarting (restarts {p.restarts})")
        elif p.stalled and p.name != "node":
            ago = f"{p.heartbeat_age:.0f}s ago" if p.heartbeat_age is not None else "never"
            out.append(f"{p.name} stalled (last heartbeat {ago})")
    if state.get("node", True):
        node = procs.get("node")
        if result.nodes:
            for n in result.nodes:
                if not n.ready or n.heartbeat_age is None or n.heartbeat_age > node_limit:
                    ago = (f"{n.heartbeat_age:.0f}s ago" if n.heartbeat_age is not None
                           else "never")
                    out.append(f"node {n.name} NotReady (last heartbeat {ago})")
        elif node_listed:
            out.append("node not registered")
        elif node is not None and node.stalled:
            # The API cannot tell; the node's own heartbeat file can.
            ago = f"{node.heartbeat_age:.0f}s ago" if node.heartbeat_age is not None else "never"
            out.append(f"node NotReady (last heartbeat {ago})")
    return out


# --------------------------------------------------------------------------- kubeconfig/exec


def _require(instance: Instance, laptop: int | None) -> dict[str, Any]:
    state = _read_state(instance)
    if not state:
        name = f" --name {instance.name}" if instance.name else ""
        raise SandboxNotUpError(f"sandbox {instance.name or 'default'} is not up; "
                                f"run 'tp sandbox up{name}' first")
    n = int(state.get("laptops", 0))
    if laptop is not None and not 1 <= laptop <= n:
        raise SandboxUsageError(
            f"laptop {laptop} does not exist; this sandbox has laptops 1..{n}"
            if n else "this sandbox has no laptops; run 'tp sandbox up --laptops 1'")
    return state


def kubeconfig_path(instance: Instance | None = None, laptop: int | None = None,
                    user: str | None = None) -> Path:
    """The host kubeconfig (the admin's), or laptop K's (its server is the in-sandbox API
    address; its developer's); with `user`, that user's (`admin`: the admin's)."""
    instance = instance or Instance.from_env()
    _require(instance, laptop)
    if user is not None and user not in (*kc.USERS, kc.ADMIN):
        raise SandboxUsageError(f"unknown user {user!r}: the sandbox's users are "
                                f"{', '.join(kc.USERS)} and {kc.ADMIN} (--admin)")
    if user is None:
        return instance.kubeconfig if laptop is None else laptop_kubeconfig(instance, laptop)
    if user == kc.ADMIN and laptop is None:
        return instance.kubeconfig
    path = (kc.user_kubeconfig(instance, user) if laptop is None
            else instance.laptop_dir(laptop) / f"kubeconfig-{user}")
    if not path.exists():
        raise SandboxNotUpError(f"{path} is missing: this sandbox was made before it had "
                                "users; run 'tp sandbox down' and 'tp sandbox up'")
    return path


def exec_argv(instance: Instance, laptop: int, argv: Sequence[str]) -> list[str]:
    """The command line that runs `argv` inside laptop K: its netns and its mount namespace
    (made by `up`, with the laptop's resolv.conf over /etc/resolv.conf), in the caller's
    working directory (`--wd=.` is opened before entering)."""
    if not argv:
        raise SandboxUsageError("give a command to run: tp sandbox exec [--laptop K] -- CMD...")
    _require(instance, laptop)
    ns = instance.laptop_netns(laptop)
    if not netns.exists(ns):
        raise SandboxNotUpError(f"netns {ns} is missing; run 'tp sandbox down' then 'up'")
    mnt = laptop_mountns(instance, laptop)
    if not mnt.exists():
        raise SandboxNotUpError(f"laptop {laptop} has no mount namespace (made by an older "
                                "version); run 'tp sandbox down' then 'up'")
    return [*_to_host_mountns(instance), "nsenter", f"--mount={mnt}",
            f"--net=/run/netns/{ns}", "--wd=.", "--", *argv]


def _to_host_mountns(instance: Instance) -> list[str]:
    """From inside a laptop (a notebook driving the other laptop), first go back to the
    host's mount namespace, the supervisor's: a laptop never sees the other laptops'
    namespace files (the kernel does not copy or propagate them)."""
    sup = supervisor_pid(instance)
    if sup is None:
        return []
    host = f"/proc/{sup}/ns/mnt"
    try:
        if os.stat(host).st_ino == os.stat("/proc/self/ns/mnt").st_ino:
            return []
    except OSError:
        return []
    return ["nsenter", f"--mount={host}", "--wd=.", "--"]


def exec_env(instance: Instance, laptop: int) -> dict[str, str]:
    return dict(os.environ, KUBECONFIG=str(laptop_kubeconfig(instance, laptop)),
                TP_SANDBOX_LAPTOP=str(laptop), TP_SANDBOX_NAME=instance.name)


def exec_in_laptop(argv: Sequence[str], laptop: int = 1, instance: Instance | None = None
                   ) -> int:
    """Run `argv` in laptop K with stdio passed through; returns its exit status."""
    instance = instance or Instance.from_env()
    return subprocess.run(exec_argv(instance, laptop, argv), env=exec_env(instance, laptop),
                          check=False).returncode


# --------------------------------------------------------------------------- demo


def demo_manifest() -> Path:
    """tp_sandbox/manifests/demo.yaml (package data), else sandbox/manifests/demo.yaml."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "manifests" / "demo.yaml", here.parent / "manifests" / "demo.yaml"):
        if candidate.exists():
            return candidate
    raise SandboxError(f"the demo manifest is missing (looked for {here}/manifests/demo.yaml);"
                       " reinstall tp-jupyter")


@dataclass
class DemoResult:
    namespace: str
    deployments: list[tuple[str, int, int]]
    seconds: float

    def __str__(self) -> str:
        lines = [f"demo ready in namespace {self.namespace} after {self.seconds:.1f}s"]
        lines += [f"  deployment/{n:<28} {r}/{w} available" for n, r, w in self.deployments]
        return "\n".join(lines)


def demo(instance: Instance | None = None, namespace: str = "telepresence-demo",
         progress: Progress = _stderr) -> DemoResult:
    """Apply the demo manifest in `namespace` and wait until its deployments are Available."""
    import yaml
    from kubernetes import client, utils

    instance = instance or Instance.from_env()
    _require(instance, None)
    started = time.monotonic()
    docs = [d for d in yaml.safe_load_all(demo_manifest().read_text()) if d]
    names = [d["metadata"]["name"] for d in docs if d.get("kind") == "Deployment"]
    with kc.api_client(instance.kubeconfig) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        try:
            core.create_namespace(client.V1Namespace(
                metadata=client.V1ObjectMeta(name=namespace)))
            progress(f"created namespace {namespace}")
        except client.ApiException as e:
            if e.status != 409:
                raise SandboxError(f"cannot create namespace {namespace}: {e.reason}") from e
        for doc in docs:
            kind, name = doc.get("kind"), doc["metadata"]["name"]
            try:
                utils.create_from_dict(api, doc, namespace=namespace)  # type: ignore[no-untyped-call]
                progress(f"created {kind.lower()}/{name}")
            except utils.FailToCreateError as e:
                if any(x.status != 409 for x in e.api_exceptions):
                    raise SandboxError(f"cannot create {kind} {name}: "
                                       f"{e.api_exceptions[0].reason}") from e
                progress(f"{kind.lower()}/{name} exists")
        deadline = time.monotonic() + get_settings().sandbox.demo_timeout
        last: dict[str, tuple[int, int]] = {}
        while True:
            now: dict[str, tuple[int, int]] = {}
            for n in names:
                d = apps.read_namespaced_deployment(n, namespace)
                now[n] = ((d.status.available_replicas or 0) if d.status else 0,
                          d.spec.replicas if d.spec.replicas is not None else 1)
            for n, (ready, want) in now.items():
                if last.get(n) != (ready, want):
                    progress(f"deployment/{n}: {ready}/{want} available")
            last = now
            if all(r >= w for r, w in now.values()):
                break
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"the demo was not Available after {get_settings().sandbox.demo_timeout:.0f}s;"
                    f" see 'kubectl get pods -n {namespace}' and {instance.logs_dir}/node.log")
            time.sleep(get_settings().sandbox.poll_interval * 2)
    return DemoResult(namespace, [(n, *last[n]) for n in names], time.monotonic() - started)
