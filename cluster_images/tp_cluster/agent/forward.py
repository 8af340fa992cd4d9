"""Listeners on the taken-over ports, and the decision for each accepted connection.

- a global intercept on the port: the connection goes through a Tunnel to its client
  (a copy of the bytes is parsed for capture, best effort);
- personal intercepts on the port: `http.HttpRouter` decides per request;
- nothing: spliced to the app on 127.0.0.1:<app port> without parsing (the fast path).

The decision is taken when the connection is accepted. Requests on parsed connections
always see the current intercepts. Unparsed keep-alive connections are retired when
their port gets intercepts: closed once quiet after a response
(`Settings.intercept.agent_retire_idle`), so that pooled callers reconnect and get routed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tp_cluster.agent import TunnelFailed
from tp_cluster.agent.capture import Exchange
from tp_cluster.agent.http import Context, HttpRouter, Sniffer, error_response_bytes
from tp_cluster.agent.intercepts import Intercept, Registry
from tp_cluster.agent.pipes import splice_streams, splice_tunnel

log = logging.getLogger(__name__)

_HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ",
                 b"CONNECT ", b"TRACE ")


class _Unparsed:
    """Activity of one fast-path connection, so that it can be retired between exchanges."""

    def __init__(self, a: asyncio.StreamWriter, b: asyncio.StreamWriter, idle: float) -> None:
        self.writers = (a, b)
        self.idle = idle
        self.last_up = 0.0
        self.last_down = 0.0
        self.retiring = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def up(self, _data: bytes) -> None:
        self.last_up = self._loop.time()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def down(self, _data: bytes) -> None:
        self.last_down = self._loop.time()
        if self.retiring:
            self._arm()

    def retire(self) -> None:
        self.retiring = True
        self._arm()

    def _arm(self) -> None:
        # idle = a response came after the last request bytes (never-used connections wait)
        if self.last_up and self.last_down >= self.last_up:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_later(self.idle, self._close_if_quiet,
                                                self.last_up, self.last_down)

    def _close_if_quiet(self, up: float, down: float) -> None:
        self._timer = None
        if (self.last_up, self.last_down) == (up, down):
            for writer in self.writers:
                writer.close()


class Listener:
    """One taken-over port."""

    def __init__(self, ctx: Context, registry: Registry, host: str, sniff_timeout: float,
                 retire_idle: float) -> None:
        self.ctx = ctx
        self.registry = registry
        self.host = host
        self.sniff_timeout = sniff_timeout
        self.retire_idle = retire_idle
        self.server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._unparsed: set[_Unparsed] = set()
        self._intercepted = False
        registry.on_change.append(self._intercepts_changed)

    def _intercepts_changed(self) -> None:
        intercepted = bool(self.registry.on_port(self.ctx.port))
        if intercepted and not self._intercepted:
            for conn in self._unparsed:
                conn.retire()
        self._intercepted = intercepted

    async def start(self) -> int:
        self.server = await asyncio.start_server(
            self._accepted, self.host, self.ctx.port, limit=self.ctx.chunk,
            reuse_address=True)
        port: int = self.server.sockets[0].getsockname()[1]
        log.info("serving port %d -> app port %d", port, self.ctx.app_port)
        return port

    async def stop(self, grace: float) -> None:
        """Stop accepting; give open connections `grace` seconds, then cut them."""
        if self.server is not None:
            self.server.close()
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername") or ("", 0)
        source = (str(peer[0]), int(peer[1]))
        task.set_name(f"conn {source[0]}:{source[1]}->{self.ctx.port}")
        self._connections.add(task)
        try:
            glob = self.registry.global_on(self.ctx.port)
            if glob is not None:
                await self._global(reader, writer, glob, source)
            elif self.registry.on_port(self.ctx.port):
                await HttpRouter(self.ctx, reader, writer, source).serve()
            else:
                await self._to_app(reader, writer)
        except asyncio.CancelledError:
            # only `stop` cancels; end quietly (asyncio's server logs re-raised cancellations)
            writer.transport.abort()
        except Exception:
            log.exception("connection from %s:%d failed", *source)
            writer.transport.abort()
        finally:
            self._connections.discard(task)

    async def _to_app(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            app = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.ctx.app_port, limit=self.ctx.chunk),
                self.ctx.app_dial_timeout)
        except (OSError, TimeoutError) as exc:
            # as if the app itself refused: the caller sees a reset, not a half-open socket
            log.debug("app port %d: %s", self.ctx.app_port, exc)
            writer.transport.abort()
            return
        conn = _Unparsed(writer, app[1], self.retire_idle)
        if self._intercepted:
            conn.retire()  # intercepts arrived while this connection was being set up
        self._unparsed.add(conn)
        try:
            await splice_streams((reader, writer), app, self.ctx.chunk,
                                 f"app-{self.ctx.app_port}", tap_up=conn.up, tap_down=conn.down)
        finally:
            self._unparsed.discard(conn)

    async def _global(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      intercept: Intercept, source: tuple[str, int]) -> None:
        try:
            tunnel = await self.ctx.open_tunnel(intercept, source)
        except TunnelFailed as exc:
            await self._refuse(reader, writer, intercept, source, str(exc))
            return
        sniffer = Sniffer(self.ctx, intercept, source)
        try:
            await splice_tunnel(reader, writer, tunnel, self.ctx.chunk,
                                f"global {intercept.name}", tap_up=sniffer.feed_request,
                                tap_down=sniffer.feed_response)
        finally:
            sniffer.close()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      intercept: Intercept, source: tuple[str, int], reason: str) -> None:
        """A failed global intercept: 502 with the reason if the caller speaks HTTP."""
        data = b""
        with contextlib.suppress(TimeoutError, OSError):
            data = await asyncio.wait_for(reader.read(self.ctx.chunk), self.sniff_timeout)
        if data.startswith(_HTTP_METHODS):
            import h11

            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.ctx.max_head)
            conn.receive_data(data)
            with contextlib.suppress(h11.ProtocolError):
                event = conn.next_event()
                if isinstance(event, h11.Request):
                    exchange = Exchange(
                        self.ctx.report, pod=self.ctx.pod, workload=self.ctx.workload,
                        namespace=self.ctx.namespace, port=self.ctx.port,
                        source=f"{source[0]}:{source[1]}", request=event,
                        intercept=intercept, body_limit=self.ctx.body_limit,
                        redact=self.ctx.redact)
                    exchange.record.status = 502
                    exchange.record.reason = "Bad Gateway"
                    exchange.finish(error=reason)
            with contextlib.suppress(OSError):
                writer.write(error_response_bytes(reason))
                await writer.drain()
            writer.close()
        else:
            writer.transport.abort()
