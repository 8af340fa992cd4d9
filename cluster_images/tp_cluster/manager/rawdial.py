"""Raw dials: direct-connect tunnels as plain TLS streams (manager.proto `RawDialHeader`).

On the direct-connect path a daemon opens one TLS connection per tunneled TCP connection
to `manifests.RAW_DIAL_PORT` (the same certificate as the gRPC TLS port), so the bytes
pay TLS records only, not gRPC and protobuf framing per chunk. There is no bearer token
on these connections: the header carries the session id and the session's
`dial_secret`, which only its owner received (in the ArriveAsClient answer, over its
TokenReview-checked call). Nothing is dialed unless the session is alive, is a client's
and the secret matches (compared in constant time); the answer says why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import socket
import ssl

from tp_protocol import manager_pb2 as pb
from tp_protocol import rawtls
from tp_protocol.aio import spawn
from tp_protocol.settings import ConnectSettings

from tp_cluster.errors import ClusterError
from tp_cluster.manager.state import State
from tp_cluster.manager.tls import Identity
from tp_cluster.manager.tunnel import _dial_error

log = logging.getLogger(__name__)


class CannotServeRawDials(ClusterError):
    """The raw dial port cannot open (direct connect then tunnels through gRPC)."""


def _refusal(code: str, message: str) -> pb.RawDialAnswer:
    return pb.RawDialAnswer(ok=False, code=code, message=message)


class RawDials:
    """The raw dial listener: `start`, then `stop`."""

    def __init__(self, state: State, identity: Identity, listen: str,
                 settings: ConnectSettings) -> None:
        self.state = state
        self.settings = settings
        self.listen = listen
        self.context = rawtls.server_context(identity.cert + b"\n" + identity.key)
        self.port = 0
        self.dials = 0
        """Connections dialed (for logs and tests)."""
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        host, _, port = self.listen.rpartition(":")
        host = host.strip("[]") or "::"
        try:
            sock = socket.create_server((host, int(port)), family=socket.AF_INET6
                                        if ":" in host else socket.AF_INET,
                                        backlog=256, dualstack_ipv6=":" in host)
        except (OSError, ValueError) as exc:
            raise CannotServeRawDials(f"cannot listen on {self.listen} for raw dials: {exc}"
                                      ) from exc
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._accepting = spawn(self._accept(), "raw-dial-accept", log)
        log.info("raw dials on port %d", self.port)
        return self.port

    async def stop(self) -> None:
        tasks = [t for t in (self._accepting, *self._conns) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()

    async def _accept(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(self._sock)
            except OSError as exc:  # e.g. out of file descriptors: keep serving
                log.warning("raw dial accept failed: %s", exc)
                await asyncio.sleep(self.settings.raw_dial_accept_backoff)
                continue
            task = spawn(self._serve(conn), f"raw-dial {peer[0]}:{peer[1]}", log)
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

    async def _serve(self, conn: socket.socket) -> None:
        label = "raw dial from {}:{}".format(*conn.getpeername()[:2])
        stream = None
        try:
            async with asyncio.timeout(self.settings.raw_dial_header_timeout):
                # the stream owns `conn` from here (and closes it when this fails)
                stream = await rawtls.TlsStream.accept(conn, self.context,
                                                       self.settings.raw_dial_chunk, label)
                header = await rawtls.read_message(stream, pb.RawDialHeader, magic=True)
        except (TimeoutError, OSError, ssl.SSLError, ValueError,
                asyncio.IncompleteReadError) as exc:
            log.debug("%s: no header: %s", label, exc)
            if stream is not None:
                stream.abort()
            return
        try:
            await self._dial(stream, header, label)
        finally:
            await stream.close()

    def _check(self, header: pb.RawDialHeader) -> pb.RawDialAnswer | None:
        """Why this header may not dial (None: it may)."""
        session = self.state.sessions.get(header.session_id)
        # every refusal reads the same: no hint which of session and secret was wrong
        if (session is None or session.kind != "client"
                or not hmac.compare_digest(session.dial_secret, header.dial_secret)):
            return _refusal("no_session", f"unknown or expired session "
                                          f"{header.session_id!r}, or not its dial secret: "
                                          "arrive again")
        self.state.get(header.session_id, "client")  # a sign of life, as any call
        try:
            ipaddress.ip_address(header.ip)
        except ValueError:
            return _refusal("bad_request", f"cannot dial {header.ip!r}: not an IP address")
        if not 0 < header.port < 65536:
            return _refusal("bad_request", f"cannot dial port {header.port}: not 1-65535")
        return None

    async def _dial(self, stream: rawtls.TlsStream, header: pb.RawDialHeader,
                    label: str) -> None:
        refused = self._check(header)
        if refused is not None:
            log.info("%s refused: %s", label, refused.message)
            with contextlib.suppress(OSError):
                await rawtls.send_message(stream, refused)
                await stream.close_write()
            return
        loop = asyncio.get_running_loop()
        ip = ipaddress.ip_address(header.ip)
        where = f"[{ip}]:{header.port}" if ip.version == 6 else f"{ip}:{header.port}"
        tcp = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET)
        tcp.setblocking(False)
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            async with asyncio.timeout(self.settings.manager_tunnel_dial_timeout):
                await loop.sock_connect(tcp, (str(ip), header.port))
        except (OSError, TimeoutError) as exc:
            tcp.close()
            error = _dial_error(exc, where).error
            with contextlib.suppress(OSError):
                await rawtls.send_message(stream, _refusal(error.code, error.message))
                await stream.close_write()
            return
        self.dials += 1
        try:
            await rawtls.send_message(stream, pb.RawDialAnswer(ok=True, remote_address=where))
        except OSError as exc:
            log.debug("%s to %s ended: %s", label, where, exc)
            stream.abort()
            tcp.close()
            return
        try:
            # each side's EOF is a half-close on the other; a break resets both
            await rawtls.splice_tcp(stream, tcp, self.settings.raw_dial_chunk, where)
        except OSError as exc:
            log.debug("%s to %s ended: %s", label, where, exc)
            stream.abort()
