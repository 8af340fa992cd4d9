"""Per-request HTTP/1.1 routing for ports with personal intercepts (h11 on both sides;
llhttp takes the plain cases first: `fastrequest`, `fastresponse`).

`HttpRouter.serve` reads requests from one downstream (keep-alive) connection. Each
request is decided on its own: headers matching all KEY=REGEX pairs of an intercept
(or a global intercept on the port) -> re-serialized into a fresh `Tunnel` to that
intercept's client; otherwise -> the app on 127.0.0.1:<app port>, over one upstream
keep-alive connection kept for this downstream connection (byte for byte when nothing
must change: `rawpath`). Responses are relayed back
with the downstream connection kept alive. A side that fails before the response
head answers 502 with a one-line reason; every exchange becomes a traffic row.

`Sniffer` parses a copy of a global intercept's bytes (best effort) to capture rows.

Upgrades (`Upgrade:` requests, e.g. WebSocket) are handed off: the request head goes
to the chosen side and the connection is spliced as raw bytes from then on (no rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import h11
from tp_protocol.aio import spawn
from tp_protocol.replay import CONNECTION_HEADERS

from tp_cluster.agent import InterceptGone, TunnelFailed, fastrequest, fastresponse
from tp_cluster.agent.capture import Exchange
from tp_cluster.agent.intercepts import Intercept
from tp_cluster.agent.mirror import MirrorCopy, Mirrors
from tp_cluster.agent.pipes import splice_streams, splice_tunnel
from tp_cluster.agent.rawpath import (
    END,
    Raw,
    fresh_server,
    probe,
    relay_response,
    request_is_raw,
    send_request,
    unread,
)
from tp_cluster.agent.tunnel import AgentTunnel
from tp_cluster.errors import ClusterError

log = logging.getLogger(__name__)

_finishing: set[asyncio.Task[None]] = set()

_HOP_BY_HOP = frozenset(h.encode() for h in CONNECTION_HEADERS)
_NOT_FORWARDED = {b"expect"}  # the agent answers 100-continue itself


class UpstreamFailed(ClusterError):
    """The chosen side (app or tunnel) failed; the message is the 502's reason."""


@dataclass
class Context:
    """What a router needs from the agent (kept small so tests can build one)."""

    port: int
    app_port: int
    workload: str
    namespace: str
    pod: str
    chunk: int
    max_head: int
    body_limit: int
    app_dial_timeout: float
    tunnel_close_timeout: float
    route: Callable[..., Intercept | None]
    open_tunnel: Callable[[Intercept, tuple[str, int]], Awaitable[AgentTunnel]]
    report: Callable[[Any], None]
    redact: frozenset[str] = frozenset()
    """Lower-case header names recorded as REDACTED (Settings.intercept.capture_redact_headers)."""
    port_name: str = ""
    """The service port's name, for traffic rows."""
    mirrors: Mirrors | None = None
    """The agent's mirrors (`tp wiretap`); None: copies are not made."""
    mirror_body_limit: int = 0
    mirror_route: Callable[..., list[Intercept]] | None = None
    """(port, headers, method, target) -> the mirrors that want a copy."""
    open_request: Callable[[Intercept, tuple[str, int]], Awaitable[Any]] | None = None
    """Opens a matched request's connection sent with its dial (the Relay); else open_tunnel."""


class _Side:
    """One upstream: bytes in/out plus an h11 client connection."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]],
                 recv: Callable[[], Awaitable[bytes]], max_head: int) -> None:
        self.send = send
        self.recv = recv
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)


class _App(_Side):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 chunk: int, max_head: int) -> None:
        async def send(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        async def recv() -> bytes:
            return await reader.read(chunk)

        super().__init__(send, recv, max_head)
        self.reader = reader
        self.writer = writer

    def reusable(self) -> bool:
        return (self.conn.our_state is h11.IDLE and not self.reader.at_eof()
                and not self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()



async def _flush(send: Callable[[bytes], Awaitable[None]], out: list[bytes]) -> None:
    """Send what `out` collected as one write, and empty it."""
    data = b"".join(out)
    out.clear()
    if data:
        await send(data)


def _error_body(reason: str) -> bytes:
    return (reason.replace("\n", " ") + "\n").encode()


def error_response_bytes(reason: str) -> bytes:
    """A complete `502 Bad Gateway` (connection: close) for raw connections."""
    body = _error_body(reason)
    return (b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
            + body)


class HttpRouter:
    def __init__(self, ctx: Context, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, source: tuple[str, int]) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.source = source
        self.down = h11.Connection(h11.SERVER, max_incomplete_event_size=ctx.max_head)
        self.app: _App | None = None
        # Relay connections kept between matched requests of this keep-alive connection,
        # per intercept id (so at most one per intercept), so the local server sees one
        # keep-alive connection too; unmatched requests in between leave them open.
        self.kept: dict[str, tuple[Any, _Side]] = {}
        self.raw = Raw()  # what `down` was fed and has not consumed (rawpath)
        self.raw_request: Any = None  # the request that goes to the app byte for byte
        self.raw_out = False  # the app's response head went out byte for byte
        self.fast: bytes | None = None  # a request `down` has not seen (fastrequest)
        self.plain: bytes | None = None  # that request's method when its answer may pass as read

    async def _next_down(self) -> Any:
        while True:
            event = self.down.next_event()
            if event is h11.NEED_DATA:
                self.raw.feed(self.down, await self.reader.read(self.ctx.chunk))
                continue
            return event

    async def _read_fast(self) -> Any:
        """The next request when `fastrequest` takes the next read whole, else None (the
        read went to h11)."""
        self.fast = None
        if self.down.their_state is not h11.IDLE or self.raw.buffer or unread(self.down):
            return None
        data = await self.reader.read(self.ctx.chunk)
        request = fastrequest.parse(data, self.ctx.max_head) if data else None
        if request is None:
            self.raw.feed(self.down, data)
        else:
            self.fast = data
        return request

    def catch_up(self, whole: bool = False) -> Any:
        """h11's event for the request `fastrequest` took (then up to its end if `whole`)."""
        data, self.fast = self.fast, None
        assert data is not None
        self.raw.feed(self.down, data)
        request = self.down.next_event()
        if whole:
            self.down.next_event()  # its EndOfMessage: the request was bodiless
        return request

    async def _write_down(self, event: Any) -> None:
        data = self.down.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                self.raw.drop(self.down)
                event = await self._read_fast() or await self._next_down()
                if not isinstance(event, (h11.Request, fastrequest.Request)):
                    return  # ConnectionClosed (or PAUSED after a protocol switch)
                if not await self._one(event):
                    return
                if self.down.our_state is h11.IDLE:
                    continue  # rawpath answered and gave us a fresh parser
                if self.down.our_state is not h11.DONE or self.down.their_state is not h11.DONE:
                    return
                self.down.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if self.down.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    await self._write_down(h11.Response(
                        status_code=exc.error_status_hint,
                        headers=[(b"content-type", b"text/plain"), (b"connection", b"close")]))
                    await self._write_down(h11.Data(data=_error_body(f"bad request: {exc}")))
                    await self._write_down(h11.EndOfMessage())
        except (OSError, h11.LocalProtocolError) as exc:
            log.debug("connection from %s:%d ended: %s", *self.source, exc)
        finally:
            if self.app is not None:
                self.app.close()
            for tunnel, _ in self.kept.values():
                self._finish(tunnel)
            self.kept.clear()
            self.writer.close()

    def _finish(self, tunnel: Any) -> None:
        finishing = spawn(tunnel.finish(self.ctx.tunnel_close_timeout),
                          f"tunnel-finish {tunnel.label}", log)
        # the loop holds tasks weakly: keep this fire-and-forget one until done
        _finishing.add(finishing)
        finishing.add_done_callback(_finishing.discard)

    # --- one exchange -------------------------------------------------------------------

    async def _one(self, request: Any) -> bool:
        """Relay one request/response; False when the downstream connection must end."""
        intercept = self.ctx.route(self.ctx.port, request.headers, request.method,
                                   request.target)
        if self.fast is None and any(name == b"upgrade" for name, _ in request.headers):
            await self._hand_off(request, intercept)
            return False
        exchange = Exchange(
            self.ctx.report, pod=self.ctx.pod, workload=self.ctx.workload,
            namespace=self.ctx.namespace, port=self.ctx.port,
            source=f"{self.source[0]}:{self.source[1]}", request=request,
            intercept=intercept, body_limit=self.ctx.body_limit,
            redact=self.ctx.redact, port_name=self.ctx.port_name)
        if intercept is None and self.ctx.mirror_route is not None:
            # copies only of what the app answers; matching is all the caller pays for
            mirrors = self.ctx.mirror_route(self.ctx.port, request.headers, request.method,
                                            request.target)
            if mirrors:
                exchange.copy = MirrorCopy(self.ctx, mirrors, request,
                                           self.ctx.mirror_body_limit)
        self.raw_out = False
        self.raw_request = (request if intercept is None and exchange.copy is None
                            and request_is_raw(request) else None)
        self.plain = None
        if self.fast is not None and self.raw_request is None:
            if intercept is not None and exchange.copy is None and request_is_raw(request):
                # to the local side as read, its answer back as read (fastresponse); h11
                # catches up only when something goes another way
                self.plain = request.method
            else:
                request = self.catch_up()  # every other path works on h11's view
        tunnel: Any = None  # an AgentTunnel or a relay.RelayConnection (same methods)
        responded = False
        stage = "open"
        try:
            try:
                if intercept is not None:
                    tunnel, side = await self._matched_side(intercept)
                else:
                    side = await self._app_side()
                stage = "send"
                sent_to = await self._send_request(request, side, exchange,
                                                   may_switch=intercept is not None)
                if sent_to is not side:  # the intercept was gone: the app has it
                    if tunnel is not None:
                        tunnel.abort()
                        tunnel = None
                    intercept, side = None, sent_to
                stage = "sent"
                responded = await self._relay_response(side, exchange)
            except InterceptGone as gone:
                # left while this request was on its way: its client never saw it
                if self.fast is not None:
                    request = self.catch_up(whole=True)  # the app gets it through h11
                body = exchange.request_body() if stage == "sent" else b""
                if stage == "send" or body is None or \
                        self.down.our_state is not h11.SEND_RESPONSE:
                    raise
                log.info("%s; the app answers the request", gone)
                if tunnel is not None:
                    tunnel.abort()
                    tunnel = None
                intercept = None
                side = await self._app_side()
                if stage == "open":
                    await self._send_request(request, side, exchange)
                else:
                    await self._resend(request, side, body)
                responded = await self._relay_response(side, exchange)
        except (TunnelFailed, UpstreamFailed, OSError, h11.ProtocolError) as exc:
            if self.fast is not None:
                self.catch_up()  # the 502 goes out through h11
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, h11.ProtocolError):
                reason = f"bad HTTP from {'the local side' if intercept else 'the app'}: {exc}"
            elif isinstance(exc, OSError) and intercept is None:
                reason = f"the app on localhost:{self.ctx.app_port} failed: {exc}"
            if self.app is not None and intercept is None:
                self.app.close()
                self.app = None
            if tunnel is not None:
                tunnel.abort()
                tunnel = None
            if self.down.our_state is not h11.SEND_RESPONSE or self.raw_out:
                exchange.finish(error=reason)
                return False  # the response head already went out: all we can do is reset
            exchange.record.status = 502
            exchange.record.reason = "Bad Gateway"
            exchange.finish(error=reason)
            return await self._bad_gateway(reason)
        finally:
            if tunnel is not None and intercept is not None:
                conn = side.conn
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                if (conn.our_state is h11.IDLE and conn.their_state is h11.IDLE
                        and getattr(tunnel, "reusable", lambda: False)()):
                    self.kept[intercept.id] = (tunnel, side)
                else:
                    self._finish(tunnel)
        exchange.finish()
        if intercept is None and self.app is not None:
            if self.app.conn.our_state is h11.DONE and self.app.conn.their_state is h11.DONE:
                self.app.conn.start_next_cycle()
            if not self.app.reusable():
                self.app.close()
                self.app = None
        return responded

    async def _matched_side(self, intercept: Intercept) -> tuple[Any, _Side]:
        """The kept connection to the intercept's client, else a new one."""
        kept = self.kept.pop(intercept.id, None)
        if kept is not None:
            if kept[0].reusable():
                return kept
            self._finish(kept[0])
        tunnel = await (self.ctx.open_request or self.ctx.open_tunnel)(intercept, self.source)
        return tunnel, _Side(tunnel.send, tunnel.recv, self.ctx.max_head)

    async def _app_side(self) -> _App:
        if self.app is not None and self.app.reusable():
            return self.app
        if self.app is not None:
            self.app.close()
            self.app = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.ctx.app_port, limit=self.ctx.chunk),
                self.ctx.app_dial_timeout)
        except TimeoutError:
            raise UpstreamFailed(f"the app did not accept on localhost:{self.ctx.app_port} "
                                 f"within {self.ctx.app_dial_timeout:g}s") from None
        except OSError as exc:
            raise UpstreamFailed(f"the app does not answer on localhost:{self.ctx.app_port}: "
                                 f"{exc.strerror or exc}") from None
        self.app = _App(reader, writer, self.ctx.chunk, self.ctx.max_head)
        return self.app

    def _upstream_headers(self, request: Any) -> list[tuple[bytes, bytes]]:
        headers = [(n, v) for n, v in request.headers.raw_items()
                   if n.lower() not in _NOT_FORWARDED]
        if not any(n.lower() == b"host" for n, _ in headers):
            headers.append((b"host", f"localhost:{self.ctx.app_port}".encode()))
        return headers

    async def _resend(self, request: Any, side: _Side, body: bytes) -> None:
        """The request again, whole, from what was read of it (its body was kept)."""
        out = [side.conn.send(h11.Request(method=request.method, target=request.target,
                                          headers=self._upstream_headers(request)))]
        if body:
            out.append(side.conn.send(h11.Data(data=body)))
        out.append(side.conn.send(h11.EndOfMessage()))
        await _flush(side.send, out)

    async def _send_request(self, request: Any, side: _Side, exchange: Exchange, *,
                            may_switch: bool = False) -> _Side:
        """Send the request to `side`; returns the side it went to: with `may_switch`, the
        app's when the intercept turned out to be gone before any of it reached a client
        (a leave the agent has not heard of yet)."""
        if self.raw_request is not None:
            return await send_request(self, side, exchange)  # type: ignore[no-any-return]
        if self.fast is not None:  # a plain matched request (`plain`): its bytes as read
            try:
                await side.send(self.fast)
                return side
            except InterceptGone as gone:
                if not may_switch:
                    raise
                log.info("%s; the app answers the request", gone)
                may_switch = False
                request = self.catch_up()
                side = await self._app_side()
        headers = self._upstream_headers(request)
        ended = False
        # Coalesced: what is parsed from one read goes out as one write (one tunnel
        # message), flushed before waiting for more, so a small request is one send.
        out = [side.conn.send(h11.Request(
            method=request.method, target=request.target, headers=headers))]

        async def flush() -> None:
            nonlocal side, may_switch
            try:
                await _flush(side.send, out)
            except InterceptGone as gone:
                body = exchange.request_body()
                if not may_switch or body is None:
                    raise
                log.info("%s; the app answers the request", gone)
                may_switch = False
                side = await self._app_side()
                out[:] = [side.conn.send(h11.Request(
                    method=request.method, target=request.target, headers=headers))]
                if body:
                    out.append(side.conn.send(h11.Data(data=body)))
                if ended:
                    out.append(side.conn.send(h11.EndOfMessage()))
                await _flush(side.send, out)

        if self.down.they_are_waiting_for_100_continue:
            await flush()
            await self._write_down(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            event = self.down.next_event()
            if event is h11.NEED_DATA:
                await flush()
                self.raw.drop(self.down)  # re-framed: the raw bytes are not needed
                self.raw.feed(self.down, await self.reader.read(self.ctx.chunk))
            elif isinstance(event, h11.Data):
                exchange.request_data(event.data)
                out.append(side.conn.send(h11.Data(data=event.data)))
            elif isinstance(event, h11.EndOfMessage):
                ended = True
                out.append(side.conn.send(h11.EndOfMessage(headers=event.headers)))
                await flush()
                return side
            else:
                raise UpstreamFailed("the caller closed the connection before the request "
                                     "body was complete")

    async def _send_down(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _relay_response(self, side: _Side, exchange: Exchange) -> bool:
        if self.raw_request is not None:
            return await relay_response(self, side, exchange)
        conn = side.conn
        if self.plain is not None and not unread(conn) and (
                self.fast is not None or conn.their_state is h11.SEND_RESPONSE):
            fast = await fastresponse.relay(self, side, exchange, self.plain)
            if not isinstance(fast, tuple):  # h11 saw neither answer: both start afresh
                if self.fast is None:
                    self.down = fresh_server(self.down, self.ctx.max_head)
                self.fast = None  # else `down` never saw the request: it is as it was
                side.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=self.ctx.max_head)
                return True
            if self.fast is not None:  # the request went as read: h11 learns of it now
                self.catch_up(whole=True)
                conn.send(probe(self.plain))
                conn.send(END)
            conn.receive_data(fast[0])
            if fast[1]:
                conn.receive_data(b"")
        out: list[bytes] = []  # coalesced as in _send_request: head and body in one write
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                await _flush(self._send_down, out)
                conn.receive_data(await side.recv())
                continue
            if isinstance(event, h11.InformationalResponse):
                continue  # 100-continue was answered by the agent already
            if isinstance(event, h11.Response):
                exchange.response_head(event)
                headers = [(n, v) for n, v in event.headers.raw_items()
                           if n.lower() not in _HOP_BY_HOP]
                out.append(self.down.send(h11.Response(
                    status_code=event.status_code, headers=headers, reason=event.reason)))
            elif isinstance(event, h11.Data):
                exchange.response_data(event.data)
                out.append(self.down.send(h11.Data(data=event.data)))
            elif isinstance(event, h11.EndOfMessage):
                out.append(self.down.send(h11.EndOfMessage(headers=event.headers)))
                await _flush(self._send_down, out)
                return True
            elif isinstance(event, h11.ConnectionClosed):
                raise UpstreamFailed("the other side closed the connection before responding")

    async def _bad_gateway(self, reason: str) -> bool:
        """502 with the reason; the connection stays usable if the request was read whole."""
        body = _error_body(reason)
        keep = await self._skip_body()
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", str(len(body)).encode()), (b"x-tp-error", b"1")]
        if not keep:
            headers.append((b"connection", b"close"))
        await self._write_down(h11.Response(status_code=502, headers=headers,
                                            reason=b"Bad Gateway"))
        await self._write_down(h11.Data(data=body))
        await self._write_down(h11.EndOfMessage())
        return keep

    async def _skip_body(self) -> bool:
        """Read the rest of an unrouted request body (up to a chunk); True if it ended."""
        budget = self.ctx.chunk
        while self.down.their_state is h11.SEND_BODY and budget > 0:
            event = await self._next_down()
            if isinstance(event, h11.Data):
                budget -= len(event.data)
            elif not isinstance(event, h11.EndOfMessage):
                return False
        return self.down.their_state is h11.DONE

    # --- protocol switches --------------------------------------------------------------

    async def _hand_off(self, request: Any, intercept: Intercept | None) -> None:
        """Send the head to the chosen side, then relay raw bytes both ways."""
        head = h11.Connection(h11.CLIENT).send(h11.Request(
            method=request.method, target=request.target,
            headers=list(request.headers.raw_items())))
        rest, _closed = self.down.trailing_data
        name = f"upgrade {self.source[0]}:{self.source[1]}"
        if intercept is not None:
            try:
                tunnel = await self.ctx.open_tunnel(intercept, self.source)
                await tunnel.send(head + bytes(rest))
            except TunnelFailed as exc:
                self.writer.write(error_response_bytes(str(exc)))
                return
            await splice_tunnel(self.reader, self.writer, tunnel, self.ctx.chunk, name)
            return
        if self.app is not None:
            self.app.close()
            self.app = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.ctx.app_port),
                self.ctx.app_dial_timeout)
        except (OSError, TimeoutError) as exc:
            self.writer.write(error_response_bytes(
                f"the app does not answer on localhost:{self.ctx.app_port}: {exc}"))
            return
        writer.write(head + bytes(rest))
        await splice_streams((self.reader, self.writer), (reader, writer), self.ctx.chunk, name)


class Sniffer:
    """Best-effort capture of a global intercept's HTTP/1.1 exchanges from copies of the bytes.

    Anything that does not parse (not HTTP, pipelining surprises) switches it off for
    the connection; the relayed bytes are never affected.
    """

    def __init__(self, ctx: Context, intercept: Intercept, source: tuple[str, int]) -> None:
        self.ctx = ctx
        self.intercept = intercept
        self.source = source
        self.requests = h11.Connection(h11.SERVER, max_incomplete_event_size=ctx.max_head)
        self.responses = h11.Connection(h11.CLIENT, max_incomplete_event_size=ctx.max_head)
        self.exchange: Exchange | None = None
        self.off = False

    def _guard(self, step: Callable[[], None]) -> None:
        if self.off:
            return
        try:
            step()
        except h11.ProtocolError as exc:
            log.debug("not capturing %s:%d any more: %s", *self.source, exc)
            self.off = True
            if self.exchange is not None:
                self.exchange.finish(error=f"capture stopped: {exc}")
                self.exchange = None

    def feed_request(self, data: bytes) -> None:
        self._guard(lambda: self._requests(data))

    def feed_response(self, data: bytes) -> None:
        self._guard(lambda: self._responses(data))

    def _requests(self, data: bytes) -> None:
        self.requests.receive_data(data)
        self._drain_requests()

    def _drain_requests(self) -> None:
        while True:
            event = self.requests.next_event()
            if event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
                return
            if isinstance(event, h11.Request):
                self.exchange = Exchange(
                    self.ctx.report, pod=self.ctx.pod, workload=self.ctx.workload,
                    namespace=self.ctx.namespace, port=self.ctx.port,
                    source=f"{self.source[0]}:{self.source[1]}", request=event,
                    intercept=self.intercept, body_limit=self.ctx.body_limit,
                    redact=self.ctx.redact, port_name=self.ctx.port_name)
                self.responses.send(event)
            elif isinstance(event, h11.Data):
                if self.exchange is not None:
                    self.exchange.request_data(event.data)
                self.responses.send(event)
            elif isinstance(event, h11.EndOfMessage):
                self.responses.send(event)

    def _responses(self, data: bytes) -> None:
        self.responses.receive_data(data)
        while True:
            event = self.responses.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return
            exchange = self.exchange
            if isinstance(event, h11.Response) and exchange is not None:
                exchange.response_head(event)
            elif isinstance(event, h11.Data) and exchange is not None:
                exchange.response_data(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if exchange is not None:
                    exchange.finish()
                    self.exchange = None
                if self.responses.our_state is h11.DONE and self.requests.their_state is h11.DONE:
                    self.requests.send(h11.Response(status_code=200, headers=[
                        (b"content-length", b"0")]))
                    self.requests.send(h11.EndOfMessage())
                    self.requests.start_next_cycle()
                    self.responses.start_next_cycle()
                    self._drain_requests()
                else:
                    self.off = True  # e.g. a connection: close exchange; nothing more to see
                    return
            elif event is h11.PAUSED:
                return

    def close(self) -> None:
        if self.exchange is not None and not self.off:
            self.exchange.finish(error="the connection closed mid-exchange")
            self.exchange = None
