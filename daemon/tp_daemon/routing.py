"""Making the cluster ranges reachable (root): a TUN link, routes and an nftables table.

- The TUN link (`tp0`) is created non-persistent and held open by the daemon, so the
  kernel removes it -- and every route through it -- when the daemon exits, even by
  SIGKILL. Its routes give connect() a path to the cluster ranges; packets that still
  reach it (UDP, ICMP) are read and dropped.
- The nft table (`ip tp-daemon`, replaced atomically with `nft -f`) redirects TCP to
  those ranges to the transparent proxy, and DNS towards the system nameservers to the
  daemon's resolver; packets carrying the daemon's mark pass unchanged.

Before adding anything, `check_overlaps` refuses ranges that overlap an existing route.

Routes are read and set with iproute2's `ip` (JSON listing, one `-batch` for the link and
its routes), like nft with `nft -f`: two short processes on another core cost `tp connect`
less than importing pyroute2 (~0.15-0.25 s of CPU, its package imports every module).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import shutil
import struct
import subprocess
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass

from tp_protocol.settings import get_settings

from tp_daemon import leftovers
from tp_daemon.errors import RoutingError

log = logging.getLogger(__name__)

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def _ip(args: Sequence[str], script: str = "") -> str:
    """`ip ARGS` (with `script` on stdin), its stdout; RoutingError with ip's own words."""
    ip = shutil.which("ip")
    if ip is None:
        raise RoutingError("the ip command is missing; install iproute2 (apt-get install "
                           "iproute2) or connect in proxy mode")
    timeout = get_settings().connect.ip_command_timeout
    try:
        proc = subprocess.run([ip, *args], input=script, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise RoutingError(f"`ip {' '.join(args)}` did not answer within {timeout:.0f} s; "
                           "check the workstation's network setup") from e
    if proc.returncode != 0:
        raise RoutingError(f"ip refused `{' '.join(args)}`: {proc.stderr.strip()}")
    return proc.stdout


def main_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """(destination, device) of every route of the main IPv4 table but the default."""
    found = []
    for r in json.loads(_ip(["-j", "-4", "route", "show", "table", "main"]) or "[]"):
        dst = r.get("dst", "")
        if not dst or dst == "default":
            continue
        found.append((ipaddress.IPv4Network(dst, strict=False), r.get("dev", "?")))
    return found


def local_addresses() -> list[ipaddress.IPv4Address]:
    """Every IPv4 address of this workstation's interfaces."""
    return [ipaddress.IPv4Address(a["local"])
            for link in json.loads(_ip(["-j", "-4", "address", "show"]) or "[]")
            for a in link.get("addr_info", []) if a.get("local")]


def set_link_routes(dev: str, nets: Sequence[ipaddress.IPv4Network],
                    stale: Sequence[ipaddress.IPv4Network]) -> None:
    """Link `dev` up, its `stale` routes removed, one route per range: one `ip -batch`."""
    commands = [f"link set dev {dev} up",
                *(f"route del {dst} dev {dev}" for dst in stale),
                *(f"route replace {net} dev {dev}" for net in nets)]
    _ip(["-batch", "-"], "\n".join(commands) + "\n")


def can_route() -> bool:
    """Root (CAP_NET_ADMIN in practice) and a TUN device: routes, nft and DNS are possible."""
    return os.geteuid() == 0 and os.access("/dev/net/tun", os.R_OK | os.W_OK)


def collapse(ranges: Iterable[str]) -> list[ipaddress.IPv4Network]:
    """IPv4 ranges merged so that none contains another (nft sets refuse overlaps)."""
    nets = [ipaddress.ip_network(r, strict=False) for r in ranges if r]
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    return list(ipaddress.collapse_addresses(v4))


@dataclass(frozen=True)
class Route:
    dst: ipaddress.IPv4Network
    dev: str

    def __str__(self) -> str:
        return f"{self.dst} dev {self.dev}"


def routes(ignore_dev: str = "") -> list[Route]:
    """Routes of the main IPv4 table except the default route and those on `ignore_dev`."""
    return [Route(dst, dev) for dst, dev in main_routes() if dev != ignore_dev]


def check_overlaps(ranges: Sequence[ipaddress.IPv4Network], ignore_dev: str,
                   existing: Sequence[Route] | None = None) -> None:
    """Refuse a cluster range that overlaps a route this workstation already has
    (`existing`: those routes, when the caller listed them already)."""
    for route in routes(ignore_dev) if existing is None else existing:
        if route.dev == ignore_dev:
            continue
        for net in ranges:
            if net.overlaps(route.dst):
                raise RoutingError(
                    f"cluster range {net} overlaps the route {route} on this workstation; "
                    "remove that route (or disconnect what added it) and connect again")


def nft_script(table: str, ranges: Sequence[ipaddress.IPv4Network], *, proxy_port: int,
               nameservers: Sequence[str], dns_port: int, mark: int) -> str:
    """The whole table, created-then-deleted-then-defined so `nft -f` swaps it atomically."""
    lines = [
        f"table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        f"    meta mark {mark:#x} return",
    ]
    if nameservers and dns_port:
        servers = ", ".join(nameservers)
        lines += [
            f"    ip daddr {{ {servers} }} udp dport 53 redirect to :{dns_port}",
            f"    ip daddr {{ {servers} }} tcp dport 53 redirect to :{dns_port}",
        ]
    if ranges:
        cidrs = ", ".join(str(n) for n in ranges)
        lines.append(f"    ip daddr {{ {cidrs} }} meta l4proto tcp redirect to :{proxy_port}")
    lines += ["  }", "}", ""]
    return "\n".join(lines)


async def run_nft(script: str, *, missing: str = "the nft command is missing; install "
                  "nftables (apt-get install nftables) or connect in proxy mode",
                  whose: str = "the daemon's") -> None:
    """`nft -f -` with `script`; RoutingError with `missing`, or with nft's own words."""
    nft = shutil.which("nft")
    if nft is None:
        raise RoutingError(missing)
    proc = await asyncio.create_subprocess_exec(
        nft, "-f", "-", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise RoutingError(f"nft refused {whose} rules: {err.decode().strip()}")





async def nft_table_exists(table: str) -> bool:
    nft = shutil.which("nft") or "nft"
    proc = await asyncio.create_subprocess_exec(
        nft, "list", "table", "ip", table, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    return await proc.wait() == 0


async def remove_stale_table(table: str) -> bool:
    """Delete a table left by a daemon that was killed (one daemon per netns owns it)."""
    if not await nft_table_exists(table):
        return False
    await run_nft(f"delete table ip {table}\n")
    return True


async def list_routes() -> list[Route]:
    """The main table's routes but the default one (what `Routing.setup` checks against)."""
    return [Route(dst, dev) for dst, dev in await asyncio.to_thread(main_routes)]


class Routing:
    """The TUN link, its routes and the nft table of one connection."""

    def __init__(self, tun_name: str, table: str, mark: int) -> None:
        self.tun_name = tun_name
        self.table = table
        self.mark = mark
        self._fd: int | None = None
        self.ranges: list[ipaddress.IPv4Network] = []
        self.dropped = 0

    async def setup(self, ranges: Iterable[str], proxy_port: int, nameservers: Sequence[str],
                    dns_port: int, listed: Awaitable[list[Route]] | None = None) -> None:
        """Check overlaps, then link, routes and nft; on any failure undo what was done.
        `listed`: the routes, when the caller listed them already (`list_routes`)."""
        nets = collapse(ranges)
        # one listing serves the overlap check and the stale routes of our own link
        existing = await (listed if listed is not None else list_routes())
        check_overlaps(nets, self.tun_name, existing)
        # recorded before they exist: a daemon killed from here on is cleaned up after
        leftovers.record("links", self.tun_name)
        leftovers.record("nft_tables", self.table)
        try:
            if self._fd is None:
                self._open_tun()
            stale = [r.dst for r in existing if r.dev == self.tun_name and r.dst not in nets]
            # routes and nft rules do not depend on each other: both commands at once,
            # each finished (or failed) before any undo
            done = await asyncio.gather(
                asyncio.to_thread(self._set_routes, nets, stale),
                run_nft(nft_script(self.table, nets, proxy_port=proxy_port,
                                   nameservers=nameservers, dns_port=dns_port,
                                   mark=self.mark)),
                return_exceptions=True)
            for failed in done:
                if isinstance(failed, BaseException):
                    raise failed
        except BaseException:
            await self.teardown()
            raise
        self.ranges = nets

    def _open_tun(self) -> None:
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        except OSError as e:
            raise RoutingError(f"cannot open /dev/net/tun ({e.strerror}); run as root "
                               "or connect in proxy mode") from e
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", self.tun_name.encode(),
                                                   IFF_TUN | IFF_NO_PI))
        except OSError as e:
            os.close(fd)
            raise RoutingError(f"cannot create link {self.tun_name} ({e.strerror}); is "
                               "another tp daemon connected in this network namespace?") from e
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._drain)

    def _drain(self) -> None:
        """Drop packets routed to the link that nft did not redirect (UDP, ICMP)."""
        assert self._fd is not None
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 65536):
                self.dropped += 1

    def _set_routes(self, nets: Sequence[ipaddress.IPv4Network],
                    stale: Sequence[ipaddress.IPv4Network]) -> None:
        set_link_routes(self.tun_name, nets, stale)

    async def teardown(self) -> None:
        """Remove the nft table and the link (its routes go with it). Safe to repeat."""
        if await nft_table_exists(self.table):
            try:
                await run_nft(f"delete table ip {self.table}\n")
            except RoutingError as e:
                log.error("%s", e)
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        self.ranges = []
        leftovers.forget("nft_tables", self.table)
        leftovers.forget("links", self.tun_name)
