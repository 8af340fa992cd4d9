"""The agent serves the app's volumes only to whoever presents its token."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

from tp_cluster.agent.volumes import VolumeServer


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
