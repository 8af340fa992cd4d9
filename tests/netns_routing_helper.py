"""Run inside a private network namespace by test_routing.py (needs root).

Sets up the daemon's routing exactly as a connect does -- TUN link, routes, nft table,
transparent proxy, resolver -- with a dialer that reaches a local echo server instead of
the manager, exercises it, tears it down and prints what it saw as JSON.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import dns.asyncquery
import dns.message

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dns_testing import Upstream as _Upstream
from dns_testing import lookup as _lookup
from tp_daemon.dns import Resolver, system_nameservers
from tp_daemon.errors import RoutingError
from tp_daemon.proxy import TransparentProxy
from tp_daemon.routing import Routing
from tp_daemon.streams import Stream, TcpStream

RANGES = ["10.96.0.0/16", "10.244.0.0/24"]


def _listing() -> dict[str, str]:
    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return {"links": run("ip", "-o", "link"), "routes": run("ip", "route"),
            "nft": run("nft", "list", "tables")}


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(mode: str) -> dict[str, object]:
    out: dict[str, object] = {}
    loop = asyncio.get_running_loop()
    if mode == "overlap":
        routing = Routing("tp0", "tp-daemon", 0x7470)
        try:
            await routing.setup(RANGES, 1, [], 0)
        except RoutingError as e:
            out["error"] = str(e)
        out["after"] = _listing()
        return out

    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    echo_port = echo.sockets[0].getsockname()[1]
    dialed: list[tuple[str, int]] = []

    async def dial(ip: str, port: int) -> Stream:
        dialed.append((ip, port))
        return await TcpStream.open("127.0.0.1", echo_port)

    # The "system" nameserver of this namespace's resolv.conf is a real UDP server.
    nameservers = system_nameservers()
    transport, upstream = await loop.create_datagram_endpoint(
        _Upstream, local_addr=(nameservers[0], 53))
    proxy = TransparentProxy(dial)
    proxy_port = await proxy.start()
    resolver = Resolver(_lookup, nameservers, timeout=2, cache_ttl=1, mark=0x7470)
    dns_port = await resolver.start()
    routing = Routing("tp0", "tp-daemon", 0x7470)
    await routing.setup(RANGES, proxy_port, nameservers, dns_port)
    out["during"] = _listing()

    reader, writer = await asyncio.open_connection("10.96.0.5", 80)
    payload = bytes(range(256)) * 40000  # 10 MB through the redirect, checked exactly
    writer.write(payload)
    got = await reader.readexactly(len(payload))
    writer.close()
    out["echo_intact"] = got == payload
    out["dialed"] = dialed
    # Queries to the system nameserver are answered by the daemon's resolver ...
    q = dns.message.make_query("kubernetes.default.", "A")
    reply = await dns.asyncquery.udp(q, nameservers[0], timeout=5)
    out["cluster_answer"] = [r.to_text() for r in reply.answer[0]]
    # ... which forwards other names to that nameserver itself (marked, not redirected).
    q = dns.message.make_query("example.test.", "A")
    reply = await dns.asyncquery.udp(q, nameservers[0], timeout=5)
    out["upstream_answer"] = [r.to_text() for r in reply.answer[0]]
    out["upstream_saw"] = upstream.names
    # getaddrinfo goes through the same path (glibc reads resolv.conf).
    infos = await loop.getaddrinfo("kubernetes.default", 443, family=socket.AF_INET,
                                   type=socket.SOCK_STREAM)
    out["getaddrinfo"] = sorted({i[4][0] for i in infos})

    await routing.teardown()
    await resolver.close()
    await proxy.close()
    transport.close()
    echo.close()
    out["after"] = _listing()
    return out


if __name__ == "__main__":
    import logging
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # A workstation has an address to send from (the laptop's eth0); give this one too.
    subprocess.run(["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"], check=True)
    if sys.argv[1] == "overlap":
        subprocess.run(["ip", "route", "add", "10.96.0.0/24", "dev", "lo"], check=True)
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
