"""The root daemon's share of the workstation network: one TUN link whose routes are
the union of every lease's ranges, and one nft table per leased uid."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import shutil
import struct
from collections.abc import Sequence

from tp_daemon.errors import RoutingError
from tp_daemon.routing import (
    IFF_NO_PI,
    IFF_TUN,
    TUNSETIFF,
    check_overlaps,
    local_addresses,
    main_routes,
    nft_table_exists,
    run_nft,
    set_link_routes,
)

log = logging.getLogger(__name__)


def user_nft_script(table: str, uid: int, ranges: Sequence[ipaddress.IPv4Network], *,
                    proxy_port: int, nameservers: Sequence[str], dns_port: int,
                    mark: int) -> str:
    """Uid `uid`'s table: its DNS to the relay, its TCP to cluster ranges to its proxy.

    Only that uid's sockets match, so a caller steers nobody's traffic but its own."""
    lines = [
        f"table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        f"    meta skuid != {uid} return",
        f"    meta mark {mark:#x} return",
    ]
    if nameservers:
        servers = ", ".join(nameservers)
        lines += [f"    ip daddr {{ {servers} }} udp dport 53 redirect to :{dns_port}",
                  f"    ip daddr {{ {servers} }} tcp dport 53 redirect to :{dns_port}"]
    cidrs = ", ".join(str(n) for n in ranges)
    lines += [f"    ip daddr {{ {cidrs} }} meta l4proto tcp redirect to :{proxy_port}",
              "  }", "}", ""]
    return "\n".join(lines)


async def nft(script: str) -> None:
    await run_nft(script, missing="the nft command is missing on this workstation; install "
                  "nftables (apt-get install nftables)", whose="the root daemon's")


async def list_tables(prefix: str) -> list[str]:
    exe = shutil.which("nft") or "nft"
    proc = await asyncio.create_subprocess_exec(
        exe, "list", "tables", "ip", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    names = [line.split()[-1] for line in out.decode().splitlines() if line.startswith("table")]
    return [n for n in names if n.startswith(prefix)]


async def remove_tables(prefix: str) -> list[str]:
    """Delete every table named `<prefix>...` (left by a root daemon that died)."""
    removed = await list_tables(prefix)
    for name in removed:
        await nft(f"delete table ip {name}\n")
    return removed


def _check_local_addresses(ranges: Sequence[ipaddress.IPv4Network]) -> None:
    """Refuse a range holding an address of this workstation (it would capture it)."""
    local = local_addresses()
    for net in ranges:
        for address in local:
            if address in net:
                raise RoutingError(f"cluster range {net} holds {address}, an address of this "
                                   "workstation; connect to a cluster whose ranges do not")


class Network:
    """The TUN link (while any lease exists), its routes and the per-uid tables."""

    def __init__(self, tun_name: str, nft_prefix: str, mark: int) -> None:
        self.tun_name = tun_name
        self.nft_prefix = nft_prefix
        self.mark = mark
        self._fd: int | None = None
        self._ranges: dict[int, tuple[ipaddress.IPv4Network, ...]] = {}
        self._lock = asyncio.Lock()
        self.dropped = 0

    def table(self, uid: int) -> str:
        return f"{self.nft_prefix}{uid}"

    async def add(self, uid: int, ranges: Sequence[ipaddress.IPv4Network], *,
                  proxy_port: int, nameservers: Sequence[str], dns_port: int) -> None:
        """Route `ranges` for `uid`; nothing is left behind when it fails."""
        async with self._lock:
            # Another user's ranges sit on our own link: sharing them is fine (each
            # uid's table decides where its packets go); any other route is not.
            await asyncio.to_thread(check_overlaps, ranges, self.tun_name)
            await asyncio.to_thread(_check_local_addresses, ranges)
            self._ranges[uid] = tuple(ranges)
            try:
                if self._fd is None:
                    self._open_tun()
                await asyncio.to_thread(self._set_routes)
                await nft(user_nft_script(self.table(uid), uid, ranges, proxy_port=proxy_port,
                                          nameservers=nameservers, dns_port=dns_port,
                                          mark=self.mark))
            except BaseException:
                await self._remove(uid)
                raise

    async def remove(self, uid: int) -> None:
        async with self._lock:
            await self._remove(uid)

    async def _remove(self, uid: int) -> None:
        self._ranges.pop(uid, None)
        table = self.table(uid)
        if await nft_table_exists(table):
            try:
                await nft(f"delete table ip {table}\n")
            except RoutingError as e:
                log.error("%s", e)
        if not self._ranges:
            self._close_tun()
        else:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._set_routes)

    async def close(self) -> None:
        async with self._lock:
            for uid in list(self._ranges):
                await self._remove(uid)
            self._close_tun()

    def _open_tun(self) -> None:
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        except OSError as e:
            raise RoutingError(f"the root daemon cannot open /dev/net/tun ({e.strerror})") from e
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", self.tun_name.encode(),
                                                   IFF_TUN | IFF_NO_PI))
        except OSError as e:
            os.close(fd)
            raise RoutingError(f"the root daemon cannot create link {self.tun_name} "
                               f"({e.strerror})") from e
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._drain)

    def _drain(self) -> None:
        """Packets nft did not redirect (UDP, ICMP, another uid's TCP) end here."""
        assert self._fd is not None
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 65536):
                self.dropped += 1

    def _close_tun(self) -> None:
        if self._fd is not None:  # the link and its routes vanish with the last fd
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _set_routes(self) -> None:
        wanted = {str(n) for n in ipaddress.collapse_addresses(
            n for nets in self._ranges.values() for n in nets)}
        stale = [dst for dst, dev in main_routes()
                 if dev == self.tun_name and str(dst) not in wanted]
        set_link_routes(self.tun_name, [ipaddress.IPv4Network(n) for n in sorted(wanted)],
                        stale)
