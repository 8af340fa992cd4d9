"""`python -m tp_cluster.manager`: run the traffic-manager in its pod.

Discovers cluster info once before it listens (the readinessProbe is a TCP check of
the gRPC port, so the pod turns Ready with the answers at hand), serves until
SIGTERM/SIGINT, then stops gracefully (`Settings.connect.manager_stop_grace`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from tp_protocol.aio import until_stopped
from tp_protocol.settings import get_settings

from tp_cluster.kube import Kube
from tp_cluster.manager import logs, tls
from tp_cluster.manager.clusterinfo import ClusterFacts, discover, parse_resolv_conf
from tp_cluster.manager.dns import ClusterResolver
from tp_cluster.manager.rawdial import CannotServeRawDials, RawDials
from tp_cluster.manager.server import CannotServe, ManagerServer
from tp_cluster.manifests import DIRECT_PORT, GRPC_PORT, RAW_DIAL_PORT

log = logging.getLogger("tp_cluster.manager")


def _pod_nameserver(resolv_conf: Path) -> str:
    """The pod's resolver is the cluster DNS (LookupDNS asks it directly)."""
    try:
        conf = parse_resolv_conf(resolv_conf.read_text(encoding="utf-8"))
    except OSError:
        return ""
    return conf.nameservers[0] if conf.nameservers else ""


async def serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    kube = Kube.in_cluster()
    resolv_conf = Path(args.resolv_conf)

    async def facts() -> ClusterFacts:
        return await asyncio.to_thread(discover, kube, args.namespace, resolv_conf)

    try:
        first = await facts()
        log.info("cluster info: %s", first)
    except Exception:
        # still serve: GetClusterInfo retries and reports the reason to the client
        log.exception("initial cluster info discovery failed")
        first = None
    nameserver = _pod_nameserver(resolv_conf) or (first.dns_ip if first else "") or "127.0.0.1"
    domain = first.cluster_domain if first else "cluster.local"
    resolver = ClusterResolver(nameserver, domain, settings.connect.dns_timeout)

    direct = None
    if args.direct_listen:
        try:
            identity = await asyncio.to_thread(
                tls.ensure_identity, kube, args.namespace, settings.connect.manager_tls_days)
            direct = (args.direct_listen, identity)
        except Exception:  # e.g. an install without the Role: the port-forward path only
            log.exception("no direct connect: cannot keep the TLS certificate")
    server = ManagerServer(facts, resolver, args.namespace, listen=args.listen, kube=kube,
                           agent_image=args.agent_image or None, direct=direct)
    raw = None
    if direct is not None and args.raw_dial_listen:
        raw = RawDials(server.state, direct[1], args.raw_dial_listen, settings.connect)
        try:  # before the first arrival, so that every session is told the port
            server.servicer.raw_dial_port = await raw.start()
        except CannotServeRawDials as exc:  # direct connect tunnels through gRPC then
            log.error("%s", exc)
            raw = None
    try:
        await server.start()
    except CannotServe as exc:
        log.error("%s", exc)
        return 1
    try:
        await until_stopped()
        log.info("stopping")
    finally:
        if raw is not None:
            await raw.stop()
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tp_cluster.manager",
                                     description="tp-jupyter traffic-manager")
    parser.add_argument("--listen", default=f"[::]:{GRPC_PORT}",
                        help="gRPC address (default %(default)s)")
    parser.add_argument("--direct-listen", default=f"[::]:{DIRECT_PORT}",
                        help="TLS gRPC address for direct connect (default %(default)s; "
                             "'' turns it off)")
    parser.add_argument("--raw-dial-listen", default=f"[::]:{RAW_DIAL_PORT}",
                        help="TLS address of raw dials for direct connect (default "
                             "%(default)s; '' turns them off)")
    parser.add_argument("--namespace", default=os.environ.get("TP_MANAGER_NAMESPACE",
                                                              "ambassador"),
                        help="the manager's namespace (default $TP_MANAGER_NAMESPACE)")
    parser.add_argument("--resolv-conf", default="/etc/resolv.conf",
                        help="the pod's resolver configuration")
    parser.add_argument("--agent-image", default=os.environ.get("TP_AGENT_IMAGE", ""),
                        help="traffic-agent image to inject (default: the one of this "
                             "version, or $TP_AGENT_IMAGE)")
    parser.add_argument("--log-level", default=os.environ.get("TP_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # its recent log, for `tp gather-logs` (GatherLogs)
    logs.BUFFER.install(get_settings().connect.manager_log_buffer)
    if get_settings().connect.manager_uvloop:
        import uvloop

        return uvloop.run(serve(args))
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
