"""The kubelet API on a unix socket (aiohttp), relayed by the API server.

    GET /containerLogs/{ns}/{pod}/{container}?follow&tailLines&previous&timestamps
    GET /exec/{ns}/{pod}/{container}?command=..&stdin&stdout&stderr&tty   (WebSocket)
    GET /portForward/{ns}/{pod}?ports=P[&ports=Q]                         (WebSocket)

WebSocket frames carry a leading channel byte. exec: 0 stdin, 1 stdout, 2 stderr,
3 status (v4+: a JSON `Status`), 4 resize, 255 close (v5). portForward (v4): data
channel 2i and error channel 2i+1 for the i-th port; the first frame we send on each
is the port as 2 bytes little-endian.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from tp_protocol.settings import get_settings

from .. import netns
from .kubelet import Kubelet
from .logs import log_paths, render, tail_records
from .pods import PodWorker
from .runtime import exec_argv

log = logging.getLogger(__name__)

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _status(code: int) -> bytes:
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps({
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }).encode()


def _failure(message: str) -> bytes:
    return json.dumps({"metadata": {}, "status": "Failure", "message": message,
                       "reason": "InternalError", "code": 500}).encode()


class KubeletServer:
    """aiohttp application around a `Kubelet`."""

    def __init__(self, kubelet: Kubelet, socket_path: Path) -> None:
        self.kubelet = kubelet
        self.socket_path = socket_path
        self.chunk = get_settings().node.stream_chunk
        self.app = web.Application()
        self.app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        self.app.router.add_get("/exec/{ns}/{pod}/{container}", self.exec)
        self.app.router.add_post("/exec/{ns}/{pod}/{container}", self.exec)
        self.app.router.add_get("/portForward/{ns}/{pod}", self.port_forward)
        self.app.router.add_post("/portForward/{ns}/{pod}", self.port_forward)
        self.app.router.add_get("/healthz", self.healthz)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.socket_path)).start()
        os.chmod(self.socket_path, 0o600)
        log.info("kubelet API on %s", self.socket_path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _pod(self, request: web.Request) -> PodWorker:
        ns, name = request.match_info["ns"], request.match_info["pod"]
        worker = self.kubelet.find(ns, name)
        if worker is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found in namespace "{ns}" '
                                        "on this node\n")
        return worker

    # -- logs --------------------------------------------------------------------------
    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        worker = self._pod(request)
        name = request.match_info["container"]
        cs = worker.container(name)
        if cs is None:
            raise web.HTTPNotFound(text=f"container {name} is not valid for pod {worker.name}\n")
        current, previous = log_paths(worker.dir, name)
        path = previous if _flag(request, "previous") else current
        if not path.exists():
            which = "previous terminated" if _flag(request, "previous") else "current"
            raise web.HTTPBadRequest(text=f'{which} container "{name}" in pod "{worker.name}" '
                                          "has no log (not started yet?)\n")
        timestamps = _flag(request, "timestamps")
        tail = request.query.get("tailLines")
        follow = _flag(request, "follow") and not _flag(request, "previous")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(request)
        f = await asyncio.to_thread(path.open, "rb")
        try:
            inode = os.fstat(f.fileno()).st_ino
            data = await asyncio.to_thread(f.read)
            end = data.rfind(b"\n") + 1
            data, pending = data[:end], data[end:]
            if tail is not None and tail.lstrip("-").isdigit() and int(tail) >= 0:
                data = tail_records(data, int(tail))
            await resp.write(render(data, timestamps))
            proc = cs.proc
            while follow:
                chunk = f.read(self.chunk)
                if chunk:
                    pending += chunk
                    end = pending.rfind(b"\n") + 1
                    if end:
                        await resp.write(render(pending[:end], timestamps))
                        pending = pending[end:]
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    break
                if st.st_ino != inode:
                    break  # rotated: a new instance started
                if st.st_size < f.tell():
                    f.seek(0)  # shrunk to its newer half
                    pending = b""
                    continue
                if proc is None or proc.exit_code is not None or worker.stopped.is_set():
                    break
                await asyncio.sleep(get_settings().node.log_follow_poll)
        finally:
            f.close()
        await resp.write_eof()
        return resp

    # -- exec --------------------------------------------------------------------------
    async def exec(self, request: web.Request) -> web.StreamResponse:
        worker = self._pod(request)
        name = request.match_info["container"]
        cs = worker.container(name)
        command = request.query.getall("command", [])
        if cs is None or cs.proc is None or cs.proc.exit_code is not None:
            raise web.HTTPBadRequest(text=f"container {name} is not running in pod "
                                          f"{worker.name}: wait for it to start\n")
        if not command:
            raise web.HTTPBadRequest(text="exec needs a command: add ?command=...\n")
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        protocol = ws.ws_protocol or "channel.k8s.io"
        want_stdin = _flag(request, "stdin")
        try:
            proc = await asyncio.create_subprocess_exec(
                *exec_argv(cs.proc.pid, command), env=worker.env_of(name),
                stdin=asyncio.subprocess.PIPE if want_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)
        except OSError as exc:
            if protocol != "channel.k8s.io":
                await ws.send_bytes(bytes([ERROR]) + _failure(str(exc)))
            await ws.close()
            return ws
        worker.exec_procs.add(proc)
        send_lock = asyncio.Lock()

        async def pump(reader: asyncio.StreamReader | None, channel: int) -> None:
            assert reader is not None
            while data := await reader.read(self.chunk):
                async with send_lock:
                    await ws.send_bytes(bytes([channel]) + data)

        async def feed() -> None:
            async for msg in ws:
                # The official Python client sends str stdin as TEXT frames.
                if msg.type == WSMsgType.TEXT:
                    raw = msg.data.encode()
                elif msg.type == WSMsgType.BINARY:
                    raw = msg.data
                else:
                    continue
                if not raw:
                    continue
                channel, payload = raw[0], raw[1:]
                if channel == STDIN and proc.stdin is not None and payload:
                    proc.stdin.write(payload)
                    await proc.stdin.drain()
                elif channel == CLOSE and payload[:1] == bytes([STDIN]) and proc.stdin:
                    proc.stdin.close()
            # The client went away: nobody is left to read the output.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

        feeder = asyncio.create_task(feed(), name=f"exec-stdin-{worker.name}")
        try:
            await asyncio.gather(pump(proc.stdout, STDOUT), pump(proc.stderr, STDERR))
            code = await proc.wait()
            if protocol != "channel.k8s.io":
                async with send_lock:
                    await ws.send_bytes(bytes([ERROR]) + _status(code))
        except (ConnectionError, RuntimeError) as exc:
            log.info("exec in %s/%s ended early: %s", worker.ns, worker.name, exc)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        except BrokenPipeError:
            pass
        finally:
            worker.exec_procs.discard(proc)
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder
            await ws.close()
        return ws

    # -- port-forward ------------------------------------------------------------------
    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        worker = self._pod(request)
        ports: list[int] = []
        for value in request.query.getall("ports", []):
            for p in value.split(","):
                if not p.strip().isdigit() or not 0 < int(p) < 65536:
                    raise web.HTTPBadRequest(text=f"invalid port {p!r}: use 1-65535\n")
                ports.append(int(p))
        if not ports:
            raise web.HTTPBadRequest(text="portForward needs ?ports=PORT\n")
        ws = web.WebSocketResponse(protocols=PORTFORWARD_PROTOCOLS, max_msg_size=0,
                                   autoping=True)
        await ws.prepare(request)
        send_lock = asyncio.Lock()
        writers: dict[int, asyncio.StreamWriter] = {}
        pumps: list[asyncio.Task[Any]] = []

        async def send(channel: int, data: bytes) -> None:
            async with send_lock:
                await ws.send_bytes(bytes([channel]) + data)

        async def connect(i: int, port: int) -> None:
            for ch in (2 * i, 2 * i + 1):
                await send(ch, port.to_bytes(2, "little"))
            sock = netns.socket_in(worker.netns)
            # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP, and this
            # one has proto 0: without it Nagle holds gRPC's second small frame until the
            # pod's delayed ACK (~40 ms per new stream through the port-forward).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            except OSError as exc:
                sock.close()
                await send(2 * i + 1, f"error forwarding port {port} to pod {worker.name}: "
                                      f"{exc.strerror or exc}".encode())
                return
            reader, writer = await asyncio.open_connection(sock=sock, limit=self.chunk * 4)
            writers[2 * i] = writer
            pumps.append(asyncio.create_task(pump(reader, 2 * i),
                                             name=f"portforward-{worker.name}-{port}"))

        async def pump(reader: asyncio.StreamReader, channel: int) -> None:
            while data := await reader.read(self.chunk):
                await send(channel, data)

        try:
            for i, port in enumerate(ports):
                await connect(i, port)

            async def from_client() -> None:
                async for msg in ws:
                    if msg.type != WSMsgType.BINARY or not msg.data:
                        continue
                    w = writers.get(msg.data[0])
                    if w is not None and len(msg.data) > 1:
                        w.write(msg.data[1:])
                        await w.drain()

            client = asyncio.create_task(from_client(), name=f"portforward-in-{worker.name}")
            waiting: set[asyncio.Task[Any]] = {client, *pumps}
            # Done when the client leaves, or every pod-side connection has ended.
            while waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if not t.cancelled() and t.exception() is not None:
                        log.info("port-forward to %s: %s", worker.name, t.exception())
                if client in done or not (waiting - {client}):
                    break
            for t in [client, *pumps]:
                t.cancel()
        except (ConnectionError, RuntimeError) as exc:
            log.info("port-forward to %s ended: %s", worker.name, exc)
        finally:
            for w in writers.values():
                w.close()
            await ws.close()
        return ws
