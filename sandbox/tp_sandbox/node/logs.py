"""Container logs in the CRI format, bounded, with the previous instance kept.

Each line of ``pods/<uid>/<container>.log`` is ``<RFC3339Nano> <stream> <F|P> <text>``
(P: partial line, continued by the next record), as a real kubelet's runtime writes.
When a container restarts the file moves to ``<container>.previous.log``
(``kubectl logs --previous``). A file over the limit keeps its newer half.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path


def now_rfc3339nano() -> str:
    t = datetime.datetime.now(datetime.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


def log_paths(pod_dir: Path, container: str) -> tuple[Path, Path]:
    """(current, previous) log files of a container."""
    return pod_dir / f"{container}.log", pod_dir / f"{container}.previous.log"


class LogWriter:
    """Appends stdout/stderr chunks of one container instance as CRI records."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._f = open(path, "ab", buffering=0)  # noqa: SIM115 -- kept open for the instance's life
        self._size = path.stat().st_size

    def write(self, stream: str, data: bytes) -> None:
        ts = now_rfc3339nano().encode()
        tag = stream.encode()
        lines = data.split(b"\n")
        out = bytearray()
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if last and not line:
                break  # data ended with a newline
            out += ts + b" " + tag + (b" P " if last else b" F ") + line + b"\n"
        self._f.write(out)
        self._size += len(out)
        if self._size > self.max_bytes:
            self._shrink()

    def _shrink(self) -> None:
        """Keep the newer half, starting at a record boundary."""
        self._f.close()
        with open(self.path, "rb") as f:
            f.seek(max(0, self._size - self.max_bytes // 2))
            tail = f.read()
        cut = tail.find(b"\n")
        tail = tail[cut + 1:] if cut >= 0 else b""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(tail)
        os.replace(tmp, self.path)
        self._f = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self._size = len(tail)

    def close(self) -> None:
        self._f.close()


def rotate(pod_dir: Path, container: str) -> None:
    """A new instance starts: the current log becomes the previous one."""
    current, previous = log_paths(pod_dir, container)
    if current.exists():
        os.replace(current, previous)


def parse_records(data: bytes) -> Iterator[tuple[str, str, bytes, bool]]:
    """(timestamp, stream, text, full-line) of each complete record in `data`."""
    for raw in data.split(b"\n"):
        parts = raw.split(b" ", 3)
        if len(parts) < 3:
            continue
        text = parts[3] if len(parts) == 4 else b""
        yield parts[0].decode(), parts[1].decode(), text, parts[2] == b"F"


def render(data: bytes, timestamps: bool) -> bytes:
    """What `kubectl logs` shows for these records (partial lines joined)."""
    out = bytearray()
    at_line_start = True
    for ts, _stream, text, full in parse_records(data):
        if timestamps and at_line_start:
            out += ts.encode() + b" "
        out += text
        if full:
            out += b"\n"
        at_line_start = full
    return bytes(out)


def tail_records(data: bytes, lines: int) -> bytes:
    """The records of the last `lines` full lines."""
    if lines <= 0:
        return b""
    records = data.split(b"\n")
    if records and records[-1] == b"":
        records.pop()
    count = 0
    start = len(records)
    for i in range(len(records) - 1, -1, -1):
        parts = records[i].split(b" ", 3)
        if len(parts) >= 3 and parts[2] == b"F":
            if count == lines:
                break
            count += 1
        start = i
    return b"\n".join(records[start:]) + (b"\n" if start < len(records) else b"")
