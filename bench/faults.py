"""Reliability benchmark, in one run against the sandbox (root):

    python bench/faults.py [--restarts N]           ($TP_SANDBOX_NAME reuses an instance)

With a personal intercept (`blog-demo-id: bench`, local code answers "blue", the app
"green") a poller inside the cluster (a process in the network namespace of the demo's
verylargejavaservice pod, calling the Service's ClusterIP) sends one matched request
every 50 ms and records who answered; each fault is then timed from those samples (the
sandbox's pods and this process share the machine's clock):

1. manager restart (pod deleted): from the new manager pod being Ready until matched
   requests reach the laptop again. Issue figure: intercepts lost; target: within 10 s.
2. agent crash (the traffic-agent process in the pod killed with SIGKILL): the outage of
   matched requests until the laptop answers again. Issue figure: ~3 s.
3. API server restart (SIGKILL, the supervisor starts it again): until the API answers,
   until matched requests reach the laptop again (the daemon's port-forward goes through
   the API server) and `tp list` still shows the intercept. The sandbox persists its
   store: target, nothing lost.
4. daemon death (SIGKILL): until the cluster's app answers matched requests again.
   Bound: the session TTL (connect.session_ttl, 15 s) plus the manager's expiry sweep.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import SVC, TP, Sandbox, demo_sandbox

MANAGER_NS = "ambassador"
HEADER = "bench"

POLLER = r"""
import json, sys, time, urllib.request
url, who, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
out, end = [], time.time() + seconds
while time.time() < end:
    req = urllib.request.Request(url, headers={"blog-demo-id": who})
    t = time.time()
    try:
        answer = json.loads(urllib.request.urlopen(req, timeout=2).read())
    except Exception as e:
        answer = "error"
    out.append((t, answer))
    time.sleep(max(0.0, 0.05 - (time.time() - t)))
print(json.dumps(out))
"""


def wait_for(condition: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Bench(Sandbox):
    """The sandbox with what the faults need to find and kill."""

    def poll(self, seconds: float) -> tuple[threading.Thread, list[tuple[float, str]]]:
        """Start the poller for `seconds` in the caller pod's network namespace (a host
        process there, not an exec: an exec goes through the API server, which one of
        the faults restarts); the list fills when it ends."""
        pods = self.core.list_namespaced_pod(self.ns, label_selector="app=verylargejavaservice")
        netns = self.instance.pod_netns(pods.items[0].metadata.uid)
        ip = self.core.read_namespaced_service(SVC, self.ns).spec.cluster_ip
        samples: list[tuple[float, str]] = []
        proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", POLLER,
                                 f"http://{ip}:3000/color", HEADER, str(seconds)],
                                stdout=subprocess.PIPE, text=True)

        def run() -> None:
            out, _ = proc.communicate(timeout=seconds + 60)
            samples.extend((t, a) for t, a in json.loads(out.strip().splitlines()[-1]))

        thread = threading.Thread(target=run, name="poller", daemon=True)
        thread.start()
        time.sleep(1.0)  # the poller's first samples precede the fault
        return thread, samples

    def manager_pod(self, other_than: str = "") -> str:
        for pod in self.core.list_namespaced_pod(MANAGER_NS,
                                                 label_selector="app=traffic-manager").items:
            if pod.metadata.name == other_than or pod.metadata.deletion_timestamp:
                continue
            if any(c.type == "Ready" and c.status == "True"
                   for c in pod.status.conditions or []):
                return str(pod.metadata.name)
        return ""

    def agent_pid(self) -> int:
        """The host pid of the traffic-agent process in the intercepted workload's pod."""
        pods = self.core.list_namespaced_pod(self.ns, label_selector=f"app={SVC}").items
        pod = next(p for p in pods if not p.metadata.deletion_timestamp)
        netns = self.instance.pod_netns(pod.metadata.uid)
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True,
                              text=True, check=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(OSError):
                if b"tp_cluster.agent" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
        raise RuntimeError(f"no traffic-agent process in {netns}")

    def daemon_pid(self) -> int:
        out = self.laptop([*TP, "status", "--format", "json"]).stdout
        return int(json.loads(out)["daemon"]["pid"])


def recovered_after(samples: list[tuple[float, str]], since: float, want: str) -> float:
    """Seconds from `since` to the first sample after which every answer is `want`."""
    bad = [t for t, a in samples if t >= since and a != want]
    if not bad:
        return 0.0
    after = [t for t, a in samples if t > bad[-1] and a == want]
    if not after:
        return float("inf")
    return after[0] - since


def outage(samples: list[tuple[float, str]], since: float, want: str) -> float:
    """Seconds between the first and the last wrong answer after `since` (0: none)."""
    bad = [t for t, a in samples if t >= since and a != want]
    good_after = [t for t, a in samples if bad and t > bad[-1] and a == want]
    if not bad:
        return 0.0
    return (good_after[0] if good_after else float("inf")) - bad[0]


def line(name: str, value: str, figure: str, ok: bool) -> None:
    print(f"{name:<34} {value:<28} {figure:<44} {'OK' if ok else 'MISSED'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args()

    from tp_protocol.settings import get_settings

    ttl = get_settings().connect.session_ttl
    with demo_sandbox(uninstall=False) as sb:
        bench = Bench(sb.instance, sb.ns, sb.core)
        instance, ns, core = sb.instance, sb.ns, sb.core

        def intercept() -> None:
            done = bench.laptop([*TP, "intercept", SVC, "-n", ns, "-p", "3000", "--name",
                                 "bench", "--http-match", f"blog-demo-id={HEADER}"],
                                timeout=180)
            assert done.returncode == 0, done.stderr

        intercept()
        print(f"{'fault':<34} {'measured':<28} {'issue figure / target':<44} verdict")

        # 1. manager restarts
        times = []
        for _ in range(args.restarts):
            thread, samples = bench.poll(25)
            old = bench.manager_pod()
            core.delete_namespaced_pod(old, MANAGER_NS)
            wait_for(lambda old=old: bench.manager_pod(other_than=old), 60, "a new manager")
            ready = time.time()
            thread.join()
            times.append(recovered_after(samples, ready, "blue"))
        worst = max(times)
        line("manager restart -> routes again", f"median {statistics.median(times):.1f}s, "
             f"max {worst:.1f}s", "before: intercepts lost; target <= 10 s", worst <= 10)

        # 2. agent crash
        thread, samples = bench.poll(25)
        killed = time.time()
        os.kill(bench.agent_pid(), signal.SIGKILL)
        thread.join()
        agent_gap = outage(samples, killed, "blue")
        line("agent crash -> outage", f"{agent_gap:.1f}s", "issue: ~3 s", agent_gap <= 3.5)

        # 3. API server restart
        thread, samples = bench.poll(15)
        pid = int((instance.run_dir / "apiserver.pid").read_text())
        killed = time.time()
        os.kill(pid, signal.SIGKILL)

        def api_answers() -> bool:
            try:
                core.read_namespace(ns, _request_timeout=1)
            except Exception:
                return False
            return True

        wait_for(api_answers, 60, "the API server back", interval=0.05)
        api_back = time.time() - killed
        thread.join()
        # the laptop reaches the manager through the API server's port-forward: routing
        # pauses until the daemon has reconnected
        gap = recovered_after(samples, killed, "blue")

        def still_listed() -> bool:
            listed = bench.laptop([*TP, "list", "-n", ns], timeout=60).stdout
            return f"{SVC}: intercepted" in listed

        kept = bool(wait_for(still_listed, 30, "the intercept in `tp list`", interval=0.5))
        line("apiserver restart -> API answers", f"{api_back:.1f}s; routes again {gap:.1f}s",
             "store persists: nothing lost", kept and gap < 10)

        # 4. daemon death
        thread, samples = bench.poll(ttl + 20)
        killed = time.time()
        os.kill(bench.daemon_pid(), signal.SIGKILL)
        thread.join()
        back = recovered_after(samples, killed, "green")
        line("daemon death -> cluster answers", f"{back:.1f}s",
             f"bound: session TTL {ttl:g} s (+ expiry sweep)", back <= ttl + 5)
        print(json.dumps({"manager_restart_s": times, "agent_crash_outage_s": agent_gap,
                          "apiserver_back_s": api_back, "apiserver_routing_gap_s": gap,
                          "daemon_death_s": back}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
