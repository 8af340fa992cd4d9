"""Intercept benchmark, in one run against the sandbox (root):

    python bench/intercept.py [-n REQUESTS]        ($TP_SANDBOX_NAME reuses an instance)

1. time from `tp intercept` (agent not yet installed) to ACTIVE and serving;
2. p50/p99 latency of unmatched requests through the traffic-agent, against the same
   requests before the agent was installed (caller: a pod of the demo app, keep-alive);
3. latency of matched requests to the local code (pod -> agent -> manager -> daemon ->
   local port), against a direct call to the local code inside the laptop.
Targets: ACTIVE under 5 s; agent overhead on unmatched requests under 1 ms p50.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from benchkit import PROBE, SVC, TP, demo_sandbox, pct


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
                ("matched, to local code via the agent", matched)]
        print(f"tp intercept -> ACTIVE and serving: {active:.2f} s (target < 5 s, agent "
              "installed by this call)")
        print(f"{'requests (ms)':46} {'p50':>8} {'p99':>8} {'mean':>8}")
        for label, values in rows:
            print(f"{label:46} {pct(values, .5):8.3f} {pct(values, .99):8.3f} "
                  f"{statistics.fmean(values):8.3f}")
        overhead = pct(unmatched, .5) - pct(no_agent, .5)
        print(f"agent overhead on unmatched requests: p50 +{overhead:.3f} ms (target < 1 ms), "
              f"ratio {pct(unmatched, .5) / pct(no_agent, .5):.2f}x")
        print(f"matched via the agent vs direct local call: p50 ratio "
              f"{pct(matched, .5) / pct(direct, .5):.1f}x")
        return 0 if active < 5 and overhead < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
