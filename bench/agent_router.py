"""Micro-benchmark of the traffic-agent's per-request cost on an unmatched request.

Three processes on loopback: a tiny keep-alive HTTP app, the agent's real `Listener`
(two of them: one port with a personal intercept registered, so every request goes
through `HttpRouter`; one port without intercepts, the plain byte splice), and a client
doing N sequential keep-alive GETs that match no intercept. Prints, from one run:
p50 latency direct-to-app / through the splice / through the router, and the agent
process's CPU per request (utime+stime from /proc) for the splice and the router.

    python bench/agent_router.py [-n 5000] [--profile-seconds 0] [--asyncio]

With `--profile-seconds S` it also runs `py-spy record` on the agent for S seconds
while the router is under load and prints the top own-time frames.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

RESPONSE_BODY = b"x" * 64
REQUEST = (b"GET /orders/42?x=1 HTTP/1.1\r\nhost: web\r\nuser-agent: bench\r\n"
           b"accept: */*\r\nx-dev: nobody\r\n\r\n")


# --- the app -----------------------------------------------------------------------------

async def _app(port: int) -> None:
    response = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
                + str(len(RESPONSE_BODY)).encode() + b"\r\n\r\n" + RESPONSE_BODY)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buf += data
            while (end := buf.find(b"\r\n\r\n")) >= 0:  # GETs only: no body
                buf = buf[end + 4:]
                writer.write(response)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()


# --- the agent ---------------------------------------------------------------------------

async def _agent(app_port: int, routed_port: int, spliced_port: int) -> None:
    from tp_cluster.agent import TunnelFailed
    from tp_cluster.agent.forward import Listener
    from tp_cluster.agent.http import Context
    from tp_cluster.agent.intercepts import Intercept, Registry
    from tp_protocol.settings import get_settings

    s = get_settings().intercept
    rows: list[object] = []

    def report(record: object) -> None:  # the link's queue, minus the wake-up
        rows.append(record)
        if len(rows) > 1000:
            rows.clear()

    async def no_tunnel(intercept: Intercept, source: tuple[str, int]) -> object:
        raise TunnelFailed("benchmark: matched requests are not measured here")

    def context(port: int, registry: Registry) -> Context:
        return Context(
            port=port, app_port=app_port, workload="web", namespace="demo", pod="web-1",
            chunk=s.agent_chunk, max_head=s.agent_max_head_bytes, body_limit=s.capture_body_limit,
            app_dial_timeout=s.agent_app_dial_timeout,
            tunnel_close_timeout=s.agent_tunnel_close_timeout, route=registry.route,
            open_tunnel=no_tunnel, report=report,
            redact=frozenset(h.lower() for h in s.capture_redact_headers), port_name="http",
            mirror_route=registry.mirrors, mirror_body_limit=s.mirror_body_limit)

    routed = Registry()
    routed.replace([Intercept("ic-1", "web-alice", "sess-1", routed_port, False,
                              ((b"x-dev", re.compile(b"alice")),), owner="alice")])
    spliced = Registry()
    for port, registry in ((routed_port, routed), (spliced_port, spliced)):
        await Listener(context(port, registry), registry, "127.0.0.1",
                       s.agent_sniff_timeout, s.agent_retire_idle).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# --- the client --------------------------------------------------------------------------

def _client(port: int, n: int) -> list[float]:
    """N sequential keep-alive GETs; per-request seconds."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    want = len(RESPONSE_BODY)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        sock.sendall(REQUEST)
        buf = b""
        while True:
            buf += sock.recv(65536)
            end = buf.find(b"\r\n\r\n")
            if end >= 0 and len(buf) >= end + 4 + want:
                break
        times.append(time.perf_counter() - start)
    sock.close()
    return times


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise SystemExit(f"{args[0]} did not start")
    return proc


def _measure(port: int, n: int, agent: int | None) -> tuple[float, float]:
    """(p50 ms, agent CPU us per request)."""
    _client(port, 200)  # warm-up: connections, caches
    cpu = _cpu_seconds(agent) if agent else 0.0
    times = _client(port, n)
    used = (_cpu_seconds(agent) - cpu) if agent else 0.0
    return statistics.median(times) * 1000.0, used / n * 1e6


def _profile(agent: int, port: int, seconds: float) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = f"/tmp/agent_router-{os.getpid()}.txt"
    rec = subprocess.Popen([spy, "record", "-p", str(agent), "-r", "500", "-d", str(int(seconds)),
                            "--format", "raw", "-o", out, "--nonblocking"],
                           stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds + 1
    while time.monotonic() < deadline and rec.poll() is None:
        _client(port, 500)
    rec.wait()
    own: Counter[str] = Counter()
    total = 0
    for line in Path(out).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
    print(f"py-spy: {total} samples, top own-time frames:")
    for frame, count in own.most_common(25):
        print(f"  {count / total:6.1%}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--profile-seconds", type=int, default=0)
    parser.add_argument("--asyncio", action="store_true",
                        help="the agent on asyncio's own loop (default: as the agent runs)")
    args = parser.parse_args()
    if args.asyncio:
        os.environ["BENCH_LOOP"] = "asyncio"
    app_port, routed, spliced = _free_port(), _free_port(), _free_port()
    app = _start("app", str(app_port))
    agent = _start("agent", str(app_port), str(routed), str(spliced))
    try:
        direct, _ = _measure(app_port, args.n, None)
        splice, splice_cpu = _measure(spliced, args.n, agent.pid)
        router, router_cpu = _measure(routed, args.n, agent.pid)
        print(f"n={args.n} p50: direct {direct:.3f} ms, splice {splice:.3f} ms "
              f"(+{splice - direct:.3f}), router {router:.3f} ms (+{router - direct:.3f})")
        print(f"agent CPU per request: splice {splice_cpu:.0f} us, router {router_cpu:.0f} us "
              f"({router_cpu / max(splice_cpu, 1e-9):.2f}x)")
        if args.profile_seconds:
            _profile(agent.pid, routed, args.profile_seconds)
    finally:
        for proc in (agent, app):
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "app":
        asyncio.run(_app(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "agent":
        # the loop the real agent runs on (intercept.agent_uvloop), unless --asyncio
        from tp_protocol.settings import get_settings

        if get_settings().intercept.agent_uvloop and os.environ.get("BENCH_LOOP") != "asyncio":
            import uvloop

            uvloop.run(_agent(*(int(a) for a in sys.argv[2:5])))
        else:
            asyncio.run(_agent(*(int(a) for a in sys.argv[2:5])))
    else:
        main()
