"""Tab completion of `%tp` in a real IPython 9 shell (its Completer, in-process), and the
`%tp?` help built from the grammar. Live words from a connected daemon are shown by
test_sandbox_magics."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def completions(ip: Any, code: str) -> list[str]:
    """What the shell offers at the end of `code` (as Tab in a notebook shows it)."""
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(code, len(code))]


def tp_words(ip: Any, code: str) -> list[str]:
    """Only the words the tp matcher offered (type "tp")."""
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(code, len(code)) if c.type == "tp"]


def test_tab_after_tp_offers_every_subcommand_and_nothing_else(ip: Any) -> None:
    from tp_jupyter import cli

    assert completions(ip, "%tp ") == sorted(cli.subcommands(cli.build_parser()).choices)
    assert completions(ip, "%tp st") == ["status"]
    assert completions(ip, "%tp con") == ["config", "connect"]


def test_tab_completes_flags_and_their_choices(ip: Any) -> None:
    assert completions(ip, "%tp intercept x --http-ma") == ["--http-match"]
    assert completions(ip, "%tp wiretap x --http-path") == [
        "--http-path-equal", "--http-path-prefix", "--http-path-regex"]
    assert "--namespace" in completions(ip, "%tp intercept x -")
    assert completions(ip, "%tp status --format ") == ["default", "json", "yaml"]
    assert completions(ip, "%tp status --format=y") == ["yaml"]
    assert completions(ip, "%tp config ") == ["view"]
    assert completions(ip, "%tp config view --fo") == ["--format"]


def test_the_cell_magic_completes_only_intercept_and_wiretap(ip: Any) -> None:
    assert completions(ip, "%%tp ") == ["intercept", "wiretap"]
    assert completions(ip, "%%tp intercept x --n") == ["--name", "--namespace"]


def test_without_a_daemon_namespaces_and_workloads_complete_to_nothing(ip: Any) -> None:
    assert tp_words(ip, "%tp list -n ") == []
    # no workload or intercept names: only the subcommand's flags are offered
    assert all(w.startswith("--") for w in tp_words(ip, "%tp intercept "))
    assert tp_words(ip, "%tp leave ") == ["--format", "--help"]


@pytest.fixture
def silent_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A socket where the daemon's would be that accepts and never answers."""
    from tp_daemon import paths

    home = Path("/tmp") / f"tpc-{tmp_path.name[-8:]}"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("TP_HOME", str(home))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(paths.socket_path()))
    server.listen(8)
    try:
        yield
    finally:
        server.close()
        paths.socket_path().unlink()
        home.rmdir()


def test_a_daemon_that_does_not_answer_costs_the_completion_timeout_not_a_stuck_prompt(
        ip: Any, silent_daemon: None) -> None:
    from tp_protocol.settings import get_settings

    limit = get_settings().notebook.completion_timeout
    started = time.monotonic()
    assert tp_words(ip, "%tp list -n ") == []
    assert time.monotonic() - started < 2 * limit + 1


def test_tp_question_mark_lists_every_subcommand_with_one_line_each(
        ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from tp_jupyter import cli

    ip.run_line_magic("pinfo", "%tp")          # what `%tp?` runs
    shown = capsys.readouterr().out
    sub = cli.subcommands(cli.build_parser())
    helps = {a.dest: a.help for a in sub._choices_actions}
    lines = shown.splitlines()
    for name in sub.choices:
        mine = [line for line in lines if line.split()[:1] == [name]]
        assert len(mine) == 1, (name, shown)
        assert mine[0].split(None, 1)[1] == helps[name]
    assert "%%tp intercept WORKLOAD" in shown
    assert "--format json|yaml" in shown


def test_unloading_the_extension_removes_the_completer(ip: Any) -> None:
    ip.run_line_magic("unload_ext", "tp_jupyter")
    try:
        assert "intercept" not in completions(ip, "%tp ")
    finally:
        ip.run_line_magic("load_ext", "tp_jupyter")


def test_a_jupyter_kernel_answers_complete_requests_with_the_tp_words(
        tmp_path: Path) -> None:
    """What JupyterLab's Tab sends: a `complete_request` to an ipykernel kernel."""
    import os

    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3",
                              env={**os.environ, "TP_HOME": str(tmp_path)})
    try:
        reply = kc.execute_interactive("%load_ext tp_jupyter", timeout=60)
        assert reply["content"]["status"] == "ok"
        for code, words in [("%tp ver", ["version"]),
                            ("%tp status --format ", ["default", "json", "yaml"]),
                            ("%%tp ", ["intercept", "wiretap"])]:
            msg_id = kc.complete(code, len(code))
            msg = kc.get_shell_msg(timeout=30)
            assert msg["parent_header"]["msg_id"] == msg_id
            content = msg["content"]
            assert content["status"] == "ok" and content["matches"] == words, content
            assert content["cursor_end"] == len(code)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
