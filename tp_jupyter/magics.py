"""The IPython extension: `%tp` (line) and `%%tp intercept` (cell) magics.

    %load_ext tp_jupyter
    %tp connect | status | list | intercept ... -p PORT | leave NAME | quit | uninstall ...
    %tp traffic [NAME] [-o VAR]
    %%tp intercept WORKLOAD [-n NS] [--http-match K=V ...]
    def handler(request): ...          # the cell body: a function, or a WSGI/ASGI app

The magics are thin: the line is split with shlex and parsed by the `tp` CLI's one
parser (`tp_jupyter.cli.build_parser`), then the subcommand's function runs and its
result object is returned (it renders itself as HTML, and as the CLI's text through
`tp_jupyter.render`). Every TpError (and the sandbox's SandboxError) becomes an IPython
`UsageError` with the same one-line text. In a notebook, the progress lines of connect and
intercept show in one transient line (`render.progress`) instead of piling up as stderr.

The cell form checks its arguments (also `--http-match`) before the cell runs, runs the
cell, finds its handler (`handlers.find_handler`), serves it on
an in-kernel server (`handlers.HandlerServer`) and intercepts to that server's port.
Re-running the cell swaps the handler in the running server, the intercept stays.
`unload_ipython_extension` leaves every intercept made here and stops every thread.

Errors: IPython's UsageError only (see above); exceptions raised by the cell body itself
propagate unchanged so the user sees their own traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from tp_sandbox.errors import SandboxError

from tp_jupyter import api, cli, handlers, render
from tp_jupyter import traffic as traffic_mod
from tp_jupyter.errors import TpError

log = logging.getLogger(__name__)

SUBCOMMANDS = ["connect", "status", "list", "intercept", "leave", "quit", "uninstall",
               "traffic"]
"""The subcommands the magics document (the parser may know more, e.g. `sandbox`)."""

_PROGRESS = {"connect", "intercept"}
"""Subcommands that report progress on stderr (shown as a transient line in a notebook)."""


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the tp parser has no subcommands")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser; `traffic` is added here only if the CLI does not register it yet."""
    parser = cli.build_parser()
    sub = _subparsers(parser)
    if "traffic" not in sub.choices:
        traffic_mod.register(sub)
    return parser


def _usage(e: BaseException) -> IPythonUsageError:
    return IPythonUsageError(str(e))


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as e:
        raise IPythonUsageError(f"cannot split the arguments ({e}); close the quote") from None


def _option_index(argv: Sequence[str], *names: str) -> int:
    """Index of the option (`-p 8080`, `-p8080`, `--port=8080`) in argv, or -1."""
    for i, a in enumerate(argv):
        if a in names or any(a.startswith(n + ("=" if n.startswith("--") else ""))
                             and a != n for n in names):
            return i
    return -1


def _with_port(argv: list[str], port: int) -> list[str]:
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
    for path in (("name",), ("intercept", "spec", "name"), ("info", "spec", "name"),
                 ("spec", "name")):
        value: Any = result
        for attr in path:
            value = getattr(value, attr, None)
        if isinstance(value, str) and value:
            return value
    explicit = getattr(args, "name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    ns = getattr(args, "namespace", None) or "default"
    return f"{args.workload}-{ns}"


@dataclass
class CellIntercept:
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

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        first, *rest = self.lines()
        body = html.escape(first)
        if rest:
            body += "<pre>" + html.escape("\n".join(rest)) + "</pre>"
        return f"<div class='tp-cell-intercept'>{body}</div>"


@magics_class
class TpMagics(Magics):
    """`%tp` and `%%tp`; keeps what must be undone when the extension unloads."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)  # type: ignore[no-untyped-call]
        self.ip: Any = shell   # typed as Optional upstream; always set here
        self.cells: dict[str, CellIntercept] = {}   # intercept name -> its cell handler
        self.intercepts: set[str] = set()            # names made by %tp intercept (line form)

    # -- the magic

    @line_cell_magic  # type: ignore[untyped-decorator]
    def tp(self, line: str, cell: str | None = None) -> Any:
        """(replaced with the parser's help when the extension loads)"""
        argv = _split(line)
        if cell is not None:
            return self._cell(argv, cell)
        if not argv:
            raise IPythonUsageError("%tp needs a subcommand: " + ", ".join(SUBCOMMANDS)
                                    + "; see %tp?")
        return self.run(argv)

    def run(self, argv: list[str]) -> Any:
        """Parse and run one subcommand like the CLI; returns its result object."""
        args = self._parse(argv)
        if args is None:
            return None
        args.in_notebook = True
        try:
            with render.progress(self.ip, enabled=args.command in _PROGRESS):
                result = args.func(args)
        except (TpError, SandboxError) as e:
            raise _usage(e) from None
        self._after(args, result)
        return result

    def _parse(self, argv: list[str]) -> argparse.Namespace | None:
        try:
            return build_parser().parse_args(argv)
        except (TpError, SandboxError) as e:
            raise _usage(e) from None
        except SystemExit:   # --help printed its text
            return None

    def _after(self, args: argparse.Namespace, result: Any) -> None:
        command = args.command
        if command == "traffic" and getattr(args, "output", None):
            if not args.output.isidentifier():
                raise IPythonUsageError(f"-o {args.output}: give a Python variable name, "
                                        "e.g. -o df")
            self.ip.user_ns[args.output] = result.frame
        elif command == "intercept":
            self.intercepts.add(_intercept_name(result, args))
        elif command == "leave":
            name = getattr(args, "name", "")
            self.intercepts.discard(name)
            cell = self.cells.pop(name, None)
            if cell is not None:
                cell.server.stop()
        elif command == "quit":  # the daemon removed every intercept
            self.intercepts.clear()
            for cell in self.cells.values():
                cell.server.stop()
            self.cells.clear()

    # -- the cell form

    def _cell(self, argv: list[str], body: str) -> CellIntercept:
        if not argv or argv[0] != "intercept":
            raise IPythonUsageError("%%tp takes `intercept WORKLOAD [-n NS] [--http-match K=V]` "
                                    "with a handler in the cell; use %tp for other subcommands")
        # parse first (with a stand-in port) so bad arguments fail before the cell runs
        args = self._parse(_with_port(argv, 1))
        if args is None:
            return None  # type: ignore[return-value]
        try:   # values the parser takes as plain strings, checked before the cell runs too
            api.parse_http_match(getattr(args, "http_match", None))
        except TpError as e:
            raise _usage(e) from None
        before = dict(self.ip.user_ns)
        code = self.ip.transform_cell(body)
        exec(compile(code, "<%%tp intercept cell>", "exec"), self.ip.user_ns)
        try:
            found = handlers.find_handler(before, self.ip.user_ns, body)
        except TpError as e:
            raise _usage(e) from None
        key = list(argv)
        for name, existing in list(self.cells.items()):
            if existing.argv == key and existing.server.running:
                existing.server.set_handler(found)
                existing.server.set_sink(self._sink())
                return CellIntercept(name, existing.server, swapped=True, argv=key)
            if _same_target(existing, args):   # same workload, new arguments: start over
                self._leave(name)
        server = handlers.HandlerServer(found, label=getattr(args, "name", None)
                                        or args.workload, sink=self._sink())
        try:
            full = self._parse(_with_port(argv, server.port))
            assert full is not None
            full.in_notebook = True
            with render.progress(self.ip):
                result = full.func(full)
        except (TpError, SandboxError) as e:   # leave nothing behind
            server.stop()
            raise _usage(e) from None
        except BaseException:
            server.stop()
            raise
        name = _intercept_name(result, full)
        server.label = name
        cell = CellIntercept(name, server, intercept=result, argv=key,
                             target=(full.workload, getattr(full, "namespace", None)))
        self.cells[name] = cell
        return cell

    def _sink(self) -> handlers.Sink:
        """Where handler output goes: an Output widget shown by this cell, or the terminal."""
        if getattr(self.ip, "kernel", None) is not None:
            with contextlib.suppress(ImportError):
                import ipywidgets
                from IPython.display import display

                out = ipywidgets.Output()
                display(out)  # type: ignore[no-untyped-call]

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

    # -- cleanup

    def _leave(self, name: str) -> None:
        cell = self.cells.pop(name, None)
        try:
            args = build_parser().parse_args(["leave", name])
            args.in_notebook = True
            args.func(args)
        except (TpError, SandboxError, SystemExit) as e:
            log.warning("leaving intercept %s failed: %s", name, e)
        finally:
            if cell is not None:
                cell.server.stop()

    def close(self) -> None:
        """Leave every intercept made through the magics and stop every thread."""
        for name in [*self.cells, *sorted(self.intercepts)]:
            self._leave(name)
        self.intercepts.clear()
        handlers.shutdown()
        from tp_jupyter import widgets

        widgets.close_all()


def _same_target(cell: CellIntercept, args: argparse.Namespace) -> bool:
    return cell.target == (args.workload, getattr(args, "namespace", None))


def _help_text() -> str:
    try:
        parser = build_parser()
    except Exception as e:  # help must not break loading
        return f"%tp SUBCOMMAND ...  (the tp parser failed to build: {e})"
    sub = _subparsers(parser)
    lines = ["%tp SUBCOMMAND [ARGS]    the `tp` command line, inside the notebook",
             "%%tp intercept WORKLOAD [-n NS] [--http-match K=V ...]",
             "    the cell defines a handler (a function taking a request, or a WSGI/ASGI",
             "    app); it is served in the kernel and re-running the cell swaps it.",
             "", "Subcommands:"]
    for name in SUBCOMMANDS:
        p = sub.choices.get(name)
        if p is not None:
            lines += ["", p.format_help().rstrip()]
        else:
            lines.append(f"  {name}  (not available in this version)")
    return "\n".join(lines)


class _Loaded:
    magics: TpMagics | None = None


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tp_jupyter`: register `%tp` and `%%tp`."""
    if _Loaded.magics is not None:
        return
    TpMagics.tp.__doc__ = _help_text()
    _Loaded.magics = TpMagics(ipython)
    ipython.register_magics(_Loaded.magics)
    render.register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext tp_jupyter`: leave intercepts, stop servers and threads, drop the magics."""
    magics, _Loaded.magics = _Loaded.magics, None
    if magics is None:
        return
    try:
        magics.close()
    finally:
        render.unregister(ipython)
        for kind in ("line", "cell"):
            ipython.magics_manager.magics[kind].pop("tp", None)
        ipython.magics_manager.registry.pop(TpMagics.__name__, None)


def current() -> TpMagics | None:
    """The loaded magics (None before `%load_ext tp_jupyter`)."""
    return _Loaded.magics
