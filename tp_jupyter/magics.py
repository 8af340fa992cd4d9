"""The IPython extension: `%tp` (line) and `%%tp intercept` (cell) magics.

    %load_ext tp_jupyter
    %tp connect | status | list | intercept ... -p PORT | leave NAME | quit | uninstall ...
    %tp traffic [NAME] [-o VAR]     %tp version     %tp config view     (--format json|yaml)
    %tp hold NAME [--off]    %tp held [ID --forward local|cluster | --respond S | --drop]
    %%tp intercept WORKLOAD [-n NS] [--http-match K=V ...]
    def handler(request): ...          # the cell body: a function, or a WSGI/ASGI app
    %%tp wiretap WORKLOAD [...]          # the same, with copies (mirror mode)
    %%tp apply [--format json]         # the cell body: a session file (docs/session-file.md)

The magics only parse: the line is split with shlex and handed to the notebook's
`session.NotebookSession`, which parses it with the `tp` CLI's one parser, runs it and
owns what it made (as IPython's autoreload magics hand off to its reloader). Results
render themselves (`render.Rendered`). `%tp?` lists every subcommand of the grammar, one
line each; Tab completes `%tp` lines (`tp_jupyter.completion`). `%unload_ext tp_jupyter`
closes the session: every intercept made here is left and every thread stops.

Errors: every TpError (and the sandbox's SandboxError) becomes an IPython `UsageError`
with the same one-line text; exceptions raised by the cell body itself propagate
unchanged so the user sees their own traceback.
"""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from tp_protocol.errors import TpJupyterError
from tp_sandbox.errors import SandboxError

from tp_jupyter import cli, completion, notebook_apply, session
from tp_jupyter.errors import TpError

SUBCOMMANDS = ["connect", "status", "list", "intercept", "leave", "quit", "uninstall",
               "traffic", "version", "config", "replace", "apply", "delete", "gather-logs",
               "hold", "held", "wiretap"]
"""The subcommands the usage error names (`%tp?` lists every one the grammar has)."""


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as e:
        raise IPythonUsageError(f"cannot split the arguments ({e}); close the quote") from None


@magics_class
class TpMagics(Magics):
    """`%tp` and `%%tp`: parse the line, hand it to the notebook session."""

    def __init__(self, shell: Any, notebook: session.NotebookSession) -> None:
        super().__init__(shell)
        self.session = notebook

    @line_cell_magic
    def tp(self, line: str, cell: str | None = None) -> Any:
        """(replaced with the parser's help when the extension loads)"""
        argv = _split(line)
        if cell is None and not argv:
            raise IPythonUsageError("%tp needs a subcommand: " + ", ".join(SUBCOMMANDS)
                                    + "; see %tp?")
        try:
            if cell is not None and argv[:1] == ["apply"]:   # a session file in the cell
                return notebook_apply.apply_cell(self.session, argv, cell)
            if cell is not None:
                return self.session.intercept_cell(argv, cell)
            return self.session.run(argv)
        except (TpError, SandboxError, TpJupyterError) as e:
            raise IPythonUsageError(str(e)) from None


def _help_text() -> str:
    """The docstring `%tp?` shows: one line per subcommand, from the `tp` grammar itself."""
    try:
        parser = cli.build_parser()
    except Exception as e:  # help must not break loading
        return f"%tp SUBCOMMAND ...  (the tp parser failed to build: {e})"
    sub = cli.subcommands(parser)
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    width = max(len(name) for name in sub.choices)
    lines = ["%tp SUBCOMMAND [ARGS]    the `tp` command line, inside the notebook",
             "%%tp intercept WORKLOAD [-n NS] [--http-match K=V ...] [--hold]",
             "    the cell defines a handler (a function taking a request, or a WSGI/ASGI",
             "    app); it is served in the kernel and re-running the cell swaps it.",
             "%%tp wiretap WORKLOAD [-n NS] [--http-path-prefix P] [--http-method M ...] "
             "[--hold]",
             "    the same with copies: the cluster's app keeps answering callers; see",
             "    tp_jupyter.compare(df) for where the cell would answer differently.",
             "%tp traffic --filter '~m POST & ~s 5..' [--format har|csv|curl]",
             "    filter (mitmproxy's syntax) and export traffic; in Python: traffic(EXPR),",
             "    to_har/read_har, to_curl/to_python, replay(row, to=, method=, path=, ...),",
             "    to_pytest(rows, path, against=...)",
             "", "Subcommands:"]
    lines += [f"  {name.ljust(width)}  {helps.get(name, '')}".rstrip() for name in sub.choices]
    lines += ["", "`%tp SUBCOMMAND --help` shows a subcommand's arguments; most take "
              "--format json|yaml.", "Tab completes subcommands, flags, namespaces, "
              "workloads and intercept names."]
    return "\n".join(lines)


class _Loaded:
    magics: TpMagics | None = None


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tp_jupyter`: register `%tp` and `%%tp`."""
    if _Loaded.magics is not None:
        return
    TpMagics.tp.__doc__ = _help_text()
    _Loaded.magics = TpMagics(ipython, session.start(ipython))
    ipython.register_magics(_Loaded.magics)
    completion.install(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext tp_jupyter`: close the session (intercepts, servers, threads), drop
    the magics."""
    magics, _Loaded.magics = _Loaded.magics, None
    if magics is None:
        return
    try:
        completion.uninstall(ipython)
        session.stop()
    finally:
        for kind in ("line", "cell"):
            ipython.magics_manager.magics[kind].pop("tp", None)
        ipython.magics_manager.registry.pop(TpMagics.__name__, None)
