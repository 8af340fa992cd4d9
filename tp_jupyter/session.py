"""The notebook's state and its one owner, `NotebookSession`.

    session = NotebookSession(shell)        # shell: IPython's, or None (plain Python)
    session.run(["status"])                 # any `tp` subcommand; returns its result
    session.intercept_cell(argv, body)      # `%%tp intercept ...`: serve the cell's handler
    session.leave(name)                     # leave an intercept, stopping its cell handler
    session.panel(names)                    # a live panel whose Leave buttons call leave()
    session.close()                         # leave everything made here, stop every thread

The session owns what must be undone: the intercepts made through it (line form), the
cell intercepts with their handler servers, and the panels. The `%tp` magics only parse
the line and hand off to it (as IPython's autoreload magics hand off to its reloader);
`tp_jupyter.panel()` uses the current session, made by `%load_ext tp_jupyter` or on
first use.

Arguments are parsed by the `tp` CLI's one parser (`tp_jupyter.cli.build_parser`). The
cell form checks its arguments (also `--http-match`) before the cell runs, runs the cell,
finds its handler (`handlers.find_handler`), serves it on an in-kernel server
(`handlers.HandlerServer`) and intercepts to that server's port. Re-running the cell
swaps the handler in the running server, the intercept stays.

Errors: the front's `TpError`s (and the sandbox's `SandboxError`) as the commands raise
them; exceptions of the cell body itself propagate unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tp_sandbox.errors import SandboxError

from tp_jupyter import api, handlers, output, render
from tp_jupyter.cli import build_parser
from tp_jupyter.errors import TpError, UsageError

if TYPE_CHECKING:
    from tp_jupyter.widgets import Panel

log = logging.getLogger(__name__)

OUTPUT_FALLBACK = ("(this cell's handler prints here, tracebacks too; shown where Jupyter "
                   "widgets render)")
"""text/plain of a cell handler's output area (nbval_sanitize.cfg maps it and ipywidgets'
own "Output()" of older recordings to one token)."""

_PROGRESS = {"connect", "intercept", "replace", "apply"}
"""Subcommands that report progress on stderr (shown as a transient line in a notebook)."""


def _option_index(argv: Sequence[str], *names: str) -> int:
    """Index of the option (`-p 8080`, `-p8080`, `--port=8080`) in argv, or -1."""
    for i, a in enumerate(argv):
        if a in names or any(a.startswith(n + ("=" if n.startswith("--") else ""))
                             and a != n for n in names):
            return i
    return -1


def with_port(argv: list[str], port: int) -> list[str]:
    """argv with `-p PORT[:SVCPORT]` pointing at `port` (keeping a given service port)."""
    i = _option_index(argv, "-p", "--port")
    if i < 0:
        return [*argv, "-p", str(port)]
    a = argv[i]
    if a in ("-p", "--port"):
        value, drop = (argv[i + 1] if i + 1 < len(argv) else ""), 2
    else:
        value, drop = (a.split("=", 1)[1] if a.startswith("--") else a[2:]), 1
    svc = value.partition(":")[2]
    return [*argv[:i], "-p", f"{port}:{svc}" if svc else str(port), *argv[i + drop:]]


def _intercept_name(result: Any, args: argparse.Namespace) -> str:
    """The intercept's name from the result object, else the daemon's default."""
    name = getattr(result, "name", None)
    if isinstance(name, str) and name:
        return name
    explicit = getattr(args, "name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    ns = getattr(args, "namespace", None) or "default"
    return f"{args.workload}-{ns}"


@dataclass(repr=False)
class CellIntercept(render.Rendered):
    """What `%%tp intercept` did: shown below the cell."""

    name: str
    server: handlers.HandlerServer
    swapped: bool = False
    intercept: Any = None     # the intercept subcommand's result (first run)
    argv: list[str] = field(default_factory=list)
    target: tuple[str, str | None] | None = None   # (workload, namespace) as given

    def lines(self) -> list[str]:
        h = self.server.handler
        if self.swapped:
            first = (f"Swapped the handler of intercept {self.name}: now {h.name} ({h.kind}); "
                     "the intercept stayed active")
        else:
            first = (f"Serving {h.name} ({h.kind}) on {self.server.url} "
                     f"for intercept {self.name}")
        lines = [first]
        if self.intercept is not None and str(self.intercept):
            lines += str(self.intercept).splitlines()
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        """`%%tp intercept ... --format json|yaml` (schema: schemas/cell-intercept.json)."""
        h = self.server.handler
        return {"name": self.name, "swapped": self.swapped,
                "handler": {"name": h.name, "kind": h.kind, "url": self.server.url},
                "intercept": output.to_dict(self.intercept)}

    def _repr_html_(self) -> str:
        first, *rest = self.lines()
        body = html.escape(first)
        if rest:
            body += "<pre>" + html.escape("\n".join(rest)) + "</pre>"
        return f"<div class='tp-cell-intercept'>{body}</div>"


class ProxyEnv:
    """The kernel's proxy variables while connected in proxy mode (so requests/httpx
    reach the cluster through the daemon's SOCKS5 proxy); `restore` puts back what was."""

    PROXIES = ("ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY",
               "https_proxy")
    NO_PROXY = ("NO_PROXY", "no_proxy")
    LOCAL = "localhost,127.0.0.1,::1"

    def __init__(self) -> None:
        self._saved: dict[str, str | None] | None = None

    def set(self, socks_address: str) -> None:
        if self._saved is None:
            self._saved = {k: os.environ.get(k) for k in (*self.PROXIES, *self.NO_PROXY)}
        for name in self.PROXIES:
            os.environ[name] = f"socks5h://{socks_address}"
        for name in self.NO_PROXY:  # the kernel's own local servers stay direct
            before = self._saved.get(name)
            os.environ[name] = f"{before},{self.LOCAL}" if before else self.LOCAL

    def restore(self) -> None:
        if self._saved is None:
            return
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = None


class NotebookSession:
    """Owns the notebook's intercepts, cell handler servers and panels (see the module)."""

    def __init__(self, shell: Any = None) -> None:
        self.shell = shell
        # without a shell, cells run in a namespace of their own, named like IPython's
        self.user_ns: dict[str, Any] = (shell.user_ns if shell is not None
                                        else {"__name__": "__main__"})
        self.cells: dict[str, CellIntercept] = {}   # intercept name -> its cell handler
        self.intercepts: set[str] = set()            # names made by the line form
        self.panels: list[Panel] = []
        self.proxy_env = ProxyEnv()

    # -- subcommands

    def parse(self, argv: Sequence[str]) -> argparse.Namespace | None:
        """The CLI's parse of argv; None when it printed help (`--help`)."""
        try:
            args = build_parser().parse_args(list(argv))
        except SystemExit:
            return None
        args.in_notebook = True
        return args

    def run(self, argv: Sequence[str]) -> Any:
        """Parse and run one subcommand like the CLI; returns its result object."""
        args = self.parse(argv)
        if args is None:
            return None
        var = getattr(args, "output", None)
        if args.command == "traffic" and var and not var.isidentifier():
            raise UsageError(f"-o {var}: give a Python variable name, e.g. -o df")
        with render.progress(self.shell, enabled=args.command in _PROGRESS):
            result = args.func(args)
        self._after(args, result)
        return output.formatted(result, getattr(args, "format", None))

    def _after(self, args: argparse.Namespace, result: Any) -> None:
        command = args.command
        if command == "connect" and isinstance(result, api.ConnectResult) and result.proxy_mode:
            self.proxy_env.set(result.socks_address)
            result.proxy_env = True
        elif command == "quit":
            self.proxy_env.restore()
        if command == "traffic" and getattr(args, "output", None):
            self.user_ns[args.output] = result.frame
        elif command in ("intercept", "replace"):   # left again by close()
            self.intercepts.add(_intercept_name(result, args))
        elif command == "leave":
            self.intercepts.discard(args.name)
            cell = self.cells.pop(args.name, None)
            if cell is not None:
                cell.server.stop()
        elif command == "quit":  # the daemon removed every intercept
            self.intercepts.clear()
            for cell in self.cells.values():
                cell.server.stop()
            self.cells.clear()

    def leave(self, name: str) -> Any:
        """Leave intercept `name` (`%tp leave NAME`), stopping its cell handler if any."""
        return self.run(["leave", name])

    # -- the cell form

    def intercept_cell(self, argv: Sequence[str], body: str) -> Any:
        """`%%tp intercept WORKLOAD ...` with the handler defined by `body`: a
        `CellIntercept` (a `Formatted` document with `--format json|yaml`).

        None when `--help` printed the help."""
        argv = list(argv)
        if not argv or argv[0] not in ("intercept", "wiretap"):
            raise UsageError("%%tp takes `intercept WORKLOAD [-n NS] [--http-match K=V]` or "
                             "`wiretap WORKLOAD ...` with a handler in the cell, or `apply` "
                             "with a session file; use %tp for other subcommands")
        # parse first (with a stand-in port) so bad arguments fail before the cell runs
        args = self.parse(with_port(argv, 1))
        if args is None:
            return None
        api.parse_http_match(getattr(args, "http_match", None))
        before = dict(self.user_ns)
        code = self.shell.transform_cell(body) if self.shell is not None else body
        exec(compile(code, "<%%tp intercept cell>", "exec"), self.user_ns)
        found = handlers.find_handler(before, self.user_ns, body)
        for name, existing in list(self.cells.items()):
            if existing.argv == argv and existing.server.running:
                existing.server.set_handler(found)
                existing.server.set_sink(self._sink())
                swapped = CellIntercept(name, existing.server, swapped=True, argv=argv)
                return output.formatted(swapped, getattr(args, "format", None))
            if (existing.target == (args.workload, args.namespace)
                    and existing.argv[:1] == argv[:1]):   # a wiretap keeps an intercept
                self._leave_quietly(name)   # same workload, new arguments: start over
        server = handlers.HandlerServer(found, label=args.name or args.workload,
                                        sink=self._sink())
        try:
            full = self.parse(with_port(argv, server.port))
            assert full is not None
            with render.progress(self.shell):
                result = full.func(full)
        except BaseException:   # leave nothing behind
            server.stop()
            raise
        name = _intercept_name(result, full)
        server.label = name
        cell = CellIntercept(name, server, intercept=result, argv=argv,
                             target=(full.workload, full.namespace))
        self.cells[name] = cell
        return output.formatted(cell, getattr(args, "format", None))

    def _sink(self) -> handlers.Sink:
        """Where handler output goes: an Output widget shown by this cell, or the terminal."""
        if getattr(self.shell, "kernel", None) is not None:
            with contextlib.suppress(ImportError):
                import ipywidgets
                from IPython.display import display

                out = ipywidgets.Output()
                # a saved notebook without widgets shows this line, not "Output()"
                bundle = dict(out._repr_mimebundle_())
                bundle["text/plain"] = OUTPUT_FALLBACK
                display(bundle, raw=True)  # type: ignore[no-untyped-call]

                def to_widget(text: str, stream: str) -> None:
                    if stream == "stderr":
                        out.append_stderr(text)
                    else:
                        out.append_stdout(text)

                return to_widget
        terminal = sys.__stdout__

        def to_terminal(text: str, stream: str) -> None:
            if terminal is not None:
                terminal.write(text)
                terminal.flush()

        return to_terminal

    # -- panels and cleanup

    def panel(self, names: Iterable[str] = ()) -> Panel:
        """A live panel (optionally of these intercepts only); its Leave buttons call leave()."""
        from tp_jupyter.widgets import Panel  # lazily: ipywidgets is needed only here

        panel = Panel(names, leave=self.leave)
        self.panels.append(panel)
        return panel

    def _leave_quietly(self, name: str) -> None:
        cell = self.cells.get(name)
        try:
            self.leave(name)
        except (TpError, SandboxError) as e:
            log.warning("leaving intercept %s failed: %s", name, e)
        finally:
            if cell is not None:
                cell.server.stop()
                self.cells.pop(name, None)

    def close(self) -> None:
        """Leave every intercept made here, stop every handler server and panel thread."""
        for name in [*self.cells, *sorted(self.intercepts)]:
            self._leave_quietly(name)
        self.intercepts.clear()
        handlers.shutdown()
        self.proxy_env.restore()
        for panel in self.panels:
            panel.close()
        self.panels.clear()


class _Current:
    session: NotebookSession | None = None


def current() -> NotebookSession:
    """The kernel's session: the one `%load_ext tp_jupyter` made, else a new one."""
    if _Current.session is None:
        _Current.session = NotebookSession()
    return _Current.session


def start(shell: Any) -> NotebookSession:
    """The session of `shell` (`%load_ext`): adopts one made before the extension loaded."""
    session = current()
    if session.shell is None:
        session.shell = shell
        shell.user_ns.update(session.user_ns)
        session.user_ns = shell.user_ns
    return session


def stop() -> None:
    """Close the current session (`%unload_ext`): nothing of it is left behind."""
    session, _Current.session = _Current.session, None
    if session is not None:
        session.close()


def panel(names: Iterable[str] = ()) -> Panel:
    """`tp_jupyter.panel()`: a live panel of the current session; show it as a cell's value."""
    return current().panel(names)
