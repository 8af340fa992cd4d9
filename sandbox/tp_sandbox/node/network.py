"""Pod networking: one network namespace per pod with a routed /32 (no bridge).

    node netns                          pod netns (tp-...pod-<uid[:13]>)
    veth<uid> 169.254.1.1/32  <---->    eth0 10.244.0.N/32
    route 10.244.0.N/32 dev veth<uid>   default via 169.254.1.1 dev eth0 onlink

`Ipam` hands out /32s from the node's podCIDR round-robin, so a just-released address
is not handed out again at once (a client may still hold a connection to it).
The sync functions here run in worker threads (pyroute2 and `ip` are blocking).
"""

from __future__ import annotations

import ipaddress
import subprocess

import pyroute2.config
from pyroute2 import NetNS
from tp_protocol.settings import get_settings

from .. import netns
from ..paths import Instance
from .errors import PodSetupError

GATEWAY = "169.254.1.1"

# NetNS forks a helper and stops it with SIGTERM. The fork inherits asyncio's signal
# wake-up fd, so without this the helper's SIGTERM reaches the kubelet's event loop as
# if the kubelet itself had been told to stop.
pyroute2.config.disable_mp_signal = True


def veth_name(pod_uid: str) -> str:
    """Node-side interface name (15 characters at most, unique per node)."""
    return "veth" + pod_uid.replace("-", "")[:11]


class Ipam:
    """Pod addresses from one CIDR; the first host address is left out (.1)."""

    def __init__(self, cidr: str) -> None:
        net = ipaddress.ip_network(cidr)
        self._pool = [str(a) for a in list(net.hosts())[1:]]
        self._by_uid: dict[str, str] = {}
        self._next = 0

    def claim(self, uid: str, ip: str) -> None:
        """Record an address a pod already has (adopted after a node restart)."""
        self._by_uid[uid] = ip

    def allocate(self, uid: str) -> str:
        if uid in self._by_uid:
            return self._by_uid[uid]
        live = set(self._by_uid.values())
        for i in range(len(self._pool)):
            candidate = self._pool[(self._next + i) % len(self._pool)]
            if candidate not in live:
                self._next = (self._next + i + 1) % len(self._pool)
                self._by_uid[uid] = candidate
                return candidate
        raise PodSetupError(f"no free pod address in the node's podCIDR ({len(live)} in use): "
                            "delete some pods")

    def release(self, uid: str) -> None:
        self._by_uid.pop(uid, None)

    def in_use(self) -> dict[str, str]:
        return dict(self._by_uid)


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True,
                          timeout=get_settings().sandbox.command_timeout, check=False)
    if proc.returncode != 0:
        raise PodSetupError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def setup_pod_network(instance: Instance, pod_uid: str, pod_ip: str) -> str:
    """Create (or re-create) the pod's netns and veth; returns the netns name."""
    node_ns = instance.node_netns
    if not netns.exists(node_ns):
        raise PodSetupError(f"node network namespace {node_ns} is missing: run `tp sandbox up`")
    pod_ns = instance.pod_netns(pod_uid)
    veth = veth_name(pod_uid)
    if not netns.exists(pod_ns):
        _ip("netns", "add", pod_ns)
    try:
        with NetNS(node_ns) as node:
            stale = node.link_lookup(ifname=veth)
            if stale:  # half-made by an earlier attempt: start over
                node.link("del", index=stale[0])
            node.link("add", ifname=veth, kind="veth",
                      peer={"ifname": "eth0", "net_ns_fd": pod_ns})
            idx = node.link_lookup(ifname=veth)[0]
            node.addr("add", index=idx, address=GATEWAY, prefixlen=32)
            node.link("set", index=idx, state="up")
            node.route("replace", dst=f"{pod_ip}/32", oif=idx)
        with NetNS(pod_ns) as pod:
            pod.link("set", index=pod.link_lookup(ifname="lo")[0], state="up")
            eth0 = pod.link_lookup(ifname="eth0")[0]
            pod.addr("add", index=eth0, address=pod_ip, prefixlen=32)
            pod.link("set", index=eth0, state="up")
            pod.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=eth0, flags=["onlink"])
    except PodSetupError:
        raise
    except Exception as exc:  # pyroute2 raises NetlinkError and friends
        raise PodSetupError(f"pod network for {pod_uid}: {exc}") from exc
    return pod_ns


def pod_network_intact(instance: Instance, pod_uid: str, pod_ip: str) -> bool:
    """True when the pod's netns, veth and address are all still there (adoption)."""
    pod_ns = instance.pod_netns(pod_uid)
    if not (netns.exists(pod_ns) and netns.exists(instance.node_netns)):
        return False
    try:
        with NetNS(instance.node_netns) as node:
            if not node.link_lookup(ifname=veth_name(pod_uid)):
                return False
        with NetNS(pod_ns) as pod:
            return any(a.get_attr("IFA_ADDRESS") == pod_ip for a in pod.get_addr(family=2))
    except Exception:
        return False


def teardown_pod_network(instance: Instance, pod_uid: str) -> None:
    """Remove the veth (its route goes with it) and the pod's netns; missing parts are fine."""
    if netns.exists(instance.node_netns):
        try:
            with NetNS(instance.node_netns) as node:
                for idx in node.link_lookup(ifname=veth_name(pod_uid)):
                    node.link("del", index=idx)
        except Exception as exc:
            raise PodSetupError(f"removing veth of pod {pod_uid}: {exc}") from exc
    pod_ns = instance.pod_netns(pod_uid)
    if netns.exists(pod_ns):
        _ip("netns", "del", pod_ns)


def pod_netns_names(instance: Instance) -> list[str]:
    """Pod network namespaces of this instance that exist now."""
    prefix = instance.prefix + "pod-"
    if not netns.NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in netns.NETNS_DIR.iterdir() if p.name.startswith(prefix))
