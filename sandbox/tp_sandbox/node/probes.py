"""Container probes: httpGet and tcpSocket from the node (as a real kubelet, to the pod
IP), exec inside the container's namespaces. Each returns (success, message).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from .. import netns
from .kubeapi import Obj
from .runtime import exec_argv


def resolve_port(port: int | str, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"probe port {port!r} is not a named port of container {container['name']}")


async def _connect(node_netns: str, host: str, port: int, limit: float
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = netns.socket_in(node_netns)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)),
                               limit)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def tcp_probe(node_netns: str, host: str, port: int, limit: float) -> tuple[bool, str]:
    try:
        _, writer = await _connect(node_netns, host, port, limit)
    except (OSError, TimeoutError) as exc:
        return False, f"dial tcp {host}:{port}: {exc or 'timeout'}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, ""


async def http_probe(node_netns: str, host: str, port: int, probe: Obj, limit: float
                     ) -> tuple[bool, str]:
    path = probe.get("path") or "/"
    headers = {"Host": f"{host}:{port}", "User-Agent": "kube-probe/1.37", "Accept": "*/*",
               "Connection": "close"}
    for h in probe.get("httpHeaders") or []:
        headers[h["name"]] = h["value"]
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    try:
        async with asyncio.timeout(limit):
            reader, writer = await _connect(node_netns, host, port, limit)
            try:
                if probe.get("scheme", "HTTP").upper() == "HTTPS":
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    await writer.start_tls(ctx)
                writer.write((request + "\r\n").encode())
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return False, f'Get "http://{host}:{port}{path}": {exc or "timeout"}'
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"malformed HTTP response {status_line[:60]!r}"
    code = int(parts[1])
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def exec_probe(pid: int, command: list[str], env: dict[str, str], limit: float
                     ) -> tuple[bool, str]:
    proc = await asyncio.create_subprocess_exec(
        *exec_argv(pid, command), env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return False, f"command timed out after {limit}s"
    if proc.returncode == 0:
        return True, ""
    return False, f"exit code {proc.returncode}: {out.decode(errors='replace')[-200:]}"


async def run_probe(probe: Obj, container: Obj, *, node_netns: str, pod_ip: str, pid: int,
                    env: dict[str, str], default_limit: float) -> tuple[bool, str]:
    limit = float(probe.get("timeoutSeconds") or default_limit)
    try:
        if "httpGet" in probe:
            hg = probe["httpGet"]
            return await http_probe(node_netns, hg.get("host") or pod_ip,
                                    resolve_port(hg["port"], container), hg, limit)
        if "tcpSocket" in probe:
            ts = probe["tcpSocket"]
            return await tcp_probe(node_netns, ts.get("host") or pod_ip,
                                   resolve_port(ts["port"], container), limit)
        if "exec" in probe:
            return await exec_probe(pid, list(probe["exec"].get("command") or []), env, limit)
    except ValueError as exc:
        return False, str(exc)
    return False, "unsupported probe type: use httpGet, tcpSocket or exec"
