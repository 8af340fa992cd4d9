"""Declarative sessions: `tp apply -f session.yaml` / `tp delete -f session.yaml`
(as Telepresence 2.31's `apply -f`); the schema is documented in docs/session-file.md.

    load(path) -> SessionFile          parse and check the whole file (line and field of
    parse(text, source) -> SessionFile the first fault in a one-line UsageError)
    apply(session, serve=None) -> ApplyResult
    delete(session) -> DeleteResult

A file is checked as a whole before anything changes. `apply` connects (a no-op when
already connected the same way), then makes the intercepts match the file: the ones this
session applied before and that the file no longer names are left, new ones created,
changed ones replaced, unchanged ones kept. What a session applied last is remembered in
the daemon's home (`sessions/<name>.json`), so an intercept made by hand is never left.

`serve(entry) -> port` gives the local port of an entry with a `handler` (the notebook's
`%%tp apply` serves that kernel function); without it such an entry is refused.

Errors: every fault of the file, and every refusal, is a one-line `UsageError`.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tp_daemon import paths
from tp_protocol import intercept_spec
from tp_protocol import manager_pb2 as mpb

from tp_jupyter import api
from tp_jupyter.errors import UsageError
from tp_jupyter.render import Rendered

CONNECTION_FIELDS = {"kubeconfig": str, "context": str, "namespace": str,
                     "manager_namespace": str, "proxy_mode": bool}
"""`connection:` keys and their types (the options of `tp connect`)."""

INTERCEPT_FIELDS = {"name": str, "workload": str, "namespace": str, "port": int,
                    "service_port": (str, int), "http_match": (list, dict, str),
                    "env_file": str, "env_json": str, "mount": (bool, str), "handler": str}
"""`intercepts[]` keys and their types (the options of `tp intercept`)."""

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class SessionFileError(UsageError):
    """A session file that cannot be applied: `FILE:LINE: FIELD: what is wrong`."""


@dataclass(frozen=True)
class InterceptEntry:
    """One intercept of a session file, normalised (`http_match` as KEY=REGEX strings)."""

    name: str
    workload: str
    namespace: str = ""
    port: int = 0
    service_port: str = ""
    http_match: tuple[str, ...] = ()
    env_file: str = ""
    env_json: str = ""
    mount: str = "true"
    handler: str = ""
    line: int = field(default=0, compare=False)

    def key(self) -> dict[str, Any]:
        """What decides whether a re-apply replaces it (the line does not)."""
        data = asdict(self)
        data.pop("line")
        data["http_match"] = list(self.http_match)
        return data


@dataclass
class SessionFile:
    """A checked session file."""

    name: str
    source: str
    connection: dict[str, Any]
    intercepts: list[InterceptEntry]


# --- parsing ---------------------------------------------------------------------------------


def _fail(source: str, node: yaml.Node | None, where: str, message: str) -> SessionFileError:
    line = node.start_mark.line + 1 if node is not None else 1
    return SessionFileError(f"{source}:{line}: {where}: {message}")


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_object(node, deep=True)


def _typename(kinds: Any) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    names = {str: "a string", int: "a number", bool: "true or false", list: "a list",
             dict: "a mapping"}
    return " or ".join(names[k] for k in kinds)


def _value(loader: yaml.SafeLoader, node: yaml.Node, kinds: Any, source: str, where: str
           ) -> Any:
    """The node's value if it has one of `kinds` (bool is not a number here)."""
    kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(node, yaml.MappingNode):
        value: Any = dict if dict in kinds_t else None
    elif isinstance(node, yaml.SequenceNode):
        value = list if list in kinds_t else None
    else:
        scalar = _scalar(loader, node)
        ok = any(isinstance(scalar, k) and not (k is int and isinstance(scalar, bool))
                 for k in kinds_t)
        if ok:
            return scalar
        value = None
    if value is None:
        raise _fail(source, node, where, f"expected {_typename(kinds)}")
    return node


def _mapping(loader: yaml.SafeLoader, node: yaml.Node, allowed: dict[str, Any], source: str,
             where: str) -> dict[str, tuple[yaml.Node, Any]]:
    """The mapping's fields: name -> (value node, value or node); unknown keys refused."""
    if not isinstance(node, yaml.MappingNode):
        raise _fail(source, node, where, "expected a mapping")
    out: dict[str, tuple[yaml.Node, Any]] = {}
    for key_node, value_node in node.value:
        key = _scalar(loader, key_node)
        path = f"{where}.{key}" if where else str(key)
        if key not in allowed:
            raise _fail(source, key_node, path, "unknown field; expected one of "
                        + ", ".join(allowed))
        if key in out:
            raise _fail(source, key_node, path, "given twice")
        out[key] = (value_node, _value(loader, value_node, allowed[key], source, path))
    return out


def _http_match(loader: yaml.SafeLoader, node: yaml.Node, value: Any, source: str,
                where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        pairs = [value]
    elif isinstance(node, yaml.MappingNode):
        pairs = []
        for k, v in node.value:
            key, regex = _scalar(loader, k), _scalar(loader, v)
            if not isinstance(regex, str | int):
                raise _fail(source, v, f"{where}.{key}", "expected a regular expression")
            pairs.append(f"{key}={regex}")
    else:
        pairs = []
        for i, item in enumerate(node.value):
            pairs.append(_value(loader, item, str, source, f"{where}[{i}]"))
    try:
        api.parse_http_match(pairs)
    except UsageError as e:
        raise _fail(source, node, where, str(e)) from e
    return () if pairs == ["all"] else tuple(pairs)


def _entry(loader: yaml.SafeLoader, node: yaml.Node, source: str, where: str,
           default_namespace: str) -> InterceptEntry:
    fields = _mapping(loader, node, INTERCEPT_FIELDS, source, where)
    for required in ("workload",):
        if required not in fields:
            raise _fail(source, node, f"{where}.{required}", "missing; name the Deployment "
                        "to intercept")
    values: dict[str, Any] = {}
    for key, (value_node, value) in fields.items():
        path = f"{where}.{key}"
        if key == "http_match":
            values[key] = _http_match(loader, value_node, value, source, path)
        elif key == "mount":
            values[key] = str(value).lower() if isinstance(value, bool) else value
        elif key == "port":
            if not 0 < value < 65536:
                raise _fail(source, value_node, path, f"{value} is not a port (1-65535)")
            values[key] = value
        elif key == "service_port":
            values[key] = str(value)
        elif key in ("name", "workload", "namespace") and not _NAME.match(value):
            raise _fail(source, value_node, path, f"{value!r} is not a Kubernetes name "
                        "(lowercase letters, digits and '-')")
        else:
            values[key] = value
    values.setdefault("namespace", default_namespace)
    values.setdefault("name", f"{values['workload']}-{values['namespace']}"
                      if values["namespace"] else values["workload"])
    if values.get("handler"):
        if "port" in fields:
            raise _fail(source, fields["port"][0], f"{where}.port",
                        "an intercept with a handler is served in the kernel; drop port")
        if not values["handler"].isidentifier():
            raise _fail(source, fields["handler"][0], f"{where}.handler",
                        "expected the name of a function defined in the kernel")
    elif "port" not in fields:
        raise _fail(source, node, f"{where}.port", "missing; give the local port the "
                    "traffic goes to (or, in %%tp apply, a handler)")
    entry = InterceptEntry(line=node.start_mark.line + 1, **values)
    try:
        intercept_spec.validate(_spec(entry, entry.port or 1))
    except intercept_spec.InvalidInterceptSpec as e:
        raise _fail(source, node, where, str(e)) from e
    return entry


def parse(text: str, source: str = "<session>") -> SessionFile:
    """Check a whole session file; the first fault is a `SessionFileError` with its line."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise SessionFileError(f"{source}:{line}: not YAML: {e.problem or e}") from None
    finally:
        loader.dispose()
    if root is None:
        raise SessionFileError(f"{source}:1: empty file; see docs/session-file.md")
    top = _mapping(loader, root, {"name": str, "connection": dict, "intercepts": list},
                   source, "")
    if "name" not in top:
        raise _fail(source, root, "name", "missing; name the session (it remembers what "
                    "it applied under this name)")
    name_node, name = top["name"]
    if not _NAME.match(name):
        raise _fail(source, name_node, "name", f"{name!r} is not a name (lowercase letters, "
                    "digits and '-')")
    connection: dict[str, Any] = {}
    if "connection" in top:
        for key, (_node, value) in _mapping(loader, top["connection"][0], CONNECTION_FIELDS,
                                            source, "connection").items():
            connection[key] = value
    entries: list[InterceptEntry] = []
    seen: dict[str, int] = {}
    if "intercepts" in top:
        for i, item in enumerate(top["intercepts"][0].value):
            entry = _entry(loader, item, source, f"intercepts[{i}]",
                           connection.get("namespace", ""))
            if entry.name in seen:
                raise _fail(source, item, f"intercepts[{i}].name", f"{entry.name!r} is also "
                            f"the name of the intercept on line {seen[entry.name]}")
            seen[entry.name] = entry.line
            entries.append(entry)
    return SessionFile(name, source, connection, entries)


def load(path: str | Path) -> SessionFile:
    """Read and check a session file."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {path} ({e.strerror}); give the session file's "
                         "path with -f") from e
    return parse(text, str(path))


# --- applying ----------------------------------------------------------------------------------


def _spec(entry: InterceptEntry, port: int) -> mpb.InterceptSpec:
    matches = [mpb.HeaderMatch(name=k, regex=v)
               for k, _, v in (m.partition("=") for m in entry.http_match)]
    return mpb.InterceptSpec(
        name=entry.name, workload=entry.workload, namespace=entry.namespace,
        service_port=entry.service_port, target_host="127.0.0.1", target_port=port,
        mechanism=mpb.MECHANISM_HTTP if matches else mpb.MECHANISM_TCP,
        header_matches=matches)


def _state_path(name: str) -> Path:
    folder = paths.home() / "sessions"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"{name}.json"


def applied(name: str) -> dict[str, dict[str, Any]]:
    """What session `name` applied last: intercept name -> its entry's `key()`."""
    try:
        data = json.loads(_state_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    intercepts = data.get("intercepts", {}) if isinstance(data, dict) else {}
    return intercepts if isinstance(intercepts, dict) else {}


def _remember(name: str, source: str, intercepts: dict[str, dict[str, Any]]) -> None:
    path = _state_path(name)
    if not intercepts:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"file": source, "intercepts": intercepts}, indent=2),
                   encoding="utf-8")
    tmp.replace(path)


@dataclass(repr=False)
class ApplyResult(Rendered):
    """What `tp apply -f` changed: created, replaced, kept and left intercepts."""

    session: str
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    intercepts: dict[str, api.InterceptResult] = field(default_factory=dict)
    connected: bool = False

    def lines(self) -> list[str]:
        lines = [f"Applied session {self.session}"]
        for verb, names in (("Created", self.created), ("Replaced", self.replaced),
                            ("Kept", self.kept), ("Left", self.left)):
            lines += [f"  {verb} intercept {n}" for n in names]
        if len(lines) == 1:
            lines.append("  No intercepts")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        return "<br>".join(html.escape(line) for line in self.lines())

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/apply.json)."""
        return {"session": self.session, "connected": self.connected,
                "created": list(self.created), "replaced": list(self.replaced),
                "kept": list(self.kept), "left": list(self.left),
                "intercepts": [r.to_dict() for r in self.intercepts.values()]}


@dataclass(repr=False)
class DeleteResult(Rendered):
    """What `tp delete -f` left."""

    session: str
    left: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Deleted session {self.session}"]
        lines += [f"  Left intercept {n}" for n in self.left]
        lines += [f"  Intercept {n} was already gone" for n in self.missing]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/delete.json)."""
        return {"session": self.session, "left": list(self.left),
                "missing": list(self.missing)}


Serve = Callable[[InterceptEntry], int]


def _mine() -> set[str]:
    with api._client() as client:
        return {ic.spec.name for ic in client.status().intercepts}


def apply(session: SessionFile, serve: Serve | None = None,
          progress: api.ProgressCallback | None = None,
          renew: frozenset[str] = frozenset()) -> ApplyResult:
    """Make the intercepts match the file (see the module); returns what changed.

    `renew` names intercepts to replace even when unchanged (a handler whose server is
    gone)."""
    handled = [e for e in session.intercepts if e.handler]
    if handled and serve is None:
        raise SessionFileError(f"{session.source}:{handled[0].line}: intercepts: "
                               f"{handled[0].name} names a handler; handlers are kernel "
                               "functions: use %%tp apply in a notebook, or give a port")
    conn = session.connection
    info = api.connect(conn.get("kubeconfig"), context=conn.get("context"),
                       namespace=conn.get("namespace"),
                       manager_namespace=conn.get("manager_namespace"),
                       proxy_mode=bool(conn.get("proxy_mode")), progress=progress)
    result = ApplyResult(session.name, connected=not info.already_connected)
    before = applied(session.name)
    mine = _mine()
    now: dict[str, dict[str, Any]] = {}
    try:
        wanted = {e.name for e in session.intercepts}
        for name in sorted(before):
            if name not in wanted:
                if name in mine:
                    api.leave(name)
                result.left.append(name)
        for entry in session.intercepts:
            if (before.get(entry.name) == entry.key() and entry.name in mine
                    and entry.name not in renew):
                result.kept.append(entry.name)
                now[entry.name] = entry.key()
                continue
            port = serve(entry) if entry.handler and serve is not None else entry.port
            exists = entry.name in mine
            result.intercepts[entry.name] = api.intercept(
                entry.workload, entry.namespace or None,
                f"{port}:{entry.service_port}" if entry.service_port else port,
                http_match=list(entry.http_match) or None, name=entry.name,
                env_file=entry.env_file or None, env_json=entry.env_json or None,
                mount=entry.mount, replace=exists, progress=progress)
            (result.replaced if exists else result.created).append(entry.name)
            now[entry.name] = entry.key()
    finally:   # remember what is applied now, also when one intercept failed
        kept = {n: k for n, k in before.items() if n not in result.left and n not in now}
        _remember(session.name, session.source, {**kept, **now})
    return result


def delete(session: SessionFile) -> DeleteResult:
    """Leave every intercept the session applied (and those its file names) and forget it."""
    result = DeleteResult(session.name)
    names = sorted(set(applied(session.name)) | {e.name for e in session.intercepts})
    mine = _mine()
    for name in names:
        if name in mine:
            api.leave(name)
            result.left.append(name)
        else:
            result.missing.append(name)
    with contextlib.suppress(OSError):
        _state_path(session.name).unlink(missing_ok=True)
    return result
