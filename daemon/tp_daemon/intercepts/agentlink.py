"""Direct links to the agents of this daemon's personal intercepts (manager.proto
"Agent links"): matched requests skip the manager.

For every agent pod the manager lists in an ACTIVE personal intercept's `link_pods`, one
link: a port-forward to the pod's link port (through the API server, as for the manager
itself), `link_hello` with the (intercept id, link key) pairs it serves, then the Relay
rules over the byte stream. An agent's `open` is answered like the manager's `dial`
(`ClientRelay._serve`: local connect, `opened` or `refused`, held intercepts `no_relay`),
so the local side cannot tell the two paths apart. A broken or refused link is opened
again with back-off; meanwhile (and wherever pods/portforward is not allowed) the agent
uses the manager's Relay. Links end when no intercept needs them, and on quit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tp_protocol import linkframes
from tp_protocol import manager_pb2 as mpb
from tp_protocol.aio import spawn
from tp_protocol.relay import Outbox, frame_error
from tp_protocol.settings import InterceptSettings

from tp_daemon.intercepts.base import Book
from tp_daemon.intercepts.relay import ClientRelay
from tp_daemon.streams import ViewStream

log = logging.getLogger(__name__)

Opener = Callable[[str, str, int], Awaitable[ViewStream]]
"""(namespace, pod, port) -> a byte stream to that port inside the pod (a port-forward)."""

PodKey = tuple[str, str, int]


class LinkRefused(Exception):
    """The agent kept none of the link's keys (yet: e.g. its manager has not told it of
    a re-created intercept)."""


class _Link:
    """One link to one agent pod, kept open (and re-opened) by `run`."""

    def __init__(self, links: AgentLinks, key: PodKey) -> None:
        self.links = links
        self.key = key
        self.infos: dict[str, mpb.InterceptInfo] = {}   # intercept id -> info, wanted
        self.claimed: dict[str, mpb.InterceptInfo] = {}  # ids shown on the open link
        self.served: set[str] = set()                  # ids the agent accepted
        self.unanswered = 0   # hellos sent on the open link that the agent has not answered
        self.state = "opening"
        self.outbox: Outbox | None = None
        self.connections = 0
        self.task = spawn(self.run(), f"tp-link-{key[1]}", log)

    @property
    def pod(self) -> str:
        return f"{self.key[0]}/{self.key[1]}"

    def update(self, infos: dict[str, mpb.InterceptInfo]) -> None:
        changed = {i: ic.link_key for i, ic in infos.items()} != {
            i: ic.link_key for i, ic in self.infos.items()}
        self.infos = infos
        if changed and self.outbox is not None:   # a new or re-created intercept
            self.claimed.update(infos)
            self._send_hello(self.outbox)

    def _send_hello(self, outbox: Outbox) -> None:
        # not "open" again until the agent answers: until then it may still know only the
        # old keys (e.g. intercepts re-created after a manager restart) and use the Relay
        self.unanswered += 1
        self.state = f"opening (keys sent to {self.pod})"
        outbox.put(self._hello())

    def _hello(self) -> Any:
        return linkframes.hello([(i, ic.link_key) for i, ic in self.infos.items()])

    async def run(self) -> None:
        s = self.links.settings
        loop = asyncio.get_running_loop()
        delay = s.link_backoff
        while True:
            started = loop.time()
            try:
                await self._once()
                why = "the agent ended the link"
            except (LinkRefused, linkframes.LinkFrameError, OSError, TimeoutError) as exc:
                why = str(exc) or type(exc).__name__
            except Exception as exc:   # ClusterUnreachable (forbidden, unreachable) and kin
                why = str(exc) or type(exc).__name__
            self.served = set()
            if loop.time() - started > s.link_backoff_max:
                delay = s.link_backoff   # it was up a while: this is a new trouble
            self.state = f"down ({why}); retrying in {delay:g}s"
            log.info("link to %s: %s", self.pod, self.state)
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.link_backoff_max)

    async def _once(self) -> None:
        s = self.links.settings
        opener = self.links.opener
        assert opener is not None
        self.state = "opening"
        async with asyncio.timeout(s.link_hello_timeout):
            stream = await opener(*self.key)
        outbox = Outbox(s.relay_buffer_bytes)
        decoder = linkframes.Decoder(s.link_max_frame_bytes)
        inboxes: dict[int, asyncio.Queue[Any]] = {}
        self.claimed = dict(self.infos)
        self.unanswered = 0
        self._send_hello(outbox)

        async def write(batch: Any) -> None:
            await stream.send(linkframes.encode(batch))

        pump = spawn(outbox.pump(write), f"tp-link-out-{self.key[1]}", log)
        try:
            self.outbox = outbox
            answered = False
            async with asyncio.timeout(s.link_hello_timeout) as hello_wait:
                while chunk := await stream.recv():
                    for batch in decoder.feed(chunk):
                        for frame in batch.frames:
                            if frame.WhichOneof("kind") == "link_hello":
                                self._answered(frame.link_hello)
                                if not answered:
                                    answered = True
                                    hello_wait.reschedule(None)
                            else:
                                self._frame(frame, outbox, inboxes)
            error = getattr(stream, "error", "")
            if error:
                raise OSError(error.strip())
        finally:
            self.outbox = None
            for inbox in inboxes.values():
                inbox.put_nowait(None)
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
            await stream.close()

    def _answered(self, hello: Any) -> None:
        self.served = {k.intercept_id for k in hello.keys}
        if not self.served:
            raise LinkRefused(f"the agent refused the link: {hello.note or 'no valid key'}")
        self.unanswered = max(0, self.unanswered - 1)
        if self.unanswered:
            return   # an answer to an older hello: newer keys are still on their way
        self.state = f"open to {self.pod}"
        if set(self.infos) - self.served and self.outbox is not None:
            # the agent has not heard of some intercept yet (its manager tells it soon):
            # show the keys again later rather than leave that intercept on the Relay
            outbox = self.outbox
            asyncio.get_running_loop().call_later(
                self.links.settings.link_backoff, self._rehello, outbox)
        log.info("link to %s serves %s%s", self.pod, sorted(self.served),
                 f" ({hello.note})" if hello.note else "")

    def _rehello(self, outbox: Outbox) -> None:
        if outbox is self.outbox and not self.unanswered and set(self.infos) - self.served:
            self._send_hello(outbox)

    def serves(self, intercept_id: str) -> bool:
        return self.state.startswith("open to ") and intercept_id in self.served

    def _frame(self, frame: Any, outbox: Outbox, inboxes: dict[int, asyncio.Queue[Any]]
               ) -> None:
        if frame.WhichOneof("kind") != "open":
            waiting = inboxes.get(frame.conn)
            if waiting is not None:
                waiting.put_nowait(frame)
            return
        to_client = frame.open
        info = self.claimed.get(to_client.intercept_id)
        name = info.spec.name if info is not None else ""
        if info is None or (name not in self.links.book.mine
                             and name not in self.links.book.local):
            outbox.put(frame_error(frame.conn, "gone",
                                   f"intercept {to_client.intercept_id!r} is gone"))
            return
        self.links.count(name)
        self.connections += 1
        dial = mpb.RelayFrame(conn=frame.conn, data=frame.data, dial=mpb.DialRequest(
            dial_id=f"link-{frame.conn}", intercept_id=info.id,
            target_host=info.spec.target_host, target_port=info.spec.target_port,
            source_ip=to_client.source_ip, source_port=to_client.source_port))
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        inboxes[frame.conn] = inbox
        relay = self.links.relay
        # answered exactly as the manager's `dial` on the Relay stream
        task = spawn(relay._serve(dial, inbox, outbox, inboxes),
                     f"tp-link-{self.key[1]}-{frame.conn}", log)
        relay.tasks.add(task)
        task.add_done_callback(relay.tasks.discard)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        log.info("link to %s closed after %d connections", self.pod, self.connections)


class AgentLinks:
    """This daemon's links, following its intercepts (`sync` after each snapshot)."""

    def __init__(self, settings: InterceptSettings, relay: ClientRelay, book: Book) -> None:
        self.settings = settings
        self.relay = relay
        self.book = book
        self.opener: Opener | None = None
        """Set by the daemon's Session; None (tests without a cluster): no links."""
        self.path_allows: Callable[[], bool] = lambda: True
        """False while the session's path keeps the API server out (direct connect)."""
        self._links: dict[PodKey, _Link] = {}
        self._requests: dict[str, int] = {}   # intercept name -> matched requests by link

    def count(self, name: str) -> None:
        self._requests[name] = self._requests.get(name, 0) + 1

    def sync(self) -> None:
        """Open the links the current intercepts need; close the others."""
        wanted: dict[PodKey, dict[str, mpb.InterceptInfo]] = {}
        if self.opener is not None and self.settings.agent_links and self.path_allows():
            for info in self.book.mine.values():
                if (info.state != mpb.INTERCEPT_STATE_ACTIVE or not info.link_key
                        or info.spec.mirror or info.spec.mechanism != mpb.MECHANISM_HTTP):
                    continue
                for pod in info.link_pods:
                    wanted.setdefault((pod.namespace, pod.pod, pod.port), {})[info.id] = info
        for key in [k for k in self._links if k not in wanted]:
            link = self._links.pop(key)
            spawn(link.close(), f"tp-link-close-{key[1]}", log)
        for key, infos in wanted.items():
            if key not in self._links:
                self._links[key] = _Link(self, key)
            self._links[key].update(infos)
        names = {info.spec.name for info in self.book.mine.values()} | set(self.book.local)
        self._requests = {n: c for n, c in self._requests.items() if n in names}

    async def stop(self) -> None:
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)

    def annotate(self, infos: list[mpb.InterceptInfo]) -> list[mpb.InterceptInfo]:
        """Status copies of the intercepts: requests by link and the links' states."""
        for info in infos:
            info.link_key = ""   # the front has no use for it
            info.link_connections = self._requests.get(info.spec.name, 0)
            info.relay_connections = self.relay.relayed.get(info.spec.name, 0)
            states = [link.state if link.serves(info.id) or not link.state.startswith("open")
                      else f"opening (the agent of {link.pod} does not know its key yet)"
                      for link in self._links.values()
                      if any(ic.spec.name == info.spec.name for ic in link.infos.values())]
            info.link_state = "; ".join(states)
        return infos
