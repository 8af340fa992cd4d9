"""`tp apply -f` / `tp delete -f` against the sandbox: a session file connects and makes
its intercepts; an edited file changes only what changed; a bad file is refused with its
line and field before anything changes. The tests run in order and share one connection."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tp_cli_testing import Tp
from tp_output_testing import check

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]


def session(ns: str, *intercepts: str) -> str:
    return f"name: ops-work\nconnection:\n  namespace: {ns}\nintercepts:\n" + "".join(
        intercepts)


def dps(match: str = "me") -> str:
    return ("  - name: dps\n    workload: dataprocessingservice\n    port: 3801\n"
            f"    http_match:\n      x-dev: {match}\n    mount: false\n")


VLJ = "  - name: vlj\n    workload: verylargejavaservice\n    port: 3802\n    mount: false\n"
VLD = ("  - name: vld\n    workload: verylargedatastore\n    port: 3803\n    mount: false\n"
       "    http_match: [x-dev=vld]\n")


def applied(tp: Tp, path: Path) -> dict[str, Any]:
    proc = tp("apply", "-f", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(check(json.loads(proc.stdout), "apply"))


def mine(tp: Tp) -> dict[str, dict[str, Any]]:
    status = json.loads(tp("status", "--format", "json").stdout)
    return {ic["name"]: ic for ic in status["intercepts"]}


def test_a_malformed_session_file_is_refused_with_its_line_and_field(
        tp: Tp, home: Path, demo: str) -> None:
    path = home / "bad.yaml"
    text = session(demo, dps(), "  - workload: verylargejavaservice\n    port: eighty\n")
    path.write_text(text)
    line = text.splitlines().index("    port: eighty") + 1
    proc = tp("apply", "-f", str(path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"tp: {path}:{line}: intercepts[1].port: expected a number"
    path.write_text(text.replace("port: eighty", "prot: 3802"))
    doc = json.loads(tp("apply", "-f", str(path), "--format", "json").stdout)
    assert check(doc, "error")["error"]["message"].startswith(
        f"{path}:{line}: intercepts[1].prot: unknown field")
    # nothing changed: not even a daemon was started
    assert json.loads(tp("status", "--format", "json").stdout)["daemon_running"] is False


def test_apply_connects_and_creates_every_intercept_of_the_file(
        tp: Tp, home: Path, demo: str) -> None:
    path = home / "session.yaml"
    path.write_text(session(demo, dps(), VLJ))
    data = applied(tp, path)
    assert data["connected"] is True
    assert sorted(data["created"]) == ["dps", "vlj"] and data["replaced"] == data["kept"] == []
    assert {d["name"]: d["header_matches"] for d in data["intercepts"]} == {
        "dps": [{"name": "x-dev", "regex": "me"}], "vlj": []}
    now = mine(tp)
    assert sorted(now) == ["dps", "vlj"] and now["dps"]["namespace"] == demo


def test_re_applying_the_same_file_touches_nothing(tp: Tp, home: Path) -> None:
    before = mine(tp)
    data = applied(tp, home / "session.yaml")
    assert data["connected"] is False
    assert sorted(data["kept"]) == ["dps", "vlj"]
    assert data["created"] == data["replaced"] == data["left"] == data["intercepts"] == []
    assert {n: ic["id"] for n, ic in mine(tp).items()} == {n: ic["id"]
                                                           for n, ic in before.items()}


def test_an_edited_file_leaves_removed_creates_new_replaces_changed_and_keeps_the_rest(
        tp: Tp, home: Path, demo: str) -> None:
    path = home / "session.yaml"
    path.write_text(session(demo, dps(), VLJ))
    applied(tp, path)
    created_before = {n: ic["created"] for n, ic in mine(tp).items()}
    path.write_text(session(demo, dps("you"), VLD))     # vlj removed, dps changed, vld new
    data = applied(tp, path)
    assert (data["created"], data["replaced"], data["kept"], data["left"]) == (
        ["vld"], ["dps"], [], ["vlj"])
    now = mine(tp)
    assert sorted(now) == ["dps", "vld"]
    assert now["dps"]["header_matches"] == [{"name": "x-dev", "regex": "you"}]
    assert now["dps"]["created"] != created_before["dps"]
    path.write_text(session(demo, dps("you"), VLD, VLJ))   # only vlj comes back
    data = applied(tp, path)
    assert (data["created"], data["replaced"], sorted(data["kept"]), data["left"]) == (
        ["vlj"], [], ["dps", "vld"], [])


def test_an_intercept_made_by_hand_is_not_left_by_apply(
        tp: Tp, home: Path, demo: str) -> None:
    path = home / "session.yaml"
    proc = tp("intercept", "verylargedatastore", "-n", demo, "-p", "3804", "--name",
              "by-hand", "--mount", "false", "--http-match", "x-dev=hand")
    assert proc.returncode == 0, proc.stderr
    path.write_text(session(demo, dps("you")))
    data = applied(tp, path)
    assert sorted(data["left"]) == ["vld", "vlj"] and data["kept"] == ["dps"]
    assert sorted(mine(tp)) == ["by-hand", "dps"]
    assert tp("leave", "by-hand").returncode == 0


def test_delete_leaves_what_the_session_made(tp: Tp, home: Path) -> None:
    proc: subprocess.CompletedProcess[str] = tp("delete", "-f", str(home / "session.yaml"),
                                                "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = check(json.loads(proc.stdout), "delete")
    assert data == {"session": "ops-work", "left": ["dps"], "missing": []}
    assert mine(tp) == {}
    again = check(json.loads(tp("delete", "-f", str(home / "session.yaml"),
                                "--format", "json").stdout), "delete")
    assert again == {"session": "ops-work", "left": [], "missing": ["dps"]}
