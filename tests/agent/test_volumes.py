"""The agent serves the app's volumes only to whoever presents its token."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

from tp_cluster.agent.volumes import SftpServer, VolumeServer


async def _read(port: int, line: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(line)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_the_right_token_gets_a_tar_of_the_mount_root_and_a_wrong_one_nothing(
        tmp_path: Path) -> None:
    (tmp_path / "var" / "data").mkdir(parents=True)
    (tmp_path / "var" / "data" / "config.txt").write_text("color=blue\n")
    server = VolumeServer("127.0.0.1", 2.0, str(tmp_path))
    port = await server.start()
    try:
        assert await _read(port, b"guess\n") == b""
        data = await _read(port, server.token.encode() + b"\n")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = tar.extractfile("var/data/config.txt")
            assert member is not None and member.read() == b"color=blue\n"
    finally:
        await server.stop()


async def test_an_agent_without_volumes_sends_an_empty_archive(tmp_path: Path) -> None:
    server = VolumeServer("127.0.0.1", 2.0, str(tmp_path / "absent"))
    port = await server.start()
    try:
        data = await _read(port, server.token.encode() + b"\n")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            assert tar.getnames() == []
    finally:
        await server.stop()


async def test_sftp_serves_the_mount_root_to_the_token_only_and_nothing_outside_it(
        tmp_path: Path) -> None:
    import asyncssh

    root = tmp_path / "root"
    (root / "var" / "data").mkdir(parents=True)
    (root / "var" / "data" / "config.txt").write_text("color=blue\n")
    (tmp_path / "secret.txt").write_text("outside")
    server = SftpServer("127.0.0.1", "the-token", 5.0, str(root))
    port = await server.start()
    try:
        try:
            await asyncssh.connect("127.0.0.1", port, username="tp", password="guess",
                                   known_hosts=None)
            raise AssertionError("a wrong token logged in")
        except asyncssh.PermissionDenied:
            pass
        async with asyncssh.connect("127.0.0.1", port, username="tp", password="the-token",
                                    known_hosts=None) as conn, conn.start_sftp_client() as sftp:
            async with sftp.open("/var/data/config.txt") as f:
                assert await f.read() == "color=blue\n"
            async with sftp.open("/var/data/new.txt", "w") as f:
                await f.write("from the laptop\n")
            assert (root / "var" / "data" / "new.txt").read_text() == "from the laptop\n"
            assert not await sftp.exists("/../secret.txt")  # chrooted
            # SFTP only: no shell or command
            try:
                await conn.run("id", check=True)
                raise AssertionError("a command ran")
            except (asyncssh.ChannelOpenError, asyncssh.ProcessError):
                pass
    finally:
        await server.stop()
