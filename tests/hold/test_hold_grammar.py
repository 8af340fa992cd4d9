"""The hold grammar without a cluster: `tp` and `%tp` share it, `tp --help` and `%tp?` list
it, and mistakes that need no daemon to spot are one-line errors before anything is asked."""

from __future__ import annotations

from typing import Any

import pytest

from tp_jupyter import cli


def _error(capsys: Any, *argv: str) -> str:
    assert cli.main(list(argv)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tp: "), err
    return err


def test_tp_help_and_the_magic_help_list_hold_and_held(capsys: Any) -> None:
    from tp_jupyter.magics import SUBCOMMANDS, _help_text

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "hold" in out and "held" in out
    lines = _help_text().splitlines()
    assert any(line.split()[:1] == ["hold"] for line in lines)
    assert any(line.split()[:1] == ["held"] for line in lines)
    assert {"hold", "held"} <= set(SUBCOMMANDS)


def test_intercept_takes_hold_and_a_hold_timeout_in_the_shared_grammar() -> None:
    args = cli.build_parser().parse_args(
        ["intercept", "web", "-p", "8080", "--hold", "--hold-timeout", "5"])
    assert args.hold and args.hold_timeout == 5.0


def test_wiretap_takes_hold_and_a_hold_timeout_in_the_shared_grammar() -> None:
    args = cli.build_parser().parse_args(
        ["wiretap", "web", "-p", "8080", "--hold", "--hold-timeout", "5"])
    assert args.hold and args.hold_timeout == 5.0


@pytest.mark.parametrize(("argv", "words"), [
    (["held", "--drop"], "name the held request"),
    (["held", "h1", "--drop", "--body", "x"], "--drop takes no"),
    (["held", "h1", "--path", "/x"], "edits go with --forward"),
    (["held", "h1", "--respond", "200", "--method", "GET"], "--method and --path"),
    (["held", "h1", "--forward", "local", "-H", "novalue"], "'Name: value'"),
    (["held", "h1", "--forward", "elsewhere"], "invalid choice"),
    (["hold"], "required: NAME"),
    (["hold", "web", "--timeout", "0"], "more than 0 seconds"),
    (["intercept", "web", "-p", "8080", "--hold-timeout", "5"], "goes with --hold"),
    (["wiretap", "web", "-p", "8080", "--hold-timeout", "5"], "goes with --hold"),
])
def test_mistakes_are_one_line_errors_before_the_daemon_is_asked(
        capsys: Any, monkeypatch: Any, tmp_path: Any, argv: list[str], words: str) -> None:
    monkeypatch.setenv("TP_HOME", str(tmp_path))   # no daemon there: nothing is asked
    assert words in _error(capsys, *argv)


def test_a_hold_cell_without_a_handler_is_one_line_error_before_any_intercept(
        monkeypatch: Any, tmp_path: Any) -> None:
    from tp_jupyter import handlers, session
    from tp_jupyter.errors import UsageError

    monkeypatch.setenv("TP_HOME", str(tmp_path))
    notebook = session.NotebookSession()
    with pytest.raises(UsageError) as e:
        notebook.intercept_cell(["intercept", "web", "--http-match", "x-dev=me", "--hold"],
                                "x = 1\n")
    assert "defines no handler" in str(e.value) and "\n" not in str(e.value)
    assert not notebook.cells and not handlers.servers()   # nothing served, nothing made


def test_a_held_wiretap_cell_without_a_handler_is_one_line_error_before_any_mirror(
        monkeypatch: Any, tmp_path: Any) -> None:
    from tp_jupyter import handlers, session
    from tp_jupyter.errors import UsageError

    monkeypatch.setenv("TP_HOME", str(tmp_path))
    notebook = session.NotebookSession()
    with pytest.raises(UsageError) as e:
        notebook.intercept_cell(["wiretap", "web", "--hold", "--hold-timeout", "5"],
                                "x = 1\n")
    assert "defines no handler" in str(e.value) and "\n" not in str(e.value)
    assert not notebook.cells and not handlers.servers()


def test_the_panels_held_row_has_the_four_decisions_and_a_text_fallback() -> None:
    from multidict import CIMultiDict

    from tp_jupyter.held_panel import HeldSection, held_html
    from tp_jupyter.holding import HeldList, HeldRequest

    req = HeldRequest("h7", "debug", "web", "shop", "POST", "/cart", CIMultiDict(
        [("X-Dev", "me")]), b"{}", "10.0.0.1:5555", 1.0, 61.0)
    assert req.headers["x-dev"] == "me"          # header names are case-insensitive
    section = HeldSection(["debug"])
    row = section._row(req)
    classes = [c for child in row.children for c in child._dom_classes]
    assert classes == ["tp-held-forward-local", "tp-held-forward-cluster",
                       "tp-held-respond", "tp-held-drop"]
    assert "h7" in held_html([req]) and "/cart" in held_html([req])
    listed = HeldList([req], {"debug": 60.0})
    assert str(listed).splitlines()[1].startswith("  h7  POST /cart  (debug, from 10.0.0.1")
    assert str(listed).splitlines()[-1] == "Holding: debug (to the cluster after 60s untouched)"
    assert "tp-held-list" in listed._repr_html_()


def test_a_held_mirror_copy_is_not_forwarded_to_the_cluster_and_its_hold_says_drops(
        monkeypatch: Any, tmp_path: Any) -> None:
    from multidict import CIMultiDict

    from tp_jupyter.errors import UsageError
    from tp_jupyter.holding import HeldList, HeldRequest

    monkeypatch.setenv("TP_HOME", str(tmp_path))   # no daemon there: nothing is asked
    copy = HeldRequest("h3", "wt", "web", "shop", "GET", "/a", CIMultiDict(), b"",
                       "10.0.0.1:5555", 1.0, 11.0, "mirror")
    with pytest.raises(UsageError) as e:
        copy.forward(to="cluster")
    assert "mirror copy" in str(e.value) and "\n" not in str(e.value)
    from tp_jupyter.held_panel import HeldSection

    buttons = {c._dom_classes[0]: c for c in HeldSection()._row(copy).children
               if c._dom_classes and c._dom_classes[0].startswith("tp-held-")}
    assert buttons["tp-held-forward-cluster"].disabled
    assert not buttons["tp-held-forward-local"].disabled
    listed = HeldList([copy], {"wt": 10.0}, {"wt": 2})
    assert listed.holding_line() == (
        "Holding: wt (mirror copies dropped after 10s untouched: 2 so far)")
    assert listed.to_dict()["holding"] == [{"name": "wt", "timeout": 10.0,
                                            "copies_dropped": 2}]
