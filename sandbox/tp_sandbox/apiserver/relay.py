"""pods/log, pods/exec and pods/portforward: relayed to the kubelet API on a unix socket.

Logs are streamed through; exec and portforward are WebSocket relays that offer the
kubelet the client's subprotocols, accept the client with the one the kubelet chose,
and pass frames as they come (no re-chunking), closing both ends together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import MultiDict
from tp_protocol.settings import ApiServerSettings

from tp_sandbox.apiserver import errors, spdy

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def pick_container(pod: Obj, requested: str | None) -> str:
    name = pod["metadata"]["name"]
    containers = [c.get("name") for c in pod.get("spec", {}).get("containers") or []]
    if requested:
        known = containers + [c.get("name") for c in
                              pod.get("spec", {}).get("initContainers") or []]
        if requested not in known:
            raise errors.BadRequest(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return str(containers[0])
    default = (pod["metadata"].get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container")
    if default in containers:
        return str(default)
    raise errors.BadRequest(f"a container name must be specified for pod {name}, choose one "
                            f"of: [{' '.join(str(c) for c in containers)}]")


def require_node(pod: Obj) -> None:
    if not pod.get("spec", {}).get("nodeName"):
        raise errors.BadRequest(f"pod {pod['metadata']['name']} does not have a host assigned: "
                                "wait until it is scheduled")


class KubeletRelay:
    def __init__(self, socket_path: Path, settings: ApiServerSettings) -> None:
        self._socket = socket_path
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # no pool limit (aiohttp's default is 100): each open port-forward, exec
                # or log stream holds one connection, and a real API server caps none
                connector=aiohttp.UnixConnector(path=str(self._socket), limit=0),
                timeout=aiohttp.ClientTimeout(total=None,
                                              sock_connect=self._settings.kubelet_connect_timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _unreachable(self, exc: Exception) -> errors.ApiError:
        return errors.ApiError(f"error dialing backend: the kubelet API at {self._socket} is "
                               f"not reachable ({exc}): is the sandbox node running?")

    async def logs(self, request: web.Request, ns: str, pod: str, container: str
                   ) -> web.StreamResponse:
        params = {k: v for k, v in request.query.items()
                  if k in ("follow", "tailLines", "previous", "timestamps", "sinceSeconds",
                           "sinceTime", "limitBytes")}
        try:
            upstream = await self._client().get(
                f"http://kubelet/containerLogs/{ns}/{pod}/{container}", params=params)
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        async with upstream:
            if upstream.status >= 400:
                text = (await upstream.text()).strip()
                err = errors.BadRequest(text or f"kubelet answered {upstream.status}")
                err.code = upstream.status if upstream.status < 500 else 500
                raise err
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientPayloadError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            return resp

    async def websocket(self, request: web.Request, kubelet_path: str,
                        params: MultiDict[str]) -> web.StreamResponse:
        protocols = [p.strip() for p in
                     request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise errors.BadRequest("Upgrade request required: connect with a WebSocket "
                                    "(subprotocol v4.channel.k8s.io)")
        max_msg = self._settings.relay_max_message
        try:
            upstream = await self._client().ws_connect(
                f"http://kubelet{kubelet_path}", params=params, protocols=protocols,
                max_msg_size=max_msg, autoping=True, compress=0)
        except aiohttp.WSServerHandshakeError as exc:
            raise errors.BadRequest(f"the kubelet refused the stream: {exc.message}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        chosen = upstream.protocol
        down = web.WebSocketResponse(protocols=[chosen] if chosen else (),
                                     max_msg_size=max_msg, autoping=True, compress=False)
        try:
            await down.prepare(request)
        except Exception:
            await upstream.close()
            raise
        await _pump_both(down, upstream)
        return down


    async def spdy_port_forward(self, request: web.Request, ns: str, pod: str
                                ) -> web.StreamResponse:
        """kubectl's SPDY-in-WebSocket port-forward, one kubelet stream per connection."""
        max_msg = self._settings.relay_max_message

        async def open_kubelet(port: int) -> aiohttp.ClientWebSocketResponse:
            return await self._client().ws_connect(
                f"http://kubelet/portForward/{ns}/{pod}", params={"ports": str(port)},
                protocols=["v4.channel.k8s.io"], max_msg_size=max_msg, compress=0)

        down = web.WebSocketResponse(protocols=[spdy.PROTOCOL], max_msg_size=max_msg,
                                     compress=False)
        await down.prepare(request)
        try:
            await spdy.Tunnel(down, open_kubelet).run()
        finally:
            await down.close()
        return down


async def _pump(src: Any, dst: Any) -> None:
    async for msg in src:
        if msg.type == aiohttp.WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        elif msg.type == aiohttp.WSMsgType.TEXT:
            await dst.send_str(msg.data)
        else:
            break


async def _pump_both(down: web.WebSocketResponse, up: aiohttp.ClientWebSocketResponse
                     ) -> None:
    tasks = [asyncio.create_task(_pump(down, up), name="relay-client-to-kubelet"),
             asyncio.create_task(_pump(up, down), name="relay-kubelet-to-client")]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t.exception() is not None and not isinstance(
                    t.exception(), (ConnectionResetError, aiohttp.ClientConnectionResetError)):
                log.warning("relay %s failed: %r", t.get_name(), t.exception())
    finally:
        # Close both ends together: whichever side ended, the other learns of it.
        code = up.close_code if up.closed and up.close_code else 1000
        # 1005/1006/1015 only describe a close locally; RFC 6455 (7.4.1) forbids sending
        # them, and clients refuse a frame that does (websocket-client: "Invalid close
        # opcode 1006"). A kubelet connection that broke off is a server-side error.
        code = {1005: 1000, 1006: 1011, 1015: 1011}.get(code, code)
        await asyncio.gather(down.close(code=code), up.close(), return_exceptions=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
