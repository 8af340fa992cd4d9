"""Held-request round trip, in one run against the sandbox (root):

    python bench/hold.py [-n REQUESTS]        ($TP_SANDBOX_NAME reuses an instance)

A caller in laptop 1 calls the demo Service through the connected daemon with a header
that a personal intercept matches, one request at a time on one keep-alive connection
(the name resolved once, untimed). Rows:

1. matched, not held: agent -> manager -> daemon -> local code (the baseline);
2. held, then forwarded to local code by a decider that polls `tp_jupyter.held()` and
   calls `.forward(to="local")` at once (the whole round trip as the caller sees it);
3. the same forwarded to the cluster (`.forward(to="cluster")`: a Tunnel dial to the app);
plus, from the decider: how long `.forward()` takes (DecideHeld: the forwarded exchange
and the answer written back) and how long a request waited until the decider saw it.
The added cost of holding is row 2 minus row 1 (the decider's polling is part of it).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys

from benchkit import SVC, TP, Sandbox, demo_sandbox, pct

NAME = "bench-hold"

CALLER = r"""
import http.client, json, socket, sys, time
host, n = socket.gethostbyname(sys.argv[1]), int(sys.argv[2])   # DNS once, not timed
c = http.client.HTTPConnection(host, 3000, timeout=60)         # keep-alive, as services do
out = []
for i in range(n + 5):
    t = time.perf_counter()
    c.request("GET", "/color", headers={"x-bench": "1"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    if i >= 5:   # warm-up excluded
        out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""

DECIDER = r"""
import json, sys, time
import tp_jupyter
n, to = int(sys.argv[1]), sys.argv[2]
forward, seen = [], []
deadline = time.monotonic() + 600
while len(forward) < n and time.monotonic() < deadline:
    for req in tp_jupyter.held():
        seen.append((time.time() - req.received) * 1000)
        t = time.perf_counter()
        req.forward(to=to)
        forward.append((time.perf_counter() - t) * 1000)
    time.sleep(0.002)
print(json.dumps({"forward": forward[5:], "seen": seen[5:]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=100)
    args = parser.parse_args()

    with demo_sandbox() as sb:
        host = f"{SVC}.{sb.ns}"
        sb.tp("intercept", SVC, "-n", sb.ns, "-p", "3000", "--mount", "false",
              "--http-match", "x-bench=1", "--name", NAME)
        calls = functools.partial(_calls, sb, host, args.requests)
        baseline, _ = calls()
        sb.laptop([*TP, "hold", NAME, "--timeout", "60"])
        held_local, decided_local = calls("local")
        held_cluster, decided_cluster = calls("cluster")
        rows = [("matched, not held (baseline)", baseline),
                ("held -> forward(to='local'), caller's view", held_local),
                ("held -> forward(to='cluster'), caller's view", held_cluster),
                ("  forward(to='local') call", decided_local["forward"]),
                ("  forward(to='cluster') call", decided_cluster["forward"]),
                ("  held until the decider saw it", decided_local["seen"])]
        print(f"{'requests (ms), n=' + str(args.requests):46} {'p50':>8} {'p99':>8} "
              f"{'mean':>8}")
        for label, values in rows:
            print(f"{label:46} {pct(values, .5):8.3f} {pct(values, .99):8.3f} "
                  f"{statistics.fmean(values):8.3f}")
        print(f"held-request round trip (local): p50 {pct(held_local, .5):.1f} ms, "
              f"{pct(held_local, .5) - pct(baseline, .5):+.1f} ms over not held "
              f"({pct(held_local, .5) / pct(baseline, .5):.1f}x)")
        return 0


def _calls(sb: Sandbox, host: str, n: int, decide_to: str = ""
           ) -> tuple[list[float], dict[str, list[float]]]:
    """The caller's milliseconds for `n` requests and, with `decide_to`, the decider's."""
    decider = None
    if decide_to:
        decider = sb.popen([sys.executable, "-c", DECIDER, str(n + 5), decide_to],
                           stdout=subprocess.PIPE, text=True)
    caller = sb.laptop([sys.executable, "-c", CALLER, host, str(n)], timeout=900)
    if caller.returncode:
        raise SystemExit(f"the caller failed: {caller.stderr.strip()[-500:]}")
    decided: dict[str, list[float]] = {}
    if decider is not None:
        out, _ = decider.communicate(timeout=120)
        decided = json.loads(out.strip().splitlines()[-1])
    return json.loads(caller.stdout.strip().splitlines()[-1]), decided


if __name__ == "__main__":
    sys.exit(main())
