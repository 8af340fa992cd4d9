"""The port-forward WebSocket's masking (RFC 6455 5.3): Python's XOR for small frames
and until aiohttp's C helper is imported, which the first large frame starts."""

from __future__ import annotations

import os

from sandbox_testing import wait_for
from tp_daemon.podws import _SMALL, _Masker


def _rfc6455(key: bytes, data: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def test_every_length_is_masked_as_rfc_6455_says_before_and_after_the_c_helper() -> None:
    masker = _Masker()
    key = os.urandom(4)
    lengths = [0, 1, 2, 3, 4, 5, 125, 126, 127, 4095, _SMALL]
    for n in lengths:  # Python's XOR (no large frame yet)
        data = os.urandom(n)
        masked = bytearray(data)
        masker(key, masked)
        assert bytes(masked) == _rfc6455(key, data), n
    assert masker._importing is None   # small frames alone never import aiohttp
    big = os.urandom(_SMALL + 3)
    masked = bytearray(big)
    masker(key, masked)                # starts the import, masked by the XOR meanwhile
    assert bytes(masked) == _rfc6455(key, big)
    wait_for(lambda: masker._c is not None, 30, "aiohttp's C mask")
    for n in [*lengths, 65536, 65537]:
        data = os.urandom(n)
        masked = bytearray(data)
        masker(key, masked)
        assert bytes(masked) == _rfc6455(key, data), n
