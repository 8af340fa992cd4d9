"""`python -m tp_sandbox.supervisor --name N`: runs and restarts an instance's processes.

Reads what to run from the instance's `state.json` (written by `tp sandbox up`):

    apiserver      python -m tp_sandbox.apiserver --state-dir DIR --listen 127.0.0.1:PORT
                   --listen 172.30.0.1:6443@<prefix>node --service-cidr CIDR
    laptop-dns-K   python -m tp_sandbox.laptop_dns --netns <prefix>laptop-K (one per laptop)
    controllers    python -m tp_sandbox.controllers --kubeconfig DIR/kubeconfig
    node           python -m tp_sandbox.node --name N --kubeconfig DIR/kubeconfig (unless no node)

Each child logs to `logs/<proc>.log` and has `run/<proc>.pid`; `run/status.json`
holds pid, state, restart count and health per child for `tp sandbox status`.
Health: the node and the controllers write `run/<proc>.heartbeat` while they work
(the node after each Node status write); one whose heartbeat is older than
`node_stale_after` / `controllers_stale_after` is "stalled" (logged, and in
status.json with those limits), though still running: it is reported, not restarted
(a stopped node keeps its pods; restarting it would restart them). A child that
exits is restarted after a back-off (doubling from `restart_backoff_initial` to
`restart_backoff_max`, reset once it stayed up `restart_reset_after`); a module that
does not exist yet is just a child that keeps exiting. On SIGTERM/SIGINT the children
are stopped in reverse order (SIGTERM, `stop_grace`, SIGKILL) and the supervisor exits.

Single-threaded: one loop polls the children, so nothing runs in the background.

Errors: `SupervisorError` (bad state.json) ends the process with a one-line message.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from tp_protocol.settings import get_settings

from tp_sandbox.paths import Instance

log = logging.getLogger("tp_sandbox.supervisor")

SUPERVISOR_PID = "supervisor.pid"
STATUS_FILE = "status.json"


class SupervisorError(RuntimeError):
    """The instance's state.json is missing or unusable."""


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    last_exit: int | None = None
    heartbeat: Path | None = None
    stale_after: float = 0.0
    stalled: bool = False


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since `path` was last written, None if it never was."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)


def children_for(instance: Instance, state: dict[str, Any]) -> list[Child]:
    """The processes of an instance, in start order (stopped in reverse)."""
    s = get_settings().sandbox
    py = sys.executable
    kubeconfig = str(instance.kubeconfig)
    port = int(state["api_port"])
    kids = [Child("apiserver", [
        py, "-m", "tp_sandbox.apiserver", "--state-dir", str(instance.state_dir),
        "--listen", f"127.0.0.1:{port}",
        "--listen", f"{s.api_address}:{s.api_inner_port}@{instance.node_netns}",
        "--service-cidr", s.service_cidr])]
    for k in range(1, int(state.get("laptops", 0)) + 1):
        kids.append(Child(f"laptop-dns-{k}", [
            py, "-m", "tp_sandbox.laptop_dns", "--netns", instance.laptop_netns(k)]))
    beat = instance.run_dir / "controllers.heartbeat"
    kids.append(Child("controllers", [py, "-m", "tp_sandbox.controllers",
                                      "--kubeconfig", kubeconfig, "--heartbeat", str(beat)],
                      heartbeat=beat, stale_after=s.controllers_stale_after))
    if state.get("node", True):
        kids.append(Child("node", [py, "-m", "tp_sandbox.node", "--name", instance.name,
                                   "--kubeconfig", kubeconfig],
                          heartbeat=instance.run_dir / "node.heartbeat",
                          stale_after=s.node_stale_after))
    return kids


class Supervisor:
    """Starts, watches, restarts and finally stops the children of one instance."""

    def __init__(self, instance: Instance, children: list[Child]) -> None:
        self.instance = instance
        self.children = children
        self.stopping = False
        self._dirty = True

    def _pid_file(self, child: Child) -> Path:
        return self.instance.run_dir / f"{child.name}.pid"

    def _start(self, child: Child, now: float) -> None:
        logs = self.instance.logs_dir
        logs.mkdir(parents=True, exist_ok=True)
        if child.log_file is None:
            child.log_file = open(logs / f"{child.name}.log", "ab")  # noqa: SIM115
        child.log_file.write(f"--- {time.strftime('%H:%M:%S')} start: "
                             f"{' '.join(child.argv)}\n".encode())
        child.log_file.flush()
        env = dict(os.environ, TP_SANDBOX_NAME=self.instance.name, PYTHONUNBUFFERED="1")
        try:
            child.proc = subprocess.Popen(
                child.argv, stdin=subprocess.DEVNULL, stdout=child.log_file,
                stderr=subprocess.STDOUT, env=env, cwd=self.instance.state_dir)
        except OSError as e:
            log.error("%s: cannot start: %s", child.name, e)
            self._schedule_restart(child, now)
            return
        child.started_at = now
        self._pid_file(child).write_text(f"{child.proc.pid}\n")
        log.info("%s started (pid %d)", child.name, child.proc.pid)
        self._dirty = True

    def _schedule_restart(self, child: Child, now: float) -> None:
        s = get_settings().sandbox
        ran = now - child.started_at
        if child.backoff == 0.0 or ran >= s.restart_reset_after:
            child.backoff = s.restart_backoff_initial
        else:
            child.backoff = min(child.backoff * 2, s.restart_backoff_max)
        child.next_start = now + child.backoff
        child.restarts += 1
        self._dirty = True

    def _reap(self, child: Child, now: float) -> None:
        assert child.proc is not None
        code = child.proc.returncode
        child.last_exit = code
        child.proc = None
        self._pid_file(child).unlink(missing_ok=True)
        self._schedule_restart(child, now)
        hint = f" (see {self.instance.logs_dir / (child.name + '.log')})"
        log.warning("%s exited with %s after %.1fs; restarting in %.1fs%s", child.name, code,
                    now - child.started_at, child.backoff, hint)

    def write_status(self) -> None:
        """Publish each child's pid, state and restarts for `tp sandbox status`."""
        status = {
            "supervisor": os.getpid(),
            "children": [{
                "name": c.name,
                "pid": c.proc.pid if c.proc else None,
                "up": c.proc is not None,
                "restarts": c.restarts,
                "last_exit": c.last_exit,
                "started": time.time() - (time.monotonic() - c.started_at) if c.proc else None,
                "heartbeat": str(c.heartbeat) if c.heartbeat else None,
                "stale_after": c.stale_after or None,
                "stalled": c.stalled,
            } for c in self.children],
            "health_grace": get_settings().sandbox.health_grace,
        }
        path = self.instance.run_dir / STATUS_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(status, indent=2))
        tmp.replace(path)
        self._dirty = False

    def _check_heartbeat(self, child: Child, now: float) -> None:
        """Mark a running child stalled when its heartbeat file got too old."""
        if child.heartbeat is None or child.proc is None:
            stalled = False
        else:
            age = heartbeat_age(child.heartbeat)
            ran = now - child.started_at
            if age is None or age > ran:  # nothing written by this run of the process yet
                stalled = ran > child.stale_after + get_settings().sandbox.health_grace
            else:
                stalled = age > child.stale_after
        if stalled != child.stalled:
            child.stalled = stalled
            self._dirty = True
            if stalled:
                log.warning("%s stalled: no heartbeat in %s for %.0fs", child.name,
                            child.heartbeat, child.stale_after)
            else:
                log.info("%s heartbeat is fresh again", child.name)

    def step(self, now: float) -> None:
        """One pass over the children: reap the exited ones, start the due ones, check
        the heartbeats."""
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                self._reap(child, now)
            if child.proc is None and now >= child.next_start:
                self._start(child, now)
            self._check_heartbeat(child, now)
        if self._dirty:
            self.write_status()

    def run(self) -> None:
        """Supervise until asked to stop, then stop every child in reverse order."""
        interval = get_settings().sandbox.poll_interval
        try:
            while not self.stopping:
                self.step(time.monotonic())
                time.sleep(interval)
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        grace = get_settings().sandbox.stop_grace
        for child in reversed(self.children):
            proc = child.proc
            if proc is not None and proc.poll() is None:
                log.info("stopping %s (pid %d)", child.name, proc.pid)
                proc.terminate()
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    log.warning("%s ignored SIGTERM for %.0fs; killing it", child.name, grace)
                    proc.kill()
                    proc.wait()
            child.proc = None
            self._pid_file(child).unlink(missing_ok=True)
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None
        self.write_status()


def load_state(instance: Instance) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(instance.state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SupervisorError(
            f"cannot read {instance.state_file} ({e}); start the sandbox with 'tp sandbox up'"
        ) from e
    if "api_port" not in state:
        raise SupervisorError(f"{instance.state_file} has no api_port; run 'tp sandbox down' "
                              "and 'tp sandbox up' again")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tp_sandbox.supervisor")
    parser.add_argument("--name", default=os.environ.get("TP_SANDBOX_NAME", ""),
                        help="sandbox instance name ('' = default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s supervisor %(levelname)s %(message)s")
    try:
        instance = Instance(args.name)
        state = load_state(instance)
    except (ValueError, SupervisorError) as e:
        print(f"supervisor: {e}", file=sys.stderr)
        return 2
    instance.run_dir.mkdir(parents=True, exist_ok=True)
    pid_file = instance.run_dir / SUPERVISOR_PID
    pid_file.write_text(f"{os.getpid()}\n")
    sup = Supervisor(instance, children_for(instance, state))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        sup.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("supervising %s", ", ".join(c.name for c in sup.children))
    try:
        sup.run()
    finally:
        pid_file.unlink(missing_ok=True)
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
