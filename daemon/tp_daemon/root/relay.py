"""The DNS relay for one leased uid (runs as root, so it may mark its sockets).

nft sends the uid's queries here. Each goes first to the user daemon's cluster-only
resolver on 127.0.0.1; a cluster name is answered from there. Anything else (the user
resolver says SERVFAIL/REFUSED, or is silent) goes to the workstation's own nameservers
from a marked socket, exactly as the root-mode resolver does.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

import dns.message
import dns.rcode
from tp_protocol import manager_pb2 as mpb

from tp_daemon.dns import Resolver

_NOT_OURS = (dns.rcode.SERVFAIL, dns.rcode.REFUSED)


async def _never(name: str, qtype: int) -> mpb.DNSResponse:
    raise RuntimeError("the relay asks the user daemon's resolver, not the manager")


class Relay(Resolver):
    def __init__(self, user_port: int, upstreams: Sequence[str], *, timeout: float,
                 mark: int) -> None:
        super().__init__(_never, upstreams, timeout=timeout, cache_ttl=0, mark=mark)
        self.user_port = user_port

    async def answer(self, wire: bytes) -> bytes | None:
        self.queries += 1
        reply = await self._ask_user(wire)
        if reply is not None:
            try:
                if dns.message.from_wire(reply).rcode() not in _NOT_OURS:
                    return reply
            except Exception:  # a garbled reply: treat as "not a cluster name"
                pass
        forwarded = await self._forward(wire)
        if forwarded is not None:
            return forwarded
        try:
            failure = dns.message.make_response(dns.message.from_wire(wire))
        except Exception:
            return None
        failure.set_rcode(dns.rcode.SERVFAIL)
        return failure.to_wire()

    async def _ask_user(self, wire: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", self.user_port))
            await loop.sock_sendall(sock, wire)
            return await asyncio.wait_for(loop.sock_recv(sock, 65535), self._timeout)
        except (OSError, TimeoutError):
            return None
        finally:
            sock.close()
