"""A root lease that outlives a root daemon restart.

The root daemon's death closes the lease's connection (its TUN, routes, nft table and DNS
relay go with it; the supervisor or systemd restarts it within seconds). The user daemon
still has its session, transparent proxy and resolver, so it only has to ask the new root
daemon for the same routes: `KeptLease` does that by itself, with a doubling back-off
(`root_daemon.relink_backoff` .. `relink_backoff_max`), until it is closed. `on_state`
hears one line while the routes are gone ("" once they are back), for `tp status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from tp_protocol.aio import spawn
from tp_protocol.settings import get_settings

from tp_daemon.errors import RoutingError
from tp_daemon.root.client import RootLease

log = logging.getLogger(__name__)

LOST = ("the root daemon went away and took this connection's routes and DNS with it; "
        "asking it again (`sudo tp daemon status` shows whether it runs)")


class KeptLease:
    """Routes and DNS from the root daemon, asked for again after it restarts."""

    def __init__(self, lease: RootLease, ask: Callable[[], Awaitable[RootLease]],
                 on_state: Callable[[str], None]) -> None:
        self._lease: RootLease | None = lease
        self._ask = ask
        self._on_state = on_state
        self._lost = asyncio.Event()
        self.relinks = 0
        """How often the routes were asked for again (a restarted root daemon)."""
        lease.watch(self._lost.set)
        self._keeper = spawn(self._keep(), "tp-root-lease-keeper", log)

    @classmethod
    async def open(cls, ranges: Sequence[str], *, proxy_port: int, dns_port: int,
                   context: str, wait: float, on_state: Callable[[str], None]) -> KeptLease:
        """The first lease (a refusal is the caller's RoutingError), then kept."""
        async def ask() -> RootLease:
            return await RootLease.open(ranges, proxy_port=proxy_port, dns_port=dns_port,
                                        context=context, wait=wait)

        return cls(await ask(), ask, on_state)

    @property
    def tun(self) -> str:
        return self._lease.tun if self._lease is not None else ""

    async def _keep(self) -> None:
        s = get_settings().root_daemon
        while True:
            await self._lost.wait()
            self._lost.clear()
            old, self._lease = self._lease, None
            if old is not None:
                await old.close()
            log.warning("%s", LOST)
            self._on_state(LOST)
            delay = s.relink_backoff
            while True:
                await asyncio.sleep(delay)  # back-off: the supervisor restarts it in ~1 s
                try:
                    lease = await self._ask()
                except RoutingError as e:
                    log.info("root daemon not back yet: %s", e)
                    delay = min(delay * 2, s.relink_backoff_max)
                    continue
                break
            self._lease = lease
            self.relinks += 1
            lease.watch(self._lost.set)
            log.info("the restarted root daemon routes this connection again (tun %s)",
                     lease.tun)
            self._on_state("")

    async def close(self) -> None:
        """Stop asking, and release the routes (the root daemon removes them on EOF)."""
        self._keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(self._keeper, return_exceptions=True)
        if self._lease is not None:
            await self._lease.close()
            self._lease = None
