"""Hold and edit end to end in the sandbox (root): a real caller's request waits on the
laptop until the developer forwards it (edited) to local code or the cluster, answers it,
drops it, or forgets it (then it goes to the cluster); the caller gets what was decided.

Laptop 1 runs the local demo app ("blue") and intercepts personally (`x-hold: yes`)
with `--hold`; the app in the cluster answers "green". Callers: curl in laptop 1 through
the connected daemon, and curl inside the cluster's verylargejavaservice pod.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for
from tp_cli_testing import SVC, demo_namespace, developer, one_line_error, tp
from tp_output_testing import check

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(400)]

NAME = "held"


@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    with demo_namespace(sandbox, core, "hold") as namespace:
        yield namespace


@pytest.fixture(scope="module")
def dev(sandbox: Any, demo: str) -> Iterator[Laptop]:
    with developer(sandbox, 1, "blue") as lap:
        yield lap


def _held(lap: Laptop) -> list[dict[str, Any]]:
    out = tp(lap, "held --format json")
    assert out.returncode == 0, out.stderr
    return list(check(json.loads(out.stdout), "held")["held"])


def _caller(lap: Laptop, ns: str, path: str = "/color", *extra: str
            ) -> subprocess.Popen[str]:
    """A real HTTP caller in laptop 1 whose request the intercept holds: prints the
    status line, then the body."""
    return lap.popen(["curl", "-sS", "--max-time", "60", "-H", "x-hold: yes", *extra,
                      "-w", "\\n%{http_code}", f"http://{SVC}.{ns}:3000{path}"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_held(lap: Laptop, path: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def waiting() -> bool:
        found[:] = [h for h in _held(lap) if h["path"] == path]
        return bool(found)

    wait_for(waiting, 30, f"the request for {path} to be held")
    return found[0]


def _row(lap: Laptop, path: str) -> dict[str, Any]:
    """The traffic row of the (held) request for `path`, once the agent's row came."""
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        out = tp(lap, "traffic --format json")
        assert out.returncode == 0, out.stderr
        found[:] = [r for r in check(json.loads(out.stdout), "traffic")["rows"]
                    if r["path"] == path]
        return bool(found)

    wait_for(arrived, 30, f"the traffic row of {path}")
    return found[0]


def _answer(caller: subprocess.Popen[str]) -> tuple[int, str]:
    out, _err = caller.communicate(timeout=60)
    body, _, status = out.rpartition("\n")
    return int(status or 0), body.strip()


def test_hold_with_nothing_to_forward_to_is_one_line_error_and_leaves_nothing(
        dev: Laptop, demo: str) -> None:
    one_line_error(tp(dev, f"intercept {SVC} -n {demo} -p 3999 --http-match x-hold=yes "
                           f"--hold --name {NAME} --mount false"),
                   "--hold needs", "127.0.0.1:3999")
    listing = tp(dev, f"list -n {demo}").stdout
    assert f"{SVC}: ready to intercept" in listing, listing
    one_line_error(tp(dev, "hold nosuch"), "nosuch", "tp list")


def test_a_held_request_is_edited_and_forwarded_to_local_code(dev: Laptop, demo: str) -> None:
    made = tp(dev, f"intercept {SVC} -n {demo} -p 3000 --http-match x-hold=yes --hold "
                   f"--hold-timeout 45 --name {NAME} --mount false", timeout=200)
    assert made.returncode == 0, made.stderr
    listing = tp(dev, "held").stdout
    assert listing.splitlines() == [
        "No held requests", f"Holding: {NAME} (to the cluster after 45s untouched)"], listing
    # requests without the header are not held: the cluster answers at once
    plain = dev.run(f"curl -sS --max-time 10 http://{SVC}.{demo}:3000/color")
    assert plain.stdout.strip() == '"green"', plain
    caller = _caller(dev, demo, "/colour")
    held = _wait_held(dev, "/colour")
    assert held["method"] == "GET" and held["intercept"] == NAME
    assert held["headers"].get("x-hold") == "yes"
    assert caller.poll() is None          # the caller is still waiting
    one = tp(dev, f"held {held['id']} --format json")
    assert check(json.loads(one.stdout), "held-request")["path"] == "/colour"
    decided = tp(dev, f"held {held['id']} --forward local --path /color --format json")
    assert decided.returncode == 0, decided.stderr
    outcome = check(json.loads(decided.stdout), "held-outcome")
    assert outcome["decided"] == "forward local" and outcome["status"] == 200
    assert _answer(caller) == (200, '"blue"')
    assert not _held(dev)
    # the row says the request was held and what was decided
    row = _row(dev, "/colour")
    assert (row["mode"], row["routed_to"], row["status"]) == ("hold", "local", 200), row


def test_a_held_request_is_edited_and_forwarded_to_the_cluster(dev: Laptop, demo: str) -> None:
    caller = _caller(dev, demo, "/paint", "-X", "POST", "-d", "x=1")
    held = _wait_held(dev, "/paint")
    assert held["method"] == "POST" and held["body"] == "x=1"
    decided = tp(dev, f"held {held['id']} --forward cluster --method GET --path /color")
    assert decided.returncode == 0, decided.stderr
    assert "forwarded to the cluster" in decided.stdout and "200" in decided.stdout
    assert _answer(caller) == (200, '"green"')


def test_a_held_request_is_answered_from_the_notebook_api(dev: Laptop, demo: str) -> None:
    caller = _caller(dev, demo, "/teapot")
    _wait_held(dev, "/teapot")
    script = ("import tp_jupyter\n"
              "req = [r for r in tp_jupyter.held() if r.path == '/teapot'][0]\n"
              "print(req.respond(418, {'short': 'stout'}, {'x-made-by': 'hold'}))\n")
    out = dev.run([sys.executable, "-c", script], timeout=60)
    assert out.returncode == 0, out.stderr
    assert "answered here: its caller got 418" in out.stdout
    status, body = _answer(caller)
    assert (status, json.loads(body)) == (418, {"short": "stout"})


def test_a_dropped_request_gets_a_502_that_says_so(dev: Laptop, demo: str) -> None:
    caller = _caller(dev, demo, "/drop-me")
    held = _wait_held(dev, "/drop-me")
    assert tp(dev, f"held {held['id']} --drop").returncode == 0
    status, body = _answer(caller)
    assert status == 502 and "dropped on the workstation" in body, body
    row = _row(dev, "/drop-me")
    assert (row["mode"], row["routed_to"], row["status"]) == ("hold", "dropped", 502), row
    # deciding it again: one line, nothing changes
    one_line_error(tp(dev, f"held {held['id']} --forward local"),
                   "already answered", "dropped")


def test_forwarding_an_answered_request_from_the_api_isone_line_error(
        dev: Laptop, demo: str) -> None:
    caller = _caller(dev, demo, "/twice")
    _wait_held(dev, "/twice")
    script = ("import tp_jupyter\n"
              "req = [r for r in tp_jupyter.held() if r.path == '/twice'][0]\n"
              "req.path = '/color'\n"
              "print(req.forward(to='cluster'))\n"
              "try:\n"
              "    req.forward(to='local')\n"
              "except tp_jupyter.UsageError as e:\n"
              "    print('ERROR', e)\n")
    out = dev.run([sys.executable, "-c", script], timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert "forwarded to the cluster: its caller got 200" in lines[0]
    assert lines[1].startswith("ERROR held request") and "already answered" in lines[1]
    assert _answer(caller) == (200, '"green"')


def test_an_untouched_held_request_goes_to_the_cluster_after_the_timeout(
        dev: Laptop, demo: str, core: Any) -> None:
    from kubernetes.stream import stream

    assert "untouched for 2s" in tp(dev, f"hold {NAME} --timeout 2").stdout
    pod = core.list_namespaced_pod(demo, label_selector="app=verylargejavaservice").items[0]
    # a caller inside the cluster; nobody decides: after 2 s the app in the cluster answers
    started = time.monotonic()
    out = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, demo,
                 command=["curl", "-sS", "--max-time", "30", "-H", "x-hold: yes",
                          "-w", "\\n%{http_code}", f"http://{SVC}:3000/color?late=1"],
                 stdout=True, stderr=True, stdin=False, tty=False)
    waited = time.monotonic() - started
    assert [line for line in str(out).splitlines() if line] == ['"green"', "200"]
    assert waited >= 2.0, waited
    assert not _held(dev)
    row = _row(dev, "/color?late=1")
    assert (row["mode"], row["routed_to"]) == ("hold", "cluster (timed out)"), row


def test_hold_off_sends_requests_on_and_stops_holding(dev: Laptop, demo: str) -> None:
    on = tp(dev, f"hold {NAME} --timeout 45 --format json")
    assert check(json.loads(on.stdout), "hold") == {"name": NAME, "on": True, "timeout": 45,
                                                    "released": 0}
    caller = _caller(dev, demo, "/color")
    _wait_held(dev, "/color")
    off = tp(dev, f"hold {NAME} --off")
    assert off.returncode == 0 and "1 held request(s) went on to the cluster" in off.stdout
    assert _answer(caller) == (200, '"green"')
    assert json.loads(tp(dev, "held --format json").stdout)["holding"] == []
    # no longer held: the local code answers matching requests at once
    now = dev.run(f"curl -sS --max-time 10 -H 'x-hold: yes' http://{SVC}.{demo}:3000/color")
    assert now.stdout.strip() == '"blue"'
    left = tp(dev, f"leave {NAME}")
    assert left.returncode == 0, left.stderr


def test_a_global_intercept_holds_each_request_of_a_keep_alive_connection(
        dev: Laptop, demo: str) -> None:
    made = tp(dev, f"intercept {SVC} -n {demo} -p 3000 --hold --name held-all --mount false",
              timeout=200)
    assert made.returncode == 0, made.stderr
    # two requests on one connection (curl reuses it): each is held and decided on its own
    caller = dev.popen(["curl", "-sS", "--max-time", "60", "-w", " %{http_code}\\n",
                        f"http://{SVC}.{demo}:3000/first", f"http://{SVC}.{demo}:3000/second"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = _wait_held(dev, "/first")
    assert tp(dev, f"held {first['id']} --forward cluster --path /color").returncode == 0
    second = _wait_held(dev, "/second")
    assert second["source"] == first["source"]   # the same connection
    assert tp(dev, f"held {second['id']} --respond 202 --body ok").returncode == 0
    out, err = caller.communicate(timeout=60)
    assert out.split() == ['"green"', "200", "ok", "202"], (out, err)
    # each exchange's row says what was decided for it
    assert _row(dev, "/first")["routed_to"] == "cluster"
    assert (_row(dev, "/second")["routed_to"], _row(dev, "/second")["status"]) == (
        "responded", 202)
    assert tp(dev, "leave held-all").returncode == 0


def test_a_held_mirror_copy_goes_to_local_code_and_an_untouched_one_is_dropped(
        dev: Laptop, demo: str) -> None:
    made = tp(dev, f"wiretap {SVC} -n {demo} -p 3000 --http-match x-copy=yes --hold "
                    "--hold-timeout 8 --name held-copies", timeout=200)
    assert made.returncode == 0, made.stderr
    # the caller gets the cluster's answer at once; only the copy waits
    url = f"http://{SVC}.{demo}:3000/color"
    first = dev.run(f"curl -sS --max-time 10 -H 'x-copy: yes' '{url}?copy=1'")
    assert first.stdout.strip() == '"green"', first
    held = _wait_held(dev, "/color?copy=1")
    assert held["mode"] == "mirror" and held["intercept"] == "held-copies"
    one_line_error(tp(dev, f"held {held['id']} --forward cluster"),
                   "mirror copy", "forward it to local")
    decided = tp(dev, f"held {held['id']} --forward local --format json")
    assert decided.returncode == 0, decided.stderr
    assert check(json.loads(decided.stdout), "held-outcome")["status"] == 200
    row = _row(dev, "/color?copy=1")
    assert (row["mode"], row["status"], row["local_status"]) == ("mirror", 200, 200), row
    assert row["local_response_body"].strip() == '"blue"', row
    # nobody decides: the copy is dropped after the hold's timeout, the caller never waits
    second = dev.run(f"curl -sS --max-time 10 -H 'x-copy: yes' '{url}?copy=2'")
    assert second.stdout.strip() == '"green"', second
    _wait_held(dev, "/color?copy=2")
    wait_for(lambda: not _held(dev), 30, "the untouched copy to be dropped")
    row = _row(dev, "/color?copy=2")
    assert row["mode"] == "mirror" and row["local_status"] == 0, row
    assert "dropped" in row["local_error"], row
    holding = json.loads(tp(dev, "held --format json").stdout)["holding"]
    assert holding == [{"name": "held-copies", "timeout": 8, "copies_dropped": 1}], holding
    assert tp(dev, "leave held-copies").returncode == 0
