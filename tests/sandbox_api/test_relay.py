"""pods/log, pods/exec and pods/portforward relayed to a kubelet-shaped server on the
state dir's unix socket (the real kubelet belongs to the node component)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from apiserver_testing import ADMIN_TOKEN, Server, free_port
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream

pytestmark = pytest.mark.timeout(60)


def _kubelet_app() -> web.Application:
    async def logs(request: web.Request) -> web.StreamResponse:
        m = request.match_info
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"{m['ns']}/{m['pod']}/{m['c']} line {i}\n".encode())
        return resp

    async def exec_(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io",
                                              "channel.k8s.io"))
        await ws.prepare(request)
        cmd = " ".join(request.query.getall("command"))
        await ws.send_bytes(b"\x01" + f"ran {cmd} in {request.match_info['c']}\n".encode())
        await ws.send_bytes(b"\x03" + json.dumps({"metadata": {},
                                                  "status": "Success"}).encode())
        await ws.close()
        return ws

    async def port_forward(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",), max_msg_size=0)
        await ws.prepare(request)
        port = int(request.query["ports"])
        await ws.send_bytes(b"\x00" + struct.pack("<H", port))
        await ws.send_bytes(b"\x01" + struct.pack("<H", port))
        async for msg in ws:  # echo the data channel
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data[:1] == b"\x00":
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/containerLogs/{ns}/{pod}/{c}", logs)
    app.router.add_get("/exec/{ns}/{pod}/{c}", exec_)
    app.router.add_get("/portForward/{ns}/{pod}", port_forward)
    return app


@pytest.fixture(scope="module")
def kubelet(server: Server) -> Iterator[None]:
    sock = server.state_dir / "run" / "kubelet.sock"
    sock.parent.mkdir(exist_ok=True)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_kubelet_app())
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.UnixSite(runner, str(sock)).start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, name="fake-kubelet", daemon=True)
    t.start()
    assert ready.wait(10)
    yield
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)


@pytest.fixture
def pod(core: client.CoreV1Api, namespace: str, kubelet: None) -> str:
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
        "nodeName": "n1", "containers": [{"name": "app", "image": "busybox"}]}})
    return "p"


def test_pod_logs_are_streamed_from_the_kubelet(core: client.CoreV1Api, namespace: str,
                                                pod: str) -> None:
    text = core.read_namespaced_pod_log(pod, namespace)
    assert text.splitlines() == [f"{namespace}/p/app line {i}" for i in range(3)]


def test_logs_of_a_missing_pod_are_404_and_of_an_unscheduled_pod_400(
        core: client.CoreV1Api, namespace: str, kubelet: None) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("ghost", namespace)
    assert err.value.status == 404
    core.create_namespaced_pod(namespace, {"metadata": {"name": "u"}, "spec": {
        "containers": [{"name": "app", "image": "busybox"}]}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("u", namespace)
    assert err.value.status == 400


def test_exec_is_relayed_over_websocket(core: client.CoreV1Api, namespace: str,
                                        pod: str) -> None:
    out = stream(core.connect_get_namespaced_pod_exec, pod, namespace,
                 command=["echo", "hi"], stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "ran echo hi in app\n"


def test_port_forward_is_relayed_over_websocket(core: client.CoreV1Api, namespace: str,
                                                pod: str) -> None:
    pf = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace,
                     ports="8080")
    sock = pf.socket(8080)
    sock.settimeout(10)
    sock.sendall(b"ping")
    got = b""
    while len(got) < 4:
        got += sock.recv(4)
    assert got == b"ping"
    sock.close()
    pf.close()


def test_the_port_forward_relay_carries_32_mib_back_intact(server: Server, namespace: str,
                                                           pod: str) -> None:
    # Throughput is measured by bench/sandbox.py against direct TCP; here only correctness.
    total, chunk = 32 * 1024 * 1024, b"\x00" + b"x" * (256 * 1024)

    async def run() -> bytes:
        ctx = ssl.create_default_context(cafile=str(server.ca))
        url = (f"{server.url}/api/v1/namespaces/{namespace}/pods/{pod}/portforward"
               "?ports=9000")
        async with aiohttp.ClientSession() as session, session.ws_connect(
                url, ssl=ctx, protocols=["v4.channel.k8s.io"], max_msg_size=0,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            assert (await ws.receive_bytes()) == b"\x00" + struct.pack("<H", 9000)
            assert (await ws.receive_bytes()) == b"\x01" + struct.pack("<H", 9000)

            async def send() -> None:
                for _ in range(total // (len(chunk) - 1)):
                    await ws.send_bytes(chunk)

            sender = asyncio.create_task(send(), name="relay-test-sender")
            got = bytearray()
            while len(got) < total:
                frame = await ws.receive_bytes()
                assert frame[:1] == b"\x00", "echo arrived on another channel"
                got += frame[1:]
            await sender
            return bytes(got)

    echoed = asyncio.run(run())
    assert len(echoed) == total
    assert echoed == b"x" * total


def _kubectl(server: Server, *args: str) -> list[str]:
    kubectl_bin = shutil.which("kubectl")
    assert kubectl_bin, "needs kubectl"
    return [kubectl_bin, "--kubeconfig", str(server.kubeconfig), *args]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_exec_goes_through_the_relay(server: Server, core: client.CoreV1Api,
                                             namespace: str, pod: str) -> None:
    proc = subprocess.run(_kubectl(server, "-n", namespace, "exec", pod, "--", "echo", "hi"),
                          capture_output=True, text=True, timeout=30, check=False)
    assert (proc.returncode, proc.stdout) == (0, "ran echo hi in app\n"), proc.stderr


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_port_forward_speaks_spdy_through_the_tunnel(
        server: Server, core: client.CoreV1Api, namespace: str, pod: str) -> None:
    core.patch_namespaced_pod_status(pod, namespace, {"status": {"phase": "Running"}})
    port = free_port()
    pf = subprocess.Popen(_kubectl(server, "-n", namespace, "port-forward", f"pod/{pod}",
                                   f"{port}:80"), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        assert pf.stdout is not None
        assert "Forwarding from" in pf.stdout.readline()
        for size in (5, 4 * 1024 * 1024):  # two connections, one of them large
            payload = os.urandom(size)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                sender = threading.Thread(target=conn.sendall, args=(payload,),
                                          name="pf-sender")
                sender.start()
                got = bytearray()
                while len(got) < size:
                    chunk = conn.recv(1 << 20)
                    assert chunk, "connection closed early"
                    got += chunk
                sender.join(10)
            assert bytes(got) == payload
    finally:
        pf.terminate()
        pf.wait(10)
