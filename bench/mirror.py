"""Mirror benchmark, in one run against the sandbox (root):

    python bench/mirror.py [-n REQUESTS] [-r ROUNDS]     ($TP_SANDBOX_NAME reuses an instance)

The added latency a wiretap puts on the caller: p50/p99 of requests from a pod of the demo
app through the traffic-agent, with a wiretap that copies every request to the local code
in the laptop, against the SAME agent without a mirror (a personal intercept that matches
none of them keeps the agent on its parsing path, so only the mirror differs). Rounds
alternate (no mirror, mirror, no mirror, ...) so that drift of the machine hits both sides.
Also: whether every copy arrived with both answers, and the drops the agent counted.
Target: under 0.3 ms added at p50.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from benchkit import PROBE, SVC, demo_sandbox, pct


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=500,
                        help="requests per round (after 20 warm-up ones)")
    parser.add_argument("-r", "--rounds", type=int, default=3,
                        help="rounds of each kind, alternating")
    args = parser.parse_args()

    from kubernetes.stream import stream

    with demo_sandbox() as sb:
        tp, ns = sb.tp, sb.ns
        # the agent on its parsing path, matching nothing the probe sends
        tp("intercept", SVC, "-n", ns, "-p", "3000", "--mount", "false",
           "--http-match", "x-bench=never")
        caller = sb.caller_pod()

        def from_pod() -> list[float]:
            out = stream(sb.core.connect_get_namespaced_pod_exec, caller, ns,
                         command=["python3", "-c", PROBE, SVC, "3000", str(args.requests),
                                  ""],
                         stdout=True, stderr=True, stdin=False, tty=False)
            return list(json.loads(str(out).strip().splitlines()[-1]))

        plain: list[float] = []
        mirrored: list[float] = []
        copies = 0
        for _ in range(args.rounds):
            plain += from_pod()
            tp("wiretap", SVC, "-n", ns, "-p", "3000", "--name", "bench-wt")
            mirrored += from_pod()
            copies += args.requests + 20
            status = json.loads(tp("status", "--format", "json"))
            wt = next(ic for ic in status["intercepts"] if ic["name"] == "bench-wt")
            tp("leave", "bench-wt")
        rows = json.loads(tp("traffic", "bench-wt", "--format", "json"))["rows"]
        both = [r for r in rows if r["mode"] == "mirror" and r["local_status"] == 200
                and r["status"] == 200]
        print(f"{'requests from a pod (ms)':44} {'p50':>8} {'p99':>8} {'mean':>8}")
        for label, values in (("same agent, no mirror (baseline)", plain),
                              ("with a wiretap copying every request", mirrored)):
            print(f"{label:44} {pct(values, .5):8.3f} {pct(values, .99):8.3f} "
                  f"{statistics.fmean(values):8.3f}")
        added = pct(mirrored, .5) - pct(plain, .5)
        print(f"added by the mirror: p50 {added:+.3f} ms (target < 0.3 ms), ratio "
              f"{pct(mirrored, .5) / pct(plain, .5):.2f}x; p99 "
              f"{pct(mirrored, .99) - pct(plain, .99):+.3f} ms")
        print(f"copies: {copies} sent by callers, {len(both)} rows with both answers kept by "
              f"the daemon, last round's counters: {wt['mirror']}")
        return 0 if added < 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
