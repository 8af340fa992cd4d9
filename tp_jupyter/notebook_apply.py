"""`%%tp apply`: a session file in the cell, its `handler:` entries served by kernel
functions (`sessionfile` does the rest, as `tp apply -f` does).

Each intercept with `handler: NAME` is served by `NAME` from the kernel's namespace on an
in-kernel server (`handlers.HandlerServer`, as `%%tp intercept` does) and registered with
the notebook session, so `%tp leave` and `%unload_ext` stop it. Re-running the cell keeps
unchanged intercepts and hands their servers the handler's current definition.

Errors: a handler name the kernel does not define, or that is no handler, is refused with
the cell line before anything changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tp_jupyter import handlers, output, sessionfile
from tp_jupyter.session import CellIntercept, NotebookSession

SOURCE = "<%%tp apply cell>"


@dataclass(repr=False)
class CellApplyResult(sessionfile.ApplyResult):
    """`ApplyResult` plus the kernel functions serving intercepts."""

    served: dict[str, handlers.HandlerServer] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return super().lines() + [
            f"  Serving {s.handler.name} ({s.handler.kind}) on {s.url} for intercept {n}"
            for n, s in self.served.items()]

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["handlers"] = [{"intercept": n, "name": s.handler.name, "kind": s.handler.kind,
                             "url": s.url} for n, s in self.served.items()]
        return data


def apply_cell(session: NotebookSession, argv: Sequence[str], body: str) -> Any:
    """`%%tp apply [--format json|yaml]` with the session file in `body`."""
    args = session.parse([*argv, "-f", SOURCE])
    if args is None:
        return None
    parsed = sessionfile.parse(body, SOURCE)
    found: dict[str, handlers.Handler] = {}
    for entry in parsed.intercepts:   # every handler checked before anything changes
        if not entry.handler:
            continue
        if entry.handler not in session.user_ns:
            raise sessionfile.SessionFileError(
                f"{SOURCE}:{entry.line}: {entry.name}.handler: the kernel defines no "
                f"{entry.handler}; run the cell that defines it first")
        try:
            found[entry.name] = handlers.classify(session.user_ns[entry.handler],
                                                  entry.handler)
        except handlers.HandlerError as e:
            raise sessionfile.SessionFileError(
                f"{SOURCE}:{entry.line}: {entry.name}.handler: {e}") from e
    started: dict[str, handlers.HandlerServer] = {}

    def serve(entry: sessionfile.InterceptEntry) -> int:
        cell = session.cells.get(entry.name)
        if cell is not None and cell.server.running:
            cell.server.set_handler(found[entry.name])
            return int(cell.server.port)
        server = handlers.HandlerServer(found[entry.name], label=entry.name,
                                        sink=session._sink())
        started[entry.name] = server
        return int(server.port)

    try:
        renew = frozenset(n for n in found if n not in session.cells
                          or not session.cells[n].server.running)
        plain = sessionfile.apply(parsed, serve=serve, renew=renew)
    except BaseException:   # leave nothing behind
        for server in started.values():
            server.stop()
        raise
    result = CellApplyResult(**{k: getattr(plain, k) for k in (
        "session", "created", "replaced", "kept", "left", "intercepts", "connected")})
    for name in plain.left:
        gone = session.cells.pop(name, None)
        if gone is not None:
            gone.server.stop()
    for entry in parsed.intercepts:
        if not entry.handler:
            session.intercepts.add(entry.name)
            continue
        fresh = started.get(entry.name)
        if fresh is None:   # kept or replaced on its running server: the current function
            server = session.cells[entry.name].server
            server.set_handler(found[entry.name])
        else:
            server = fresh
            old = session.cells.pop(entry.name, None)
            if old is not None:
                old.server.stop()
            session.cells[entry.name] = CellIntercept(
                entry.name, server, intercept=plain.intercepts.get(entry.name),
                argv=["apply"], target=(entry.workload, entry.namespace or None))
        result.served[entry.name] = server
    return output.formatted(result, getattr(args, "format", None))
