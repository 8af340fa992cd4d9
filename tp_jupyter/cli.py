"""The `tp` command line: one argument grammar shared with the `%tp` magics.

`build_parser()` is the single parser; `run(argv)` parses and dispatches to the
plain-Python API and returns what it returned (an object that renders itself);
`main()` prints it (as text, or with `--format json|yaml` as a document on stdout) and
turns errors into one-line messages and exit codes; with `--format json|yaml` an error is
a document too (`{"error": {"code": ..., "message": ...}}` on stdout, exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from tp_daemon import paths
from tp_protocol.bytecode import enable_cache
from tp_protocol.errors import TpJupyterError
from tp_sandbox.errors import SandboxError

from tp_jupyter import daemon_spawn
from tp_jupyter.errors import TpError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so magics can reuse it."""

    def error(self, message: str) -> NoReturn:
        command = " ".join(["tp", *self.prog.split()[1:]])
        raise UsageError(f"{message} (see '{command} --help')")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr if status else sys.stdout, end="")
        raise SystemExit(status)


Registrar = Callable[[argparse._SubParsersAction], None]  # type: ignore[type-arg]


def _registrars() -> list[Registrar]:
    """Modules that add subcommands; each owns its part of the grammar."""
    from tp_daemon.root.cli import register as register_root_daemon
    from tp_sandbox.cli import register as register_sandbox

    from tp_jupyter.apply_commands import register as register_apply
    from tp_jupyter.commands import register as register_commands
    from tp_jupyter.hold_commands import register as register_hold

    return [register_commands, register_apply, register_sandbox, _register_demo,
            register_root_daemon, register_hold]


def _register_demo(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser(
        "demo", help="replay the seed walkthrough on the sandbox cluster (the main job)",
        description="Start the sandbox with two laptops, deploy the demo app, then connect, "
                    "intercept, run the team workflow and show the traffic table.")

    def run_demo(_args: argparse.Namespace) -> Any:
        from tp_jupyter.demo import run_demo as run

        return run()

    demo.set_defaults(func=run_demo)


def build_parser() -> argparse.ArgumentParser:
    """The `tp` grammar: every subcommand sets `func(args) -> result`."""
    parser = _Parser(prog="tp", description="Telepresence-style development from Jupyter.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for register in _registrars():
        register(sub)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """The `tp` parser's subcommand action (its `choices` map names to parsers)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the tp parser has no subcommands")


def run(argv: Sequence[str]) -> Any:
    """Parse `argv` and run the subcommand; returns its result object (a `Formatted`
    document with `--format json|yaml`)."""
    from tp_jupyter import output

    args = build_parser().parse_args(list(argv))
    return output.formatted(args.func(args), getattr(args, "format", None))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tp` console script."""
    if argv is None:  # the process's entry point (the console script), not a caller's
        enable_cache(paths.bytecode_cache())
    argv = sys.argv[1:] if argv is None else list(argv)
    daemon_spawn.spawn_early(argv)  # its start overlaps ours (the imports of run())
    from tp_jupyter import output  # after the spawn: it imports grpc and the stubs

    fmt = output.requested_format(argv)
    document = fmt in ("json", "yaml")
    try:
        result = run(argv)
    except (TpError, SandboxError, TpJupyterError) as e:
        if document:
            code = getattr(e, "code", "sandbox" if isinstance(e, SandboxError) else "error")
            print(output.dump(output.error_document(e, code), fmt))
        else:
            print(f"tp: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if document:
            print(output.dump(output.error_document(KeyboardInterrupt("interrupted"),
                                                    "interrupted"), fmt))
        return 130
    finally:
        daemon_spawn.abandon()  # started for a connect that never came (bad arguments)
    if isinstance(result, int):
        return result
    if result is not None:
        text = str(result)
        if text:
            print(text)
    return 0


def console() -> None:
    """The `tp` console script and `python -m tp_jupyter.cli`: `main()`; a connect then
    ends without the interpreter's finalization (`tp_jupyter.quick_exit`)."""
    code = main()
    if sys.argv[1:2] == ["connect"]:
        from tp_jupyter import quick_exit

        quick_exit.exit_now(code)
    sys.exit(code)


if __name__ == "__main__":
    console()
