"""Pod port-forwards through the API server (`v4.channel.k8s.io`, `tp_daemon.podws`).

`open_stream` opens one: a WebSocket to
``/api/v1/namespaces/NS/pods/POD/portforward?ports=P`` that carries one TCP connection to
the pod's port (every binary frame starts with a channel byte: 0 data, 1 error; the
server's first frame on each channel is the port number and is skipped), or raises
`ClusterUnreachable` saying why not.

`PortForwarder` is a local listener on 127.0.0.1:0 that bridges every accepted
connection to a new port-forward; the gRPC channel to the manager targets it, so
gRPC's own connection management runs over the port-forward unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from urllib.parse import quote

from tp_daemon.errors import ClusterUnreachable
from tp_daemon.podws import HandshakeError, PodSocket
from tp_daemon.streams import READ_BUFFER, close_server, splice

log = logging.getLogger(__name__)


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

    def portforward_url(self, target: PodPort) -> str:
        return (f"{self.server.rstrip('/')}/api/v1/namespaces/{quote(target.namespace)}"
                f"/pods/{quote(target.pod)}/portforward?ports={target.port}")


async def open_stream(endpoint: ApiEndpoint, target: PodPort, *, dial_timeout: float,
                      heartbeat: float | None = None) -> PodSocket:
    """A port-forward to `target`, open within `dial_timeout`; `ClusterUnreachable` says
    why not (the pod refused, or the API server did not answer)."""
    where = f"{target.namespace}/{target.pod}"
    try:
        async with asyncio.timeout(dial_timeout):
            return await PodSocket.open(endpoint, target, heartbeat=heartbeat)
    except HandshakeError as e:
        raise ClusterUnreachable(f"port-forward to pod {where} refused ({e.status} "
                                 f"{e.message}); check that the pod is running") from e
    except (OSError, TimeoutError) as e:   # ssl.SSLError and ConnectionError are OSErrors
        raise ClusterUnreachable(f"cannot open a port-forward to pod {where}: "
                                 f"{e or 'no answer in time'}; check that the API server "
                                 "is reachable") from e


class PortForwarder:
    """127.0.0.1:<port> that forwards each connection to `pod:port` through the API server."""

    def __init__(self, endpoint: ApiEndpoint, target: PodPort, *, dial_timeout: float,
                 heartbeat: float | None = None) -> None:
        self.endpoint, self.target = endpoint, target  # endpoint: pod routes use it too
        self._timeout, self._heartbeat = dial_timeout, heartbeat
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._spare: PodSocket | None = None  # the trial stream, for the first caller
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

    async def open_stream(self) -> PodSocket:
        return await open_stream(self.endpoint, self.target, dial_timeout=self._timeout,
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
            if stream.error:
                log.warning("port-forward error: %s", stream.error)
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
