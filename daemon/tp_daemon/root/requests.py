"""What a user daemon may ask the root daemon, and the checks every request passes.

One JSON object per line. `{"op": "route", "ranges": [CIDR...], "proxy_port": P,
"dns_port": D, "context": NAME}` asks for a lease (held while the connection stays
open); `{"op": "status"}` lists the leases. Replies: `{"ok": true, ...}` or
`{"error": "<one line that says what to do>"}`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from tp_daemon.errors import RoutingError

# Where cluster ranges may live: private, shared (CGNAT) and benchmark space. Anything
# else (public, loopback, link-local, multicast) is a host range a caller must not steal.
_ALLOWED = [ipaddress.IPv4Network(n) for n in
            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
             "198.18.0.0/15")]
_CONTEXT = re.compile(r"^[A-Za-z0-9@:._/+-]{0,253}$")


class RequestError(RoutingError):
    """A request the root daemon refuses (its message goes back to the caller)."""


@dataclass(frozen=True)
class RouteRequest:
    ranges: tuple[ipaddress.IPv4Network, ...]
    proxy_port: int
    dns_port: int
    context: str


def _port(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise RequestError(f"{what} must be a TCP/UDP port number (1-65535), not {value!r}")
    return value


def parse_route(message: dict[str, Any], *, max_ranges: int, min_prefix: int
                ) -> RouteRequest:
    """Validate a route request; RequestError (one line) names the first problem."""
    raw = message.get("ranges")
    if not isinstance(raw, list) or not raw or not all(isinstance(r, str) for r in raw):
        raise RequestError("ranges must be a non-empty list of CIDR strings")
    if len(raw) > max_ranges:
        raise RequestError(f"at most {max_ranges} cluster ranges may be routed, not {len(raw)}")
    nets = []
    for text in raw:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as e:
            raise RequestError(f"cluster range {text!r} is not a valid CIDR ({e})") from None
        if not isinstance(net, ipaddress.IPv4Network):
            raise RequestError(f"cluster range {text} is not IPv4 (only IPv4 is routed)")
        if net.prefixlen < min_prefix:
            raise RequestError(f"cluster range {net} is too wide (a /{min_prefix} or "
                               "narrower is accepted; no default route)")
        if not any(net.subnet_of(a) for a in _ALLOWED):
            raise RequestError(f"cluster range {net} is not a private range "
                               "(10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15)")
        nets.append(net)
    context = message.get("context", "")
    if not isinstance(context, str) or not _CONTEXT.match(context):
        raise RequestError("context must be a kubeconfig context name (letters, digits, "
                           "@:._/+-, at most 253)")
    return RouteRequest(tuple(ipaddress.collapse_addresses(nets)),
                        _port(message.get("proxy_port"), "proxy_port"),
                        _port(message.get("dns_port"), "dns_port"), context)
