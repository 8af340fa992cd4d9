"""A pod port-forward over the API server's WebSocket (`v4.channel.k8s.io`), asyncio.

`PortForwardStream` is one TCP connection to a pod port: a WebSocket to
``/api/v1/namespaces/NS/pods/POD/portforward?ports=P``. Every binary frame starts with
a channel byte: 0 data, 1 error (for the first port); the server's first frame on each
channel is the port number (2 bytes, little-endian) and is skipped.

`PortForwarder` is a local listener on 127.0.0.1:0 that bridges every accepted
connection to a new `PortForwardStream`; the gRPC channel to the manager targets it, so
gRPC's own connection management runs over the port-forward unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp

from tp_daemon.errors import ClusterUnreachable
from tp_daemon.streams import READ_BUFFER, close_server, splice

log = logging.getLogger(__name__)

SUBPROTOCOL = "v4.channel.k8s.io"
DATA, ERROR = 0, 1


@dataclass(frozen=True)
class PodPort:
    """A port of one pod."""

    namespace: str
    pod: str
    port: int


@dataclass(frozen=True)
class ApiEndpoint:
    """How to reach the API server: base URL, TLS context, auth headers."""

    server: str
    ssl_context: ssl.SSLContext | bool
    headers: dict[str, str] = field(default_factory=dict)


class PortForwardStream:
    """One port-forward WebSocket used as a `Stream` (no half-close in v4: close ends it)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._skip_header = {DATA: True, ERROR: True}
        self.error = ""

    SUBPROTOCOL = SUBPROTOCOL

    @staticmethod
    def url(endpoint: ApiEndpoint, target: PodPort) -> str:
        return (f"{endpoint.server.rstrip('/')}/api/v1/namespaces/{quote(target.namespace)}"
                f"/pods/{quote(target.pod)}/portforward?ports={target.port}")

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, endpoint: ApiEndpoint,
                   target: PodPort, *, dial_timeout: float, heartbeat: float | None = None
                   ) -> PortForwardStream:
        namespace, pod = target.namespace, target.pod
        try:
            ws = await session.ws_connect(
                cls.url(endpoint, target), protocols=(SUBPROTOCOL,), headers=endpoint.headers,
                ssl=endpoint.ssl_context, timeout=aiohttp.ClientWSTimeout(ws_close=dial_timeout),
                max_msg_size=0, autoping=True, compress=0, heartbeat=heartbeat,
            )
        except aiohttp.WSServerHandshakeError as e:
            raise ClusterUnreachable(
                f"port-forward to pod {namespace}/{pod} refused ({e.status} {e.message}); "
                "check that the pod is running") from e
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise ClusterUnreachable(
                f"cannot open a port-forward to pod {namespace}/{pod}: {e}; "
                "check that the API server is reachable") from e
        return cls(ws)

    async def recv(self) -> bytes | memoryview:
        while True:
            msg = await self._ws.receive()
            if msg.type != aiohttp.WSMsgType.BINARY:
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return b""
                continue
            data: bytes = msg.data
            if not data:
                continue
            # A view, not a slice: frames are up to the relay's read size, copied enough.
            channel, payload = data[0], memoryview(data)[1:]
            if self._skip_header.get(channel):
                self._skip_header[channel] = False
                payload = payload[2:]
            if channel == DATA:
                if payload:
                    return payload
            elif channel == ERROR and payload:
                self.error += bytes(payload).decode(errors="replace")
                log.warning("port-forward error: %s", self.error)
                return b""

    async def send(self, data: bytes) -> None:
        await self._ws.send_bytes(b"\x00" + data)

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def close_write(self) -> None:
        # v4 has no half-close; the peer (gRPC, HTTP) ends the connection itself.
        return

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


class PortForwarder:
    """127.0.0.1:<port> that forwards each connection to `pod:port` through the API server."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: ApiEndpoint,
                 target: PodPort, *, dial_timeout: float, heartbeat: float | None = None
                 ) -> None:
        self._session, self._endpoint, self.target = session, endpoint, target
        self.endpoint = endpoint  # for pod routes (`tp_daemon.podroute`)
        self._timeout, self._heartbeat = dial_timeout, heartbeat
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._spare: PortForwardStream | None = None  # the trial stream, for the first caller
        self.local_port = 0
        self.failures = 0
        """Connections that could not be forwarded (the session watches this to reconnect)."""

    async def start(self) -> int:
        """Listen on 127.0.0.1:0 and return the port (after one trial stream to fail early;
        the first connection gets it: one WebSocket handshake less before gRPC answers)."""
        self._spare = await self.open_stream()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0,
                                                  limit=READ_BUFFER)
        self.local_port = self._server.sockets[0].getsockname()[1]
        return self.local_port

    async def open_stream(self) -> PortForwardStream:
        async with asyncio.timeout(self._timeout):
            return await PortForwardStream.open(self._session, self._endpoint, self.target,
                                                dial_timeout=self._timeout,
                                                heartbeat=self._heartbeat)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            try:
                stream, self._spare = self._spare, None
                if stream is None or stream.closed:
                    stream = await self.open_stream()
            except ClusterUnreachable as e:
                self.failures += 1
                log.warning("%s", e)
                writer.close()
                return
            await splice(reader, writer, stream, f"pf-{self.target.pod}")
        except asyncio.CancelledError:
            pass  # close() ends connections; a server callback has nobody to re-raise to
        except Exception:
            log.exception("port-forward connection to %s failed", self.target.pod)
        finally:
            self._conns.discard(task)

    async def close(self) -> None:
        """Stop listening and end every forwarded connection."""
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare.close()
        await close_server(self._server, self._conns)
