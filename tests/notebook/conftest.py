"""Fixtures of the notebook front's tests: an isolated daemon home, a real IPython shell
with the extension loaded, and stand-in `intercept`/`leave` subcommands for the tests that
exercise the cell form and the notebook session without a cluster."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def isolated_daemon_home(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here talks to a real daemon by accident: $TP_HOME is a fresh folder."""
    monkeypatch.setenv("TP_HOME", str(tmp_path_factory.mktemp("tp-home")))


@dataclass
class FakeCluster:
    """Stands in for the daemon's intercept/leave commands (the grammar is the real one's)."""

    intercepts: dict[str, list[str]] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)

    def register(self, sub: Any) -> None:
        p = sub.add_parser("intercept")
        p.add_argument("workload")
        p.add_argument("-n", "--namespace")
        p.add_argument("-p", "--port", required=True)
        p.add_argument("--http-match", action="append", default=[])
        p.add_argument("--name")
        p.set_defaults(func=self._intercept)
        p = sub.add_parser("leave")
        p.add_argument("name")
        p.set_defaults(func=self._leave)

    def _intercept(self, args: argparse.Namespace) -> Any:
        from tp_jupyter.errors import UsageError

        if args.workload == "missing":
            raise UsageError("workload missing not found in namespace default; "
                             "see `tp list`")
        name = args.name or f"{args.workload}-{args.namespace or 'default'}"
        self.calls.append(["intercept", name, args.port])
        self.intercepts[name] = [args.port, *args.http_match]
        return argparse.Namespace(name=name)

    def _leave(self, args: argparse.Namespace) -> None:
        from tp_jupyter.errors import UsageError

        self.calls.append(["leave", args.name])
        if self.intercepts.pop(args.name, None) is None:
            raise UsageError(f"no intercept named {args.name}; see `tp list`")


@pytest.fixture
def ip() -> Iterator[Any]:
    """A real InteractiveShell with `%load_ext tp_jupyter`; unloaded afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "tp_jupyter")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "tp_jupyter")
        shell.reset(new_session=False)   # no handler leaks into the next test


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    """Adds stand-in intercept/leave subcommands to the parser the notebook session uses."""
    from tp_jupyter import cli, session

    fake = FakeCluster()
    real = cli.build_parser

    def build() -> argparse.ArgumentParser:
        parser = real()
        sub = cli.subcommands(parser)
        for name in ("intercept", "leave"):   # replace the daemon-backed ones
            sub.choices.pop(name, None)
        fake.register(sub)
        return parser

    monkeypatch.setattr(session, "build_parser", build)
    return fake
