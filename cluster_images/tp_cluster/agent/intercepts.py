"""The intercepts the agent routes, per listener port, swapped atomically on each change.

Readers (connections) look up the current tuple without locks: the link replaces
the whole mapping when a snapshot arrives, and one request sees one consistent view.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tp_protocol import manager_pb2 as pb

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Intercept:
    id: str
    name: str
    client_session: str
    port: int                 # the agent's listener port
    is_global: bool           # every TCP connection goes to the client
    matchers: tuple[tuple[bytes, re.Pattern[bytes]], ...] = ()
    mirror: bool = False      # `tp wiretap`: the app answers; the client gets a copy
    path_equal: bytes = b""
    path_prefix: bytes = b""
    path_regex: re.Pattern[bytes] | None = None
    methods: frozenset[bytes] = frozenset()
    owner: str = ""           # the developer (Kubernetes username), for traffic rows
    link_key: str = ""        # what a daemon's direct link must show (link_server)

    @classmethod
    def from_info(cls, info: Any, port: int) -> Intercept:
        """From a pb.InterceptInfo; re.error if a regex does not compile."""
        spec = info.spec
        is_global = (spec.mechanism in (pb.MECHANISM_TCP, pb.MECHANISM_UNSPECIFIED)
                     and not spec.mirror)
        matchers = tuple((m.name.lower().encode("latin-1"), re.compile(m.regex.encode()))
                         for m in spec.header_matches)
        return cls(info.id, spec.name, info.client_session, port, is_global, matchers,
                   mirror=spec.mirror, path_equal=spec.path_equal.encode(),
                   path_prefix=spec.path_prefix.encode(),
                   path_regex=re.compile(spec.path_regex.encode()) if spec.path_regex else None,
                   methods=frozenset(m.upper().encode() for m in spec.methods),
                   owner=spec.owner, link_key=info.link_key)

    def matches(self, headers: Headers, method: bytes = b"", target: bytes = b"") -> bool:
        """All KEY=REGEX pairs hold (each: re.search against any value of that header),
        and the path (without the query) and method filters."""
        if self.methods and method.upper() not in self.methods:
            return False
        if self.path_equal or self.path_prefix or self.path_regex is not None:
            path = target.partition(b"?")[0]
            if self.path_equal and path != self.path_equal:
                return False
            if self.path_prefix and not path.startswith(self.path_prefix):
                return False
            if self.path_regex is not None and not self.path_regex.search(path):
                return False
        for name, regex in self.matchers:
            if not any(h == name and regex.search(v) for h, v in headers):
                return False
        return True


class Registry:
    """port -> the intercepts active on it (global first)."""

    def __init__(self) -> None:
        self._by_port: dict[int, tuple[Intercept, ...]] = {}
        self.on_change: list[Callable[[], None]] = []

    def replace(self, intercepts: Iterable[Intercept]) -> None:
        by_port: dict[int, list[Intercept]] = {}
        for ic in intercepts:
            by_port.setdefault(ic.port, []).append(ic)
        self._by_port = {port: tuple(sorted(ics, key=lambda i: (not i.is_global, i.id)))
                         for port, ics in by_port.items()}
        for callback in self.on_change:
            callback()

    def on_port(self, port: int) -> tuple[Intercept, ...]:
        return self._by_port.get(port, ())

    def global_on(self, port: int) -> Intercept | None:
        ics = self._by_port.get(port, ())
        return ics[0] if ics and ics[0].is_global else None

    def route(self, port: int, headers: Headers, method: bytes = b"",
              target: bytes = b"") -> Intercept | None:
        """The intercept that takes this request (global, else the first match), or None.
        Mirrors take nothing: see `mirrors`."""
        for ic in self._by_port.get(port, ()):
            if ic.is_global or (not ic.mirror and ic.matches(headers, method, target)):
                return ic
        return None

    def mirrors(self, port: int, headers: Headers, method: bytes,
                target: bytes) -> list[Intercept]:
        """The mirrors that want a copy of this request."""
        return [ic for ic in self._by_port.get(port, ())
                if ic.mirror and ic.matches(headers, method, target)]

    def all(self) -> list[Intercept]:
        return [ic for ics in self._by_port.values() for ic in ics]
