"""The tail of a log, cut at a line start: what `tp gather-logs` keeps of each component
(the manager for its own and the agents' logs, the front for the daemon's)."""

from __future__ import annotations


def tail(data: bytes, max_bytes: int) -> tuple[bytes, bool]:
    """The last `max_bytes` of `data`, cut at a line start when one is near; truncated?"""
    if len(data) <= max_bytes:
        return data, False
    cut = data[-max_bytes:]
    newline = cut.find(b"\n")
    if 0 <= newline < len(cut) - 1:
        cut = cut[newline + 1:]
    return cut, True
