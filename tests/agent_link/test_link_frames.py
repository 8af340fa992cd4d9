"""Link frames: RelayBatch messages with a length in front, however the stream cuts them."""

from __future__ import annotations

import pytest
from tp_protocol import linkframes
from tp_protocol import manager_pb2 as mpb


def _batches() -> list[mpb.RelayBatch]:
    return [mpb.RelayBatch(frames=[linkframes.hello([("c-1:alice", "k" * 32)])]),
            mpb.RelayBatch(frames=[mpb.RelayFrame(conn=7, data=b"x" * 70_000),
                                   mpb.RelayFrame(conn=8, data=b"GET / HTTP/1.1\r\n\r\n")]),
            mpb.RelayBatch()]


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 1000, 1 << 20])
def test_batches_come_out_whole_and_in_order_whatever_the_chunk_size(cut: int) -> None:
    wire = b"".join(linkframes.encode(b) for b in _batches())
    decoder = linkframes.Decoder(1 << 20)
    got = []
    for i in range(0, len(wire), cut):
        got += decoder.feed(memoryview(wire)[i:i + cut])
    assert got == _batches()


def test_a_frame_larger_than_the_limit_ends_the_link() -> None:
    decoder = linkframes.Decoder(1000)
    with pytest.raises(linkframes.LinkFrameError, match="exceeds 1000 bytes"):
        decoder.feed(linkframes.encode(_batches()[1])[:8])


def test_bytes_that_are_not_a_relay_batch_are_refused() -> None:
    decoder = linkframes.Decoder(1000)
    with pytest.raises(linkframes.LinkFrameError, match="not a RelayBatch"):
        decoder.feed(linkframes.HEADER.pack(4) + b"\xff\xff\xff\xff")
