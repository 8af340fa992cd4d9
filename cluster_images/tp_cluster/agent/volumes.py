"""The app's volumes, served by the agent to the intercept's owner (see manager.proto).

The injector mounts the app container's volumes into the agent under `MOUNT_ROOT`.
`VolumeServer` listens on an ephemeral port of the pod; a client reaches it through a
manager Tunnel `dial` to pod_ip:port, sends the token this agent reported in its
ReviewIntercept and a newline, and reads one tar.gz of the mount root to EOF. A wrong
token gets the connection closed with nothing sent. The token reaches only the owning
client (the manager blanks it in other clients' listings).

`SftpServer` serves the same root live, as Telepresence does for sshfs: SSH (asyncssh,
an ephemeral host key per agent) on another ephemeral port, user "tp" with the same
token as password, SFTP only (no shell, exec or forwarding), chrooted to the mount root.
A read-only volume stays read-only: the kubelet mounted it so in this container.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import tarfile
import tempfile
from typing import IO, Any

import asyncssh

from tp_cluster.injector import MOUNT_ROOT

log = logging.getLogger(__name__)

_COPY_CHUNK = 256 * 1024


def _tar_into(root: str, out: IO[bytes]) -> None:
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            tar.add(os.path.join(root, name), arcname=name)


class VolumeServer:
    """`start` -> port; `token` is what a reader must send first."""

    def __init__(self, host: str, read_timeout: float, root: str = MOUNT_ROOT) -> None:
        self.host = host
        self.root = root
        self.read_timeout = read_timeout
        self.token = secrets.token_urlsafe(24)
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.read_timeout):
                line = await reader.readline()
            if not hmac.compare_digest(line.strip(), self.token.encode()):
                log.warning("volume request with a wrong token from %s refused",
                            writer.get_extra_info("peername"))
                return
            with tempfile.TemporaryFile() as spool:
                await asyncio.to_thread(_tar_into, self.root, spool)
                spool.seek(0)
                while chunk := await asyncio.to_thread(spool.read, _COPY_CHUNK):
                    writer.write(chunk)
                    await writer.drain()
            writer.write_eof()
            await writer.drain()
        except (OSError, TimeoutError, ValueError) as exc:
            log.info("volume request ended: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _TokenAuth(asyncssh.SSHServer):
    """Password authentication with the volume token; nothing else is accepted."""

    def __init__(self, token: str) -> None:
        self._token = token

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        ok = hmac.compare_digest(password.encode(), self._token.encode())
        if not ok:
            log.warning("SFTP login with a wrong token refused")
        return ok


class SftpServer:
    """`start` -> port; clients log in as any user with `token` as password."""

    def __init__(self, host: str, token: str, login_timeout: float,
                 root: str = MOUNT_ROOT) -> None:
        self.host = host
        self.token = token
        self.root = root
        self.login_timeout = login_timeout
        self.port = 0
        self._acceptor: Any = None

    async def start(self) -> int:
        key = asyncssh.generate_private_key("ssh-ed25519")
        root = self.root
        self._acceptor = await asyncssh.listen(
            self.host, 0, server_factory=lambda: _TokenAuth(self.token),
            server_host_keys=[key], sftp_factory=lambda chan: asyncssh.SFTPServer(
                chan, chroot=root.encode()),
            allow_scp=False, agent_forwarding=False, x11_forwarding=False,
            login_timeout=self.login_timeout)
        self.port = int(self._acceptor.get_port())
        return self.port

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
