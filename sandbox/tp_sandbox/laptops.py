"""Network plumbing of an instance: the node namespace and the laptop namespaces.

Everything is made inside namespaces of the instance: veth pairs are created in
the node namespace with their peer moved straight into the laptop, so no link,
address or route ever appears in the host namespace.

    node  <prefix>node      lo: 172.30.0.1/32 (API), 172.30.0.10/32 (DNS); ip_forward=1;
                            nft table `tp-policy` drops laptop<->pod forwarding
    laptop <prefix>laptop-K eth0: 172.31.0.K/32, the route 172.30.0.1/32 dev eth0 and the
                            LoadBalancer range 172.29.0.0/24 via 172.30.0.1 (as a cloud's
                            load balancers are reachable); node side `laptopK` with the
                            route 172.31.0.K/32
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Sequence

from tp_protocol.settings import get_settings

from tp_sandbox import netns
from tp_sandbox.paths import Instance

POLICY_TABLE = "tp-policy"


class NetworkError(RuntimeError):
    """An `ip`/`nft`/`sysctl` command failed; the message carries its stderr."""


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True,
                          timeout=get_settings().sandbox.command_timeout, check=False)
    if proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.decode().strip()}")


def laptop_address(k: int) -> str:
    """Address of laptop K (`<laptop_address_prefix>K`)."""
    return f"{get_settings().sandbox.laptop_address_prefix}{k}"


def laptop_range() -> str:
    """The /24 that holds every laptop address."""
    return str(ipaddress.ip_network(laptop_address(0) + "/24", strict=False))


def laptop_veth(k: int) -> str:
    """Node-side name of laptop K's veth (inside the node namespace only)."""
    return f"laptop{k}"


def add_netns(name: str) -> None:
    """Create network namespace `name` with `lo` up."""
    _ip("netns", "add", name)
    _ip("-n", name, "link", "set", "lo", "up")


def make_node(instance: Instance) -> None:
    """Create the node namespace: API and DNS addresses, forwarding, the laptop policy."""
    s = get_settings().sandbox
    ns = instance.node_netns
    add_netns(ns)
    # /32s on lo: reachable from every veth by ordinary routing, no bridge needed.
    _ip("-n", ns, "addr", "add", f"{s.api_address}/32", "dev", "lo")
    _ip("-n", ns, "addr", "add", f"{s.dns_address}/32", "dev", "lo")
    proc = netns.run(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=False)
    if proc.returncode != 0:
        raise NetworkError(f"ip_forward in {ns}: {proc.stderr.decode().strip()}")
    # Laptops only ever talk to the API server and LoadBalancer addresses; keep them off
    # pods even if a route appears. A connection to a LoadBalancer address (DNATed to a pod
    # by kube-proxy) is the one way through, both directions, as a cloud LB is.
    netns.nft(ns, f"""
table inet {POLICY_TABLE} {{
    chain forward {{
        type filter hook forward priority 0; policy accept;
        ct original ip daddr {s.load_balancer_cidr} accept
        ip saddr {laptop_range()} ip daddr {s.pod_cidr} drop
        ip saddr {s.pod_cidr} ip daddr {laptop_range()} drop
    }}
}}
""")


def make_laptop(instance: Instance, k: int) -> None:
    """Create laptop K's namespace, linked to the node only by the API server's address
    and the LoadBalancer range."""
    s = get_settings().sandbox
    ns, node, veth, addr = instance.laptop_netns(k), instance.node_netns, laptop_veth(k), \
        laptop_address(k)
    add_netns(ns)
    _ip("-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    _ip("-n", node, "link", "set", veth, "up")
    _ip("-n", node, "route", "add", f"{addr}/32", "dev", veth)
    _ip("-n", ns, "addr", "add", f"{addr}/32", "dev", "eth0")
    _ip("-n", ns, "link", "set", "eth0", "up")
    _ip("-n", ns, "route", "add", f"{s.api_address}/32", "dev", "eth0")
    # the API address is the next hop: the node answers ARP for it (a local address)
    _ip("-n", ns, "route", "add", s.load_balancer_cidr, "via", s.api_address, "dev", "eth0")


def list_netns() -> list[str]:
    """Names of every network namespace under /run/netns."""
    try:
        return sorted(os.listdir(netns.NETNS_DIR))
    except FileNotFoundError:
        return []


def instance_netns_pattern(instance: Instance) -> re.Pattern[str]:
    """Namespaces that belong to `instance` and to no other (the default's `tp-` prefix
    must not swallow `tp-<name>-...`): node, laptops, and pods (hex uid prefix)."""
    return re.compile(
        rf"^{re.escape(instance.prefix)}(node|laptop-\d+|pod-[0-9a-f-]{{1,13}})$")


def instance_netns(instance: Instance, recorded: Sequence[str] = ()) -> list[str]:
    """Existing namespaces of the instance: the recorded ones and those matching its names."""
    pattern = instance_netns_pattern(instance)
    existing = list_netns()
    found = [n for n in existing if pattern.match(n)]
    found += [n for n in recorded if n in existing and n not in found]
    # pods first, node last: deleting the node takes the node-side veths with it.
    return sorted(found, key=lambda n: (n.endswith("node"), n))


def delete_netns(name: str) -> None:
    """Remove namespace `name` (its links go with it); missing is fine."""
    if netns.exists(name):
        _ip("netns", "del", name)
