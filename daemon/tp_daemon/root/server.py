"""The root daemon's socket: who may call, what they asked for, and their leases.

A caller is accepted when SO_PEERCRED says it is root or a member of the service's
group (the socket is also 0660 root:<group>, so others cannot even connect). A route
lease lives while the caller keeps its connection open; EOF (the user daemon quit or
died) releases it. Every request is logged with the caller's uid, user name and pid.
"""

from __future__ import annotations

import asyncio
import grp
import json
import logging
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tp_protocol.aio import wait_at_most
from tp_protocol.settings import RootDaemonSettings, get_settings

from tp_daemon.dns import system_nameservers
from tp_daemon.errors import DaemonError
from tp_daemon.root.network import Network, remove_tables
from tp_daemon.root.relay import Relay
from tp_daemon.root.requests import RequestError, parse_route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid {self.uid}"

    def __str__(self) -> str:
        return f"{self.user} (uid {self.uid}, pid {self.pid})"


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def in_group(uid: int, group: str) -> bool:
    """Root, or a member of `group` (primary or supplementary)."""
    if uid == 0:
        return True
    try:
        gid = grp.getgrnam(group).gr_gid
        user = pwd.getpwuid(uid)
    except KeyError:
        return False
    return gid in os.getgrouplist(user.pw_name, user.pw_gid)


@dataclass
class Lease:
    peer: Peer
    context: str
    ranges: list[str]
    relay: Relay
    writer: asyncio.StreamWriter


class RootDaemon:
    def __init__(self, group: str, settings: RootDaemonSettings, mark: int) -> None:
        self.group = group
        self.settings = settings
        self.mark = mark
        self.network = Network(settings.tun_name, settings.nft_prefix, mark)
        self.leases: dict[int, Lease] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self, path: Path) -> None:
        removed = await remove_tables(self.settings.nft_prefix)
        if removed:
            log.warning("removed tables left by a root daemon that died: %s", removed)
        await asyncio.to_thread(_fresh_socket_dir, path)
        self._server = await asyncio.start_unix_server(
            self._serve, str(path), limit=self.settings.request_limit)
        os.chown(path, 0, grp.getgrnam(self.group).gr_gid)
        os.chmod(path, 0o660)
        log.info("root daemon serving on %s for group %s (pid %d)", path, self.group,
                 os.getpid())

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Ending each lease's connection lets its handler release it (no cancellation:
        # asyncio's stream callback reports a cancelled handler as an error).
        for lease in list(self.leases.values()):
            lease.writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=self.settings.request_timeout)
        for lease in list(self.leases.values()):
            await lease.relay.close()
        self.leases.clear()
        await self.network.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_of(writer.get_extra_info("socket"))
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            if not in_group(peer.uid, self.group):
                log.warning("refused %s: not in group %s", peer, self.group)
                await _send(writer, {"error": f"user {peer.user} is not in group "
                                     f"{self.group}: `sudo usermod -aG {self.group} "
                                     f"{peer.user}`, then log in again"})
                await _linger(reader, writer, self.settings.refusal_linger)
                return
            try:
                line = await asyncio.wait_for(reader.readline(),
                                              self.settings.request_timeout)
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, asyncio.LimitOverrunError, TimeoutError) as e:
                log.warning("refused %s: unreadable request (%s)", peer, e)
                await _send(writer, {"error": "the request is not one JSON object per line"})
                return
            op = message.get("op")
            if op == "status":
                await _send(writer, {"ok": True, "group": self.group, "leases": [
                    {"user": lease.peer.user, "uid": uid, "pid": lease.peer.pid,
                     "context": lease.context, "ranges": lease.ranges}
                    for uid, lease in self.leases.items()]})
            elif op == "route":
                await self._route(peer, message, reader, writer)
            else:
                await _send(writer, {"error": f"unknown op {op!r} (route, status)"})
        except (ConnectionError, OSError) as e:
            log.info("%s: connection lost: %s", peer, e)
        finally:
            writer.close()

    async def _route(self, peer: Peer, message: dict[str, Any],
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = parse_route(message, max_ranges=self.settings.max_ranges,
                                  min_prefix=self.settings.min_prefix)
            if peer.uid in self.leases:
                other = self.leases[peer.uid]
                raise RequestError(f"{peer.user} already has routes (pid {other.peer.pid}, "
                                   f"context {other.context}); `tp quit` there first")
        except RequestError as e:
            log.warning("refused %s: %s", peer, e)
            await _send(writer, {"error": str(e)})
            return
        ranges = [str(n) for n in request.ranges]
        log.info("%s asks for routes %s (context %s, proxy :%d, resolver :%d)", peer,
                 ranges, request.context, request.proxy_port, request.dns_port)
        relay = Relay(request.dns_port, system_nameservers(),
                      timeout=self.settings.relay_timeout, mark=self.mark)
        try:
            relay_port = await relay.start()
            await self.network.add(peer.uid, request.ranges, proxy_port=request.proxy_port,
                                   nameservers=relay.upstreams, dns_port=relay_port)
        except Exception as e:
            await relay.close()
            log.warning("routes for %s failed: %s", peer, e,
                        exc_info=not isinstance(e, DaemonError))
            await _send(writer, {"error": str(e)})
            return
        self.leases[peer.uid] = Lease(peer, request.context, ranges, relay, writer)
        try:
            await _send(writer, {"ok": True, "tun": self.settings.tun_name,
                                 "nameservers": relay.upstreams})
            while await reader.read(4096):  # held until EOF: the caller quit or died
                pass
        finally:
            log.info("%s released routes %s", peer, ranges)
            self.leases.pop(peer.uid, None)
            await relay.close()
            await self.network.remove(peer.uid)


def _fresh_socket_dir(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    path.unlink(missing_ok=True)  # a socket left by a root daemon that died


async def _send(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
    writer.write(json.dumps(reply).encode() + b"\n")
    await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  seconds: float) -> None:
    """Half-close after a refusal and discard what the caller still sends, until it
    closes or `seconds` passed (`root_daemon.refusal_linger`)."""

    async def discard() -> None:
        while await reader.read(4096):
            pass

    writer.write_eof()
    await wait_at_most(discard(), seconds)


async def serve(path: Path, group: str, stop: asyncio.Event) -> None:
    """Serve until `stop`; every lease is released on the way out."""
    settings = get_settings()
    daemon = RootDaemon(group, settings.root_daemon, settings.connect.socket_mark)
    await daemon.start(path)
    try:
        await stop.wait()
    finally:
        await daemon.close()
        await asyncio.to_thread(path.unlink, missing_ok=True)
        log.info("root daemon stopped")

