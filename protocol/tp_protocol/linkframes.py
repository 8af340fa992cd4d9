"""Agent links' framing (manager.proto "Agent links"): the Relay's `RelayBatch` messages
over a plain byte stream (a pod port-forward), each preceded by its length.

Only the transport differs from the `Relay` gRPC stream: the frames and their rules are
the same, so both ends reuse their Relay code and only read and write batches here.
"""

from __future__ import annotations

import struct
from typing import Any

from tp_protocol import manager_pb2 as mpb

HEADER = struct.Struct(">I")


class LinkFrameError(Exception):
    """The byte stream does not carry link frames (too big, or not a RelayBatch)."""


def encode(batch: Any) -> bytes:
    """One RelayBatch with its 4-byte big-endian length in front."""
    data: bytes = batch.SerializeToString()
    return HEADER.pack(len(data)) + data


def decode_body(body: bytes | bytearray | memoryview) -> Any:
    try:
        return mpb.RelayBatch.FromString(bytes(body))
    except Exception as exc:  # protobuf's DecodeError
        raise LinkFrameError(f"a link frame is not a RelayBatch: {exc}") from exc


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise LinkFrameError(f"a link frame of {size} bytes exceeds {limit} bytes")


class Decoder:
    """Batches out of the chunks a stream delivers, in order (for streams that are not
    asyncio StreamReaders, e.g. a port-forward WebSocket)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes | memoryview) -> list[Any]:
        self._buf += data
        batches = []
        start = 0
        buf = self._buf
        while len(buf) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(buf, start)
            check_size(size, self.limit)
            end = start + HEADER.size + size
            if end > len(buf):
                break
            with memoryview(buf) as view:   # released before the buffer shrinks
                batches.append(decode_body(view[start + HEADER.size:end]))
            start = end
        if start:
            del self._buf[:start]
        return batches


def hello(keys: list[tuple[str, str]], note: str = "") -> Any:
    """A `link_hello` frame: (intercept id, key) pairs (the agent's answer: keys blank)."""
    return mpb.RelayFrame(link_hello=mpb.LinkHello(
        keys=[mpb.LinkKey(intercept_id=i, key=k) for i, k in keys], note=note))
