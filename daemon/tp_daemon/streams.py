"""Byte streams of the daemon: the shared ones of `tp_protocol.pumps` (a `Stream` is one
bidirectional byte stream to somewhere in the cluster: a `Tunnel` through the manager,
a port-forward WebSocket, or a direct TCP connection in tests) and its listeners' stop.
"""

from __future__ import annotations

import asyncio
import contextlib

from tp_protocol.pumps import CHUNK, READ_BUFFER, Stream, TcpStream, ViewStream, splice

__all__ = ["CHUNK", "READ_BUFFER", "Stream", "TcpStream", "ViewStream", "close_server",
           "splice"]


async def close_server(server: asyncio.Server | None, conns: set[asyncio.Task[None]],
                       wait_closed: float = 2.0) -> None:
    """Stop a local listener: no new connections, cancel the accepted ones (their tasks
    are in `conns`), then wait at most `wait_closed` s for the server to be closed."""
    if server is not None:
        server.close()
    for task in list(conns):
        task.cancel()
    await asyncio.gather(*conns, return_exceptions=True)
    if server is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), wait_closed)
