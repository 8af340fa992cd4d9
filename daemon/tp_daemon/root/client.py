"""The user daemon's side of the root daemon: is it usable, and a lease on routes."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import grp
import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from tp_protocol.aio import spawn

from tp_daemon.errors import RoutingError
from tp_daemon.root import paths

log = logging.getLogger(__name__)


def unavailable_reason() -> str:
    """"" when this process may use the root daemon; else one line that says why not."""
    path = paths.socket_path()
    if not path.exists():
        return ("no root daemon service on this workstation (`sudo tp daemon install` "
                "gives full routing and DNS)")
    if not os.access(path, os.R_OK | os.W_OK):
        try:
            group = grp.getgrgid(path.stat().st_gid).gr_name
        except (KeyError, OSError):
            group = paths.DEFAULT_GROUP
        user = getpass.getuser()
        return (f"user {user} is not in group {group}, which may use the root daemon "
                f"({path}): `sudo usermod -aG {group} {user}`, then log in again")
    return ""


def call(message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request, one reply (status); OSError when the socket does not answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(paths.socket_path()))
        s.sendall(json.dumps(message).encode() + b"\n")
        with s.makefile("rb") as f:
            line = f.readline()
    if not line:
        raise ConnectionError("the root daemon closed the connection without a reply")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ConnectionError("the root daemon's reply is not a JSON object")
    return reply


class RootLease:
    """Routes and DNS held for this user while the connection stays open."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 reply: dict[str, Any]) -> None:
        self._reader, self._writer = reader, writer
        self.tun = str(reply.get("tun", ""))
        self.nameservers = [str(n) for n in reply.get("nameservers", [])]
        self._watch: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, ranges: Sequence[str], *, proxy_port: int, dns_port: int,
                   context: str, wait: float) -> RootLease:
        path = paths.socket_path()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path)), wait)
        except (OSError, TimeoutError) as e:
            raise RoutingError(f"the root daemon at {path} does not answer ({e}); "
                               "`sudo tp daemon status` shows why") from e
        try:
            try:
                writer.write(json.dumps({"op": "route", "ranges": [r for r in ranges if r],
                                         "proxy_port": proxy_port, "dns_port": dns_port,
                                         "context": context}).encode() + b"\n")
                await writer.drain()
            except OSError as e:
                # a caller it refuses (group check) gets the reason before its request is
                # read, and the connection closed: the reason is what counts, if it came
                log.info("the root daemon closed before reading the request: %s", e)
            line = await asyncio.wait_for(reader.readline(), wait)
            reply = json.loads(line) if line else {"error": "it closed the connection"}
        except (OSError, TimeoutError, ValueError) as e:
            writer.close()
            raise RoutingError(f"the root daemon did not set up routes ({e or 'timed out'})"
                               "; `sudo tp daemon status` shows why") from e
        if not isinstance(reply, dict) or "error" in reply:
            writer.close()
            detail = reply.get("error") if isinstance(reply, dict) else reply
            raise RoutingError(f"the root daemon refused the routes: {detail}")
        return cls(reader, writer, reply)

    def watch(self, lost: Callable[[], None]) -> None:
        """Call `lost` when the root daemon goes away (its routes went with it)."""
        async def wait_eof() -> None:
            with contextlib.suppress(OSError):
                while await self._reader.read(4096):
                    pass
            lost()

        self._watch = spawn(wait_eof(), "tp-root-lease", log)

    async def close(self) -> None:
        """Release the routes (the root daemon removes them on EOF)."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
