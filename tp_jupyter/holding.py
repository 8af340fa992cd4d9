"""Hold and edit from the front: held requests as objects a cell edits and decides.

    tp_jupyter.hold("my-intercept")            # holding on for a running intercept
    tp_jupyter.hold("my-intercept", on=False)  # off: what waits goes to the cluster
    req = tp_jupyter.held()[0]                 # the oldest request waiting
    req.path = "/color?debug=1"; req.headers["x-color"] = "red"; req.body = b"..."
    req.forward(to="local")                    # or to="cluster"; the edits go along
    req.respond(418, "short and stout", {"content-type": "text/plain"})
    req.drop()                                 # its caller gets a 502 that says so

Each decision returns a `HeldOutcome`: what the caller got (status, headers, body). The
daemon holds the requests (`tp_daemon.intercepts.hold`); this module only asks it.
Errors are one-line `UsageError`s (an unknown or already answered request, a bad status).
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb

from tp_jupyter.daemon_client import DaemonClient
from tp_jupyter.errors import UsageError
from tp_jupyter.render import Rendered

_TARGETS = {"local": dpb.HELD_ACTION_FORWARD_LOCAL, "cluster": dpb.HELD_ACTION_FORWARD_CLUSTER}
_PREVIEW = 60


def _text(body: bytes, limit: int = _PREVIEW) -> str:
    text = body.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "..."


def _as_bytes(body: bytes | str | Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()   # a dict or list: sent as JSON


def _time(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix).strftime("%H:%M:%S")


@dataclass(repr=False)
class HoldResult(Rendered):
    """What `tp hold` did."""

    name: str
    on: bool
    timeout: float = 0.0
    released: int = 0

    def __str__(self) -> str:
        if self.on:
            return (f"Holding requests of intercept {self.name}: each waits for "
                    f"tp_jupyter.held() (or `tp held`); untouched for {self.timeout:g}s it "
                    "goes to the cluster")
        tail = (f"; {self.released} held request(s) went on to the cluster"
                if self.released else "")
        return f"Not holding requests of intercept {self.name} any more{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "on": self.on, "timeout": self.timeout or None,
                "released": self.released}


@dataclass(repr=False)
class HeldOutcome(Rendered):
    """What the caller of a held request got."""

    id: str
    decided: str
    status: int
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        what = {"forward local": "forwarded to local", "forward cluster":
                "forwarded to the cluster", "respond": "answered here", "drop": "dropped",
                "timeout": "forwarded to the cluster after the hold timed out"}.get(
                    self.decided, self.decided)
        if self.decided == "drop":
            got = "its caller got a 502 saying it was dropped"
        elif self.status:
            got = (f"its caller got {self.status} {self.reason}".rstrip()
                   + f" ({len(self.body)} B): {_text(self.body)!r}")
        else:
            got = "its caller got nothing"
        line = f"Held request {self.id} {what}: {got}"
        return line + (f" ({self.error})" if self.error else "")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "decided": self.decided, "status": self.status or None,
                "reason": self.reason, "headers": self.headers, "body": self.text,
                "error": self.error or None, "seconds": round(self.seconds, 3)}

    @classmethod
    def from_pb(cls, o: dpb.HeldOutcome) -> HeldOutcome:
        return cls(o.id, o.decided, o.status, o.reason, {h.name: h.value for h in o.headers},
                   bytes(o.body), o.error_text, o.seconds)


@dataclass(repr=False)
class HeldRequest(Rendered):
    """One request waiting on the workstation. Edit `method`, `path`, `headers`, `body`,
    then `forward(to=...)`; or `respond(...)`; or `drop()`."""

    id: str
    intercept: str
    workload: str
    namespace: str
    method: str
    path: str
    headers: CIMultiDict[str]   # names case-insensitive, as in HTTP
    body: bytes
    source: str = ""
    received: float = 0.0
    deadline: float = 0.0
    mode: str = "intercept"
    outcome: HeldOutcome | None = None
    _original: tuple[str, str, list[tuple[str, str]], bytes] = ("", "", [], b"")

    @classmethod
    def from_pb(cls, h: dpb.HeldRequest) -> HeldRequest:
        pairs = [(x.name, x.value) for x in h.headers]
        req = cls(h.id, h.intercept_name, h.workload, h.namespace, h.method, h.path,
                  CIMultiDict(pairs), bytes(h.body), h.source, h.received_unix,
                  h.deadline_unix, h.mode)
        req._original = (h.method, h.path, pairs, bytes(h.body))
        return req

    @property
    def text(self) -> str:
        return _as_bytes(self.body).decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(_as_bytes(self.body))

    # -- decisions

    def _decide(self, decision: dpb.HeldDecision) -> HeldOutcome:
        if self.outcome is not None:
            done = self.outcome.decided
            raise UsageError(f"held request {self.id} was already answered ({done}); pick a "
                             "waiting one from tp_jupyter.held()")
        decision.id = self.id
        with DaemonClient() as client:
            self.outcome = HeldOutcome.from_pb(client.decide_held(decision))
        return self.outcome

    def _edits(self, decision: dpb.HeldDecision) -> None:
        method, path, headers, body = self._original
        if self.method != method:
            decision.method = self.method
        if self.path != path:
            decision.path = self.path
        if list(self.headers.items()) != headers:
            decision.headers.extend(mpb.Header(name=k, value=str(v))
                                    for k, v in self.headers.items())
            decision.has_headers = True
        if _as_bytes(self.body) != body:
            decision.body = _as_bytes(self.body)
            decision.has_body = True

    def forward(self, to: str = "local") -> HeldOutcome:
        """Send the request, with the edits made to this object, to the local handler or
        service (`to="local"`) or to the app in the cluster (`to="cluster"`)."""
        if to not in _TARGETS:
            raise UsageError(f"forward(to={to!r}): use to='local' or to='cluster'")
        if to == "cluster" and self.mode == "mirror":
            raise UsageError(f"held request {self.id} is a mirror copy: the cluster already "
                             "answered its caller; forward it to local, respond or drop it")
        decision = dpb.HeldDecision(action=_TARGETS[to])
        self._edits(decision)
        return self._decide(decision)

    def respond(self, status: int = 200, body: bytes | str | Any = b"",
                headers: Mapping[str, str] | None = None) -> HeldOutcome:
        """Answer the caller from here: `body` may be bytes, text, or a dict/list (JSON)."""
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise UsageError(f"respond({status!r}): give an HTTP status between 100 and 599")
        given = dict(headers or {})
        if not any(k.lower() == "content-type" for k in given) and body != b"":
            given["content-type"] = ("application/json" if not isinstance(body, bytes | str)
                                     else "text/plain; charset=utf-8")
        decision = dpb.HeldDecision(action=dpb.HELD_ACTION_RESPOND, status=status,
                                    body=_as_bytes(body), has_body=True, has_headers=True)
        decision.headers.extend(mpb.Header(name=k, value=str(v)) for k, v in given.items())
        return self._decide(decision)

    def drop(self) -> HeldOutcome:
        """Drop it: its caller gets a 502 that says it was dropped on the workstation."""
        return self._decide(dpb.HeldDecision(action=dpb.HELD_ACTION_DROP))

    # -- rendering

    def line(self) -> str:
        left = max(0.0, self.deadline - datetime.datetime.now().timestamp())
        body = f" body {_text(self.body)!r}" if self.body else ""
        return (f"{self.id}  {self.method} {self.path}  ({self.intercept}, from "
                f"{self.source or '?'}, held since {_time(self.received)}, "
                f"to the cluster in {left:.0f}s){body}")

    def __str__(self) -> str:
        lines = [f"Held request {self.id} of intercept {self.intercept} "
                 f"({self.workload}.{self.namespace}), from {self.source or '?'}",
                 f"  {self.method} {self.path}"]
        lines += [f"  {k}: {v}" for k, v in self.headers.items()]
        if self.body:
            lines.append(f"  body: {_text(self.body, 200)!r}")
        if self.outcome is not None:
            lines.append(f"  {self.outcome}")
        else:
            lines.append("  decide with .forward(to='local'|'cluster'), .respond(status, "
                         "body, headers) or .drop()")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre class='tp-held'>{html.escape(str(self))}</pre>"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "intercept": self.intercept, "workload": self.workload,
                "namespace": self.namespace, "method": self.method, "path": self.path,
                "headers": dict(self.headers), "body": self.text, "source": self.source,
                "received": self.received, "deadline": self.deadline, "mode": self.mode}


class HeldList(list[HeldRequest], Rendered):
    """`tp_jupyter.held()` / `tp held`: the requests waiting, oldest first; `holding` maps
    the intercepts that hold now to their timeouts (s)."""

    holding: dict[str, float]
    copies_dropped: dict[str, int]   # the wiretaps among them: copies dropped untouched

    def __init__(self, requests: Iterable[HeldRequest] = (),
                 holding: Mapping[str, float] | None = None,
                 copies_dropped: Mapping[str, int] | None = None) -> None:
        super().__init__(requests)
        self.holding = dict(holding or {})
        self.copies_dropped = dict(copies_dropped or {})

    def holding_line(self) -> str:
        if not self.holding:
            return "No intercept holds requests (tp intercept ... --hold, or tp hold NAME)"
        return "Holding: " + ", ".join(self._holds(name, t)
                                       for name, t in sorted(self.holding.items()))

    def _holds(self, name: str, timeout: float) -> str:
        if name not in self.copies_dropped:
            return f"{name} (to the cluster after {timeout:g}s untouched)"
        return (f"{name} (mirror copies dropped after {timeout:g}s untouched: "
                f"{self.copies_dropped[name]} so far)")

    def __str__(self) -> str:
        if not self:
            return f"No held requests\n{self.holding_line()}"
        return "\n".join(["Held requests (decide with tp_jupyter.held()[i].forward(...), "
                          "or `tp held ID --forward local|cluster`):"]
                         + ["  " + r.line() for r in self] + [self.holding_line()])

    def _repr_html_(self) -> str:
        if not self:
            return f"<i>No held requests</i><br>{html.escape(self.holding_line())}"
        rows = "".join(f"<tr><td>{html.escape(r.id)}</td><td>{html.escape(r.intercept)}</td>"
                       f"<td>{html.escape(r.method)}</td><td>{html.escape(r.path)}</td>"
                       f"<td>{html.escape(r.source)}</td></tr>" for r in self)
        return ("<table class='tp-held-list'><tr><th>id</th><th>intercept</th><th>method</th>"
                f"<th>path</th><th>from</th></tr>{rows}</table>"
                f"{html.escape(self.holding_line())}")

    def to_dict(self) -> dict[str, Any]:
        return {"held": [r.to_dict() for r in self],
                "holding": [{"name": n, "timeout": t,
                             **({"copies_dropped": self.copies_dropped[n]}
                                if n in self.copies_dropped else {})}
                            for n, t in sorted(self.holding.items())]}

    def __repr__(self) -> str:
        return str(self)


def hold(name: str, on: bool = True, timeout: float | None = None) -> HoldResult:
    """Turn holding on (or off) for your running intercept `name`; `timeout` seconds
    (default: the setting intercept.hold_timeout) after a request arrives untouched, it
    goes to the cluster."""
    if timeout is not None and timeout <= 0:
        raise UsageError(f"hold timeout {timeout:g}: give more than 0 seconds")
    with DaemonClient() as client:
        reply = client.set_hold(dpb.HoldRequest(name=name, on=on, timeout=timeout or 0.0))
    return HoldResult(reply.name, reply.on, reply.timeout, reply.released)


def held(intercept: str | None = None) -> HeldList:
    """The requests waiting for a decision (of one intercept, or all), oldest first."""
    with DaemonClient() as client:
        reply = client.list_held(dpb.ListHeldRequest(
            intercept_names=[intercept] if intercept else []))
    return HeldList((HeldRequest.from_pb(h) for h in reply.held),
                    {h.name: h.timeout for h in reply.holding},
                    {h.name: h.copies_dropped for h in reply.holding if h.mirror})


def get(held_id: str) -> HeldRequest:
    """One waiting request by id (`tp held ID ...`)."""
    for request in held():
        if request.id == held_id:
            return request
    return HeldRequest(held_id, "", "", "", "", "", CIMultiDict(), b"")   # the daemon says why
