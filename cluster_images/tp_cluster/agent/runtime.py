"""The agent as a whole: listeners + manager link, started and stopped in order."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tp_protocol import manager_pb2 as pb
from tp_protocol.aio import spawn
from tp_protocol.settings import InterceptSettings, get_settings

from tp_cluster.agent import TunnelFailed
from tp_cluster.agent.config import AgentConfig
from tp_cluster.agent.forward import Listener
from tp_cluster.agent.http import Context
from tp_cluster.agent.intercepts import Intercept, Registry
from tp_cluster.agent.link import Link
from tp_cluster.agent.link_server import LinkServer
from tp_cluster.agent.mirror import Mirrors
from tp_cluster.agent.relay import AgentRelay
from tp_cluster.agent.tunnel import AgentTunnel
from tp_cluster.agent.volumes import SftpServer, VolumeServer

log = logging.getLogger(__name__)


class Agent:
    """`start` serves the ports at once and arrives at the manager in the background."""

    def __init__(self, config: AgentConfig, settings: InterceptSettings | None = None) -> None:
        self.config = config
        self.settings = settings or get_settings().intercept
        self.registry = Registry()
        self.volumes = VolumeServer(config.listen_host, self.settings.agent_rpc_timeout,
                                    config.mount_root)
        self.sftp = SftpServer(config.listen_host, self.volumes.token,
                               self.settings.agent_rpc_timeout, config.mount_root)
        self.link = Link(config, self.registry, self.settings, self.volumes, self.sftp)
        self.mirrors = Mirrors(self.settings, self.link.report,
                               frozenset(h.lower() for h in self.settings.capture_redact_headers))
        self.link.mirrors = self.mirrors
        self.registry.on_change.append(
            lambda: self.mirrors.keep({ic.id for ic in self.registry.all() if ic.mirror}))
        self.listeners: list[Listener] = []
        self.relay = AgentRelay(self.settings.relay_buffer_bytes)
        self.link_server = LinkServer(self.registry, self.settings)
        self._link_task: asyncio.Task[None] | None = None

    def _context(self, port: Any) -> Context:
        s = self.settings

        async def open_tunnel(intercept: Intercept, source: tuple[str, int]) -> AgentTunnel:
            # read the session at call time: it changes when the link arrives again
            if self.link.session is None or self.link.stub is None:
                raise TunnelFailed(f"intercept {intercept.name}: the traffic-agent has no "
                                   "session with the traffic-manager")
            return await AgentTunnel.open(
                self.link.stub, self.link.session, intercept.id, intercept.name,
                source=source, service_port=port.port, wait=s.local_dial_timeout)

        async def open_request(intercept: Intercept, source: tuple[str, int]) -> Any:
            # personal intercepts' requests: on the owner's direct link when it has one,
            # else sent with the dial on the manager's Relay stream
            direct = self.link_server.open(
                intercept, pb.ToClient(intercept_id=intercept.id, source_ip=source[0],
                                       source_port=source[1], service_port=port.port),
                wait=s.local_dial_timeout, fallback=lambda: open_tunnel(intercept, source))
            if direct is not None:
                return direct
            if self.link.session is None or self.link.stub is None:
                raise TunnelFailed(f"intercept {intercept.name}: the traffic-agent has no "
                                   "session with the traffic-manager")
            conn = self.relay.open(
                self.link.stub, self.link.session, f"intercept {intercept.name}",
                pb.ToClient(intercept_id=intercept.id, source_ip=source[0],
                            source_port=source[1], service_port=port.port),
                wait=s.local_dial_timeout, fallback=lambda: open_tunnel(intercept, source))
            # a keep-alive caller moves to the owner's link once it opens
            conn.superseded = lambda: self.link_server.stream_for(intercept) is not None
            return conn

        return Context(
            port=port.port, app_port=port.app_port, workload=self.config.name,
            namespace=self.config.namespace, pod=self.config.pod_name, chunk=s.agent_chunk,
            max_head=s.agent_max_head_bytes, body_limit=s.capture_body_limit,
            app_dial_timeout=s.agent_app_dial_timeout,
            tunnel_close_timeout=s.agent_tunnel_close_timeout,
            route=self.registry.route, open_tunnel=open_tunnel, report=self.link.report,
            redact=frozenset(h.lower() for h in s.capture_redact_headers),
            port_name=port.name, mirrors=self.mirrors, mirror_route=self.registry.mirrors,
            mirror_body_limit=s.mirror_body_limit, open_request=open_request)

    async def start(self) -> list[int]:
        """Listen on every port (returns them), then start the manager link."""
        ports = []
        for port in self.config.ports:
            listener = Listener(self._context(port), self.registry, self.config.listen_host,
                                self.settings.agent_sniff_timeout,
                                self.settings.agent_retire_idle)
            ports.append(await listener.start())
            self.listeners.append(listener)
        await self.volumes.start()
        await self.sftp.start()
        self.link.link_port = await self.link_server.start()
        self._link_task = spawn(self.link.run(), "agent-link", log)
        return ports

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, let connections finish (`grace`), depart, stop the link."""
        await asyncio.gather(*(listener.stop(grace) for listener in self.listeners))
        await self.volumes.stop()
        await self.sftp.stop()
        await self.mirrors.stop()
        self.relay.close()
        await self.link_server.stop()
        if self._link_task is not None:
            await self.link.stop(self._link_task)
        log.info("traffic-agent stopped")
