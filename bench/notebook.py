"""Notebook benchmark: a request served by a cell handler against the same handler served by
a plain local HTTP server, measured side by side in one run.

    python bench/notebook.py [--requests 2000] [--warmup 200]

Both servers run in this process on 127.0.0.1 and answer `{"color": "green"}`:
- baseline: `http.server.ThreadingHTTPServer` calling the handler directly (what a
  developer would run by hand for `tp intercept -p PORT`);
- cell handler: `tp_jupyter.handlers.HandlerServer` (a thread per connection parsing with
  httptools and calling the handler itself, output routing, a traffic row per exchange).
One keep-alive HTTP/1.1 client sends the requests sequentially; printed are the median,
p90 and p99 latencies (ms) of each, the ratio cell/baseline of median latency and the
speed of the cell handler relative to the baseline (target: >= 1.0x).
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import statistics
import threading
import time
from typing import Any

from tp_jupyter import handlers


def color(request: Any) -> dict[str, str]:
    return {"color": "green"}


class Baseline(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, like the aiohttp server
    disable_nagle_algorithm = True  # head and body are separate writes: avoid the 40 ms stall

    def do_GET(self) -> None:
        body = json.dumps(color(None)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def measure(port: int, n: int, warmup: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times: list[float] = []
    for i in range(n + warmup):
        t0 = time.perf_counter()
        conn.request("GET", "/color")
        r = conn.getresponse()
        body = r.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if r.status != 200 or b"green" not in body:
            raise SystemExit(f"bad answer from port {port}: {r.status} {body!r}")
        if i >= warmup:
            times.append(elapsed)
    conn.close()
    return times


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Baseline)
    thread = threading.Thread(target=httpd.serve_forever, name="bench-baseline", daemon=True)
    thread.start()
    cell = handlers.HandlerServer(color, "bench")
    try:
        results = {}
        for name, port in (("baseline (http.server)", httpd.server_port),
                           ("cell handler", cell.port)):
            results[name] = measure(port, args.requests, args.warmup)
    finally:
        httpd.shutdown()
        thread.join(5)
        handlers.shutdown()

    print(f"{args.requests} sequential keep-alive requests each (after {args.warmup} warm-up)")
    print(f"{'server':<24} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for name, times in results.items():
        print(f"{name:<24} {statistics.median(times):>10.3f} {pct(times, 90):>8.3f} "
              f"{pct(times, 99):>8.3f} {1000 / statistics.mean(times):>8.0f}")
    base, cellt = results["baseline (http.server)"], results["cell handler"]
    ratio = statistics.median(cellt) / statistics.median(base)
    print(f"ratio cell/baseline (median latency): {ratio:.2f}; cell handler speed "
          f"{1 / ratio:.2f}x http.server's ({'met' if ratio <= 1 else 'NOT met'}: >= 1.0x)")


if __name__ == "__main__":
    main()
