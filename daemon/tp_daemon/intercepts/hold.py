"""Hold and edit (`tp intercept --hold`, `tp hold NAME`): intercepted HTTP requests wait
on the workstation for their owner's decision.

A dial of an intercept with holding on is accepted and parsed as HTTP/1.1 (h11; a
keep-alive connection of a global intercept yields one held request per exchange). Each
request waits in `Holds.waiting` until DecideHeld: forward it (edited or not) to the
local target, or to the app container in the cluster (a Tunnel dial to the pod's app
port, the path Replay takes), answer it (`respond`), or drop it (the tunnel ends with an
error, so the agent answers its caller 502 saying it was dropped). An untouched one goes
to the cluster unchanged after the hold's timeout (`intercept.hold_timeout`), so a
forgotten hold never hangs a caller. The answer goes back through the tunnel to the
caller, and DecideHeld replies with what the caller got.

This sits on the workstation side of the intercept path, not in the agent, so that
mirror copies (which reach the daemon the same way) can be held by the same code.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import h11
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol import replay as shared
from tp_protocol.aio import wait_at_most
from tp_protocol.settings import InterceptSettings

from tp_daemon.errors import InterceptConflict, InterceptNotFound, InterceptUsage
from tp_daemon.intercepts.base import Book, Owner
from tp_daemon.streams import Stream, TcpStream
from tp_daemon.tunnel import TunnelBroken, TunnelStream

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")   # an HTTP method (RFC 9110 token)
_DROPPED = "the request was dropped on the workstation (tp hold)"
_COPY = dpb.HeldDecision(action=dpb.HELD_ACTION_DROP)   # what leave/off/timeout do to a copy
_MAX_HEAD = 64 * 1024


class ForwardFailed(Exception):
    """Forwarding a held request failed; the text is the 502 its caller gets."""


@dataclass
class Route:
    """Where a held request can go: the intercept's local target and the app's pod."""

    target_host: str
    target_port: int
    pod_ip: str
    app_port: int


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Held:
    info: dpb.HeldRequest
    route: Route
    decision: asyncio.Future[dpb.HeldDecision] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    outcome: asyncio.Future[dpb.HeldOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


def _described(action: dpb.HeldAction) -> str:
    names: dict[dpb.HeldAction, str] = {dpb.HELD_ACTION_FORWARD_LOCAL: "forward local",
            dpb.HELD_ACTION_FORWARD_CLUSTER: "forward cluster",
            dpb.HELD_ACTION_RESPOND: "respond", dpb.HELD_ACTION_DROP: "drop"}
    return names.get(action, "?")


def check_decision(d: dpb.HeldDecision) -> None:
    """A decision's mistakes as one-line usage errors (before anything is done)."""
    if d.action == dpb.HELD_ACTION_UNSPECIFIED:
        raise InterceptUsage("say what to do with the held request: forward (to local or "
                             "cluster), respond or drop")
    if d.action == dpb.HELD_ACTION_RESPOND and not 100 <= d.status <= 599:
        raise InterceptUsage(f"respond needs an HTTP status between 100 and 599, not "
                             f"{d.status}")
    if d.method and not _TOKEN.match(d.method):
        raise InterceptUsage(f"{d.method!r} is not an HTTP method; use e.g. GET or POST")
    if d.path and not d.path.startswith("/"):
        raise InterceptUsage(f"the path must start with '/', not {d.path!r}")
    for h in d.headers:
        if not _TOKEN.match(h.name) or "\n" in h.value or "\r" in h.value:
            raise InterceptUsage(f"bad header {h.name!r}: give a token name and a one-line "
                                 "value")


async def _read_request(conn: h11.Connection, stream: Stream, limit: int
                        ) -> tuple[h11.Request, bytes] | None:
    """The next request on `stream` with its whole body; None once the caller closed."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.recv())
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > limit:
                raise ForwardFailed(f"the request body is larger than the {limit} bytes "
                                    "a hold keeps (intercept.hold_body_limit)")
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, bytes(body)
        else:   # ConnectionClosed, PAUSED
            return None


async def exchange(stream: Stream, *, method: str, path: str,
                   headers: Iterable[tuple[str, str]], body: bytes, seconds: float,
                   limit: int) -> Answer:
    """One whole HTTP/1.1 exchange over `stream` (closed afterwards): the full answer,
    unlike `tp_protocol.replay.exchange`, which keeps a bounded record."""
    sent = shared.request_headers(headers, ())
    if not any(k.lower() == "host" for k, _ in sent):
        sent.insert(0, ("Host", "held"))
    sent += [("Content-Length", str(len(body))), ("Connection", "close")]
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    answer: Answer | None = None
    data = bytearray()
    try:
        async with asyncio.timeout(seconds):
            await stream.send(conn.send(h11.Request(method=method, target=path,
                                                    headers=sent)) or b"")
            await stream.send(conn.send(h11.Data(data=body)) or b"")
            await stream.send(conn.send(h11.EndOfMessage()) or b"")
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.recv())
                elif isinstance(event, h11.Response):
                    answer = Answer(event.status_code, event.reason.decode("latin-1"),
                                    [(k.decode("latin-1"), v.decode("latin-1"))
                                     for k, v in event.headers.raw_items()], b"")
                elif isinstance(event, h11.Data):
                    data += event.data
                    if len(data) > limit:
                        raise ForwardFailed(f"the answer is larger than {limit} bytes "
                                            "(intercept.hold_body_limit)")
                elif isinstance(event, h11.EndOfMessage) and answer is not None:
                    answer.body = bytes(data)
                    return answer
                elif isinstance(event, h11.ConnectionClosed | h11.EndOfMessage):
                    raise ForwardFailed("the other side closed the connection before "
                                        "answering")
    except TimeoutError:
        raise ForwardFailed(f"no answer within {seconds:g}s "
                            "(intercept.hold_forward_timeout)") from None
    except (OSError, h11.ProtocolError, ConnectionError) as e:
        raise ForwardFailed(f"{type(e).__name__}: {e}") from e
    finally:
        await stream.close()


class Holds:
    """Which intercepts hold, the requests waiting, and what became of answered ones."""

    def __init__(self, owner: Owner, settings: InterceptSettings, book: Book) -> None:
        self.owner = owner
        self.settings = settings
        self.book = book
        self.on: dict[str, float] = {}       # intercept name -> its timeout (s)
        self.waiting: dict[str, Held] = {}
        self.answered: collections.OrderedDict[str, str] = collections.OrderedDict()
        # decisions whose traffic row has not come yet: (intercept, caller, method, path)
        # -> the decided labels in order (a keep-alive caller repeats a key)
        self.decided: collections.OrderedDict[tuple[str, str, str, str], list[str]] = (
            collections.OrderedDict())
        self._ids = itertools.count(1)
        # per wiretap: held copies dropped untouched (timeout, leave, hold off)
        self.copies_dropped: collections.Counter[str] = collections.Counter()

    # --- turning it on and off ------------------------------------------------------

    def active(self, name: str) -> bool:
        return name in self.on

    def timeout_of(self, seconds: float) -> float:
        timeout = seconds or self.settings.hold_timeout
        if timeout <= 0:
            raise InterceptUsage(f"--hold-timeout must be more than 0 seconds, not {timeout:g}")
        return timeout

    async def check_target(self, host: str, port: int) -> None:
        """A hold must have somewhere to forward to: the local target answers."""
        host = host or "127.0.0.1"
        try:
            async with asyncio.timeout(self.settings.local_dial_timeout):
                stream = await TcpStream.open(host, port)
        except (OSError, TimeoutError) as e:
            why = getattr(e, "strerror", None) or type(e).__name__
            raise InterceptUsage(
                f"--hold needs a handler or local service to forward to, but nothing "
                f"answers on {host}:{port} ({why}); start it, or define a handler in a "
                "%%tp intercept cell") from None
        await stream.close()

    async def set(self, request: dpb.HoldRequest) -> dpb.HoldResult:
        name = request.name
        info = self.book.mine.get(name)
        if info is None:
            raise InterceptNotFound(f"you have no intercept named {name!r}; see `tp list` "
                                    "(or `tp intercept ... --hold`)")
        if not request.on:
            released = self.release(name, "holding was turned off") if name in self.on else 0
            self.on.pop(name, None)
            return dpb.HoldResult(name=name, on=False, released=released)
        timeout = self.timeout_of(request.timeout)
        await self.check_target(info.spec.target_host, info.spec.target_port)
        self.on[name] = timeout
        return dpb.HoldResult(name=name, on=True, timeout=timeout)

    def enable(self, name: str, timeout: float) -> None:
        self.on[name] = timeout

    def release(self, name: str, why: str) -> int:
        """Send every request `name` holds on to the cluster unchanged (leave, hold off)."""
        ids = [i for i, h in self.waiting.items() if h.info.intercept_name == name]
        for held_id in ids:
            held = self.waiting.pop(held_id)
            if held.info.mode == "mirror":   # the cluster answered its caller already
                self._remember(held_id, f"dropped (a mirror copy): {why}")
                self.copies_dropped[name] += 1
                held.decision.set_result(_COPY)
                continue
            self._remember(held_id, f"forwarded to the cluster: {why}")
            held.decision.set_result(dpb.HeldDecision(
                id=held_id, action=dpb.HELD_ACTION_FORWARD_CLUSTER))
        return len(ids)

    def forget(self, name: str) -> None:
        """The intercept is gone: its held requests go to the cluster."""
        if name in self.on:
            self.release(name, f"intercept {name} was left")
            self.on.pop(name, None)

    # --- the daemon API -------------------------------------------------------------

    def listing(self, request: dpb.ListHeldRequest) -> dpb.HeldList:
        names = set(request.intercept_names)
        return dpb.HeldList(
            held=[h.info for h in self.waiting.values()
                  if not names or h.info.intercept_name in names],
            holding=[dpb.HoldResult(name=n, on=True, timeout=t, mirror=self._mirror(n),
                                    copies_dropped=self.copies_dropped[n])
                     for n, t in self.on.items() if not names or n in names])

    def _mirror(self, name: str) -> bool:
        info = self.book.mine.get(name)
        return info is not None and info.spec.mirror

    async def decide(self, d: dpb.HeldDecision) -> dpb.HeldOutcome:
        held = self.waiting.get(d.id)
        if held is None:
            what = self.answered.get(d.id)
            if what is not None:
                raise InterceptConflict(f"held request {d.id} was already answered ({what}); "
                                        "pick a waiting one from `tp held`")
            raise InterceptNotFound(f"no held request {d.id!r}; pick one from `tp held`")
        check_decision(d)
        if held.info.mode == "mirror" and d.action == dpb.HELD_ACTION_FORWARD_CLUSTER:
            raise InterceptUsage(f"held request {d.id} is a mirror copy: the cluster already "
                                 "answered its caller; forward it to local, respond or drop it")
        del self.waiting[d.id]
        self._remember(d.id, _described(d.action).replace("forward", "forwarded to")
                       .replace("respond", "answered with a response")
                       .replace("drop", "dropped"))
        held.decision.set_result(d)
        return await asyncio.shield(held.outcome)

    def _remember(self, held_id: str, what: str) -> None:
        self.answered[held_id] = what
        while len(self.answered) > self.settings.hold_answered_kept:
            self.answered.popitem(last=False)

    # --- traffic rows -----------------------------------------------------------------

    def _decided(self, info: dpb.HeldRequest, label: str) -> None:
        """Remember what became of a held request until the agent's row of it comes (the
        agent does not know about holds; the row reaches the daemon after the answer)."""
        key = (info.intercept_name, info.source, info.method, info.path)
        self.decided.setdefault(key, []).append(label)
        self.decided.move_to_end(key)
        while len(self.decided) > self.settings.hold_answered_kept:
            self.decided.popitem(last=False)

    def mark(self, record: mpb.TrafficRecord) -> None:
        """Mark the agent's row of a held request: mode HOLD (a mirror copy's row stays
        MIRROR), the decision, and where its answer came from."""
        key = (record.intercept_name, record.source, record.method, record.path)
        labels = self.decided.get(key)
        if not labels:
            return
        label = labels.pop(0)
        if not labels:
            del self.decided[key]
        record.hold_decision = label
        if record.mode == mpb.TRAFFIC_MODE_MIRROR:
            return
        record.mode = mpb.TRAFFIC_MODE_HOLD
        record.routed_to = (mpb.ROUTED_TO_CLUSTER if label in ("forward cluster", "timeout")
                            else mpb.ROUTED_TO_UNSPECIFIED if label == "drop"
                            else mpb.ROUTED_TO_LOCAL)

    # --- the intercepted connection ---------------------------------------------------

    def _route(self, name: str, request: mpb.DialRequest) -> Route:
        info = self.book.mine.get(name)
        local = self.book.local.get(name)
        return Route(request.target_host or "127.0.0.1", request.target_port,
                     info.pod_ip if info is not None else "",
                     local.container_port if local is not None else 0)

    async def serve(self, stub: mgrpc.ManagerStub, session: mpb.SessionInfo,
                    request: mpb.DialRequest, name: str, mode: str = "intercept") -> None:
        """Accept an intercepted connection and hold each request on it (`mode`: what
        the held requests are, "intercept", or "mirror" for mirror copies)."""
        try:
            tunnel = await TunnelStream.accept(
                stub, session, request.dial_id, f"{request.source_ip}:{request.source_port}",
                wait=self.owner.settings.dial_timeout)
        except TunnelBroken as e:
            log.info("accepting dial %s failed: %s", request.dial_id, e)
            return
        route = self._route(name, request)
        info = self.book.mine.get(name)
        where = (info.spec.workload, info.spec.namespace) if info is not None else ("", "")
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            while True:
                try:
                    got = await _read_request(conn, tunnel, self.settings.hold_body_limit)
                except ForwardFailed as e:
                    await self._answer(conn, tunnel, "", Answer(
                        413, "Content Too Large", [], f"{e}\n".encode()))
                    return
                if got is None:
                    return
                head, body = got
                held = self._park(name, route, where, request=request, head=head, body=body,
                                  mode=mode)
                try:
                    if not await self._answer_held(conn, tunnel, held):
                        return
                finally:
                    if not held.outcome.done():   # cancelled (quit) or broken
                        held.outcome.set_result(dpb.HeldOutcome(
                            id=held.info.id, error_text="the held connection ended"))
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (TunnelBroken, h11.ProtocolError) as e:
            log.info("held connection %s ended: %s", request.dial_id, e)
        finally:
            with contextlib.suppress(Exception):
                await tunnel.close_write()
            await tunnel.close()

    async def _answer_held(self, conn: h11.Connection, tunnel: TunnelStream,
                           held: Held) -> bool:
        """Wait for the decision, carry it out, tell the caller; False: connection over."""
        outcome = await self._wait_and_do(held)
        self._decided(held.info, outcome.decided)   # before the caller (and the row) sees it
        if outcome.decided == "drop" or (outcome.decided == "timeout"
                                         and held.info.mode == "mirror"):
            await tunnel.fail("dropped", _DROPPED)
            outcome.seconds = time.time() - held.info.received_unix
            held.outcome.set_result(outcome)
            return False
        gone = False
        try:
            await self._answer(conn, tunnel, held.info.method, Answer(
                outcome.status, outcome.reason,
                [(h.name, h.value) for h in outcome.headers], outcome.body))
        except (TunnelBroken, OSError, h11.ProtocolError) as e:
            outcome.error_text = f"the caller is gone: {e}"
            gone = True
        outcome.seconds = time.time() - held.info.received_unix
        held.outcome.set_result(outcome)
        return not gone

    def _park(self, name: str, route: Route, where: tuple[str, str], *,
              request: mpb.DialRequest, head: h11.Request, body: bytes, mode: str) -> Held:
        now = time.time()
        timeout = self.on.get(name, self.settings.hold_timeout)
        if mode == "mirror":   # the agent stops waiting for a copy's answer after this
            timeout = min(timeout, self.settings.mirror_answer_timeout)
        info = dpb.HeldRequest(
            id=f"h{next(self._ids)}", intercept_name=name, workload=where[0],
            namespace=where[1], method=head.method.decode("latin-1"),
            path=head.target.decode("latin-1"),
            headers=[mpb.Header(name=k.decode("latin-1"), value=v.decode("latin-1"))
                     for k, v in head.headers.raw_items()],
            body=body, source=f"{request.source_ip}:{request.source_port}",
            received_unix=now, deadline_unix=now + timeout, mode=mode)
        held = Held(info, route)
        self.waiting[info.id] = held
        log.info("holding %s %s of %s as %s", info.method, info.path, name, info.id)
        return held

    async def _wait_and_do(self, held: Held) -> dpb.HeldOutcome:
        timeout = held.info.deadline_unix - held.info.received_unix
        try:
            decided = await wait_at_most(asyncio.shield(held.decision), timeout)
        except BaseException:
            self.waiting.pop(held.info.id, None)
            raise
        label = ""
        if not decided and held.info.mode == "mirror":   # a copy: nobody waits for it
            self.waiting.pop(held.info.id, None)
            self._remember(held.info.id, f"dropped after {timeout:g}s untouched (a mirror "
                                         "copy)")
            self.copies_dropped[held.info.intercept_name] += 1
            held.decision.set_result(_COPY)
            label = "timeout"
        elif not decided:
            self.waiting.pop(held.info.id, None)
            self._remember(held.info.id, f"forwarded to the cluster after {timeout:g}s "
                                         "untouched")
            held.decision.set_result(dpb.HeldDecision(
                id=held.info.id, action=dpb.HELD_ACTION_FORWARD_CLUSTER))
            label = "timeout"
        d = held.decision.result()
        outcome = await self._do(held, d)
        outcome.decided = label or outcome.decided
        return outcome

    async def _do(self, held: Held, d: dpb.HeldDecision) -> dpb.HeldOutcome:
        info = held.info
        outcome = dpb.HeldOutcome(id=info.id, decided=_described(d.action))
        headers = ([(h.name, h.value) for h in d.headers] if d.has_headers
                   else [(h.name, h.value) for h in info.headers])
        body = bytes(d.body) if d.has_body else bytes(info.body)
        if d.action == dpb.HELD_ACTION_DROP:
            return outcome
        if d.action == dpb.HELD_ACTION_RESPOND:
            answer = Answer(d.status, "", headers if d.has_headers else [], body)
        else:
            try:
                answer = await self._forward(held.route, d, method=d.method or info.method,
                                             path=d.path or info.path, headers=headers,
                                             body=body)
            except ForwardFailed as e:
                where = "local" if d.action == dpb.HELD_ACTION_FORWARD_LOCAL else "cluster"
                outcome.error_text = f"forwarding to {where} failed: {e}"
                answer = Answer(502, "Bad Gateway", [("content-type", "text/plain")],
                                f"{outcome.error_text}\n".encode())
        outcome.status = answer.status
        outcome.reason = answer.reason
        outcome.headers.extend(mpb.Header(name=k, value=v) for k, v in answer.headers)
        outcome.body = answer.body
        return outcome

    async def _forward(self, route: Route, d: dpb.HeldDecision, *, method: str, path: str,
                       headers: list[tuple[str, str]], body: bytes) -> Answer:
        stream: Stream
        try:
            if d.action == dpb.HELD_ACTION_FORWARD_LOCAL:
                async with asyncio.timeout(self.settings.local_dial_timeout):
                    stream = await TcpStream.open(route.target_host, route.target_port)
            else:
                if not route.pod_ip or not route.app_port:
                    raise ForwardFailed("the app's pod address is unknown")
                stream = await self.owner.dial(route.pod_ip, route.app_port)
        except Exception as e:   # OSError, timeouts, the tunnel's and the daemon's errors
            raise ForwardFailed(f"cannot connect: {e or type(e).__name__}") from e
        return await exchange(stream, method=method, path=path, headers=headers, body=body,
                              seconds=self.settings.hold_forward_timeout,
                              limit=self.settings.hold_body_limit)

    async def _answer(self, conn: h11.Connection, tunnel: Stream, method: str,
                      answer: Answer) -> None:
        """Write `answer` to the caller (framing recomputed, hop-by-hop headers dropped)."""
        drop = shared.HOP_BY_HOP | shared.FRAMING
        headers: list[Any] = [(k, v) for k, v in answer.headers if k.lower() not in drop]
        if method == "HEAD":
            headers += [(k, v) for k, v in answer.headers if k.lower() == "content-length"]
        else:
            headers.append(("content-length", str(len(answer.body))))
        out = conn.send(h11.Response(status_code=answer.status, headers=headers,
                                     reason=answer.reason.encode("latin-1")
                                     if answer.reason else b"")) or b""
        if method != "HEAD" and answer.body:
            out += conn.send(h11.Data(data=answer.body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        await tunnel.send(out)
