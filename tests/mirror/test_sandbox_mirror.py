"""Wiretaps end to end in the sandbox, two developers on two laptops (root).

The tests run in order and share state: the demo app in the cluster answers "green";
developer A (laptop 1) runs a local copy answering "blue" and mirrors the workload;
developer B (laptop 2, "red") intercepts it personally and mirrors it too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for
from tp_cli_testing import SVC, demo_namespace, developer, one_line_error, tp

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

# 200 callers at once, each on its own connection; prints every answer as JSON
LOAD = """
import concurrent.futures, json, sys, urllib.request
url, n, header = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def one(i):
    req = urllib.request.Request(f"{url}?i={i}", headers=dict([header[0].split(":", 1)])
                                 if header else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read().decode().strip()
with concurrent.futures.ThreadPoolExecutor(n) as pool:
    print(json.dumps(list(pool.map(one, range(n)))))
"""


@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    with demo_namespace(sandbox, core, "mirror") as namespace:
        yield namespace


@pytest.fixture(scope="module")
def dev_a(sandbox: Any, demo: str) -> Iterator[Laptop]:
    with developer(sandbox, 1, "blue") as lap:
        yield lap


@pytest.fixture(scope="module")
def dev_b(sandbox: Any, dev_a: Laptop) -> Iterator[Laptop]:
    with developer(sandbox, 2, "red") as lap:
        yield lap


def _json(lap: Laptop, args: str) -> Any:
    proc = tp(lap, f"{args} --format json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _mirror_rows(lap: Laptop, name: str) -> list[dict[str, Any]]:
    return [r for r in _json(lap, f"traffic {name}")["rows"] if r["mode"] == "mirror"]


def _rows_once(lap: Laptop, name: str, count: int, within: float = 60
               ) -> list[dict[str, Any]]:
    """The mirror rows of `name` once there are at least `count` of them."""
    def enough() -> list[dict[str, Any]] | None:
        rows = _mirror_rows(lap, name)
        return rows if len(rows) >= count else None
    found: list[dict[str, Any]] = wait_for(enough, within, f"{count} mirror rows of {name}")
    return found


def _load(lap: Laptop, ns: str, n: int, *header: str) -> list[tuple[int, str]]:
    proc = lap.run([sys.executable, "-c", LOAD, f"http://{SVC}.{ns}:3000/color", str(n),
                    *header], timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [tuple(x) for x in json.loads(proc.stdout)]  # type: ignore[misc]


def test_a_wiretap_gives_every_caller_the_clusters_answer_and_rows_both_answers(
        dev_a: Laptop, demo: str) -> None:
    made = tp(dev_a, f"wiretap {SVC} -n {demo} -p 3000")
    assert made.returncode == 0, made.stderr
    assert "a copy of every HTTP request (the app answers)" in made.stdout
    answers = _load(dev_a, demo, 200)
    assert answers == [(200, '"green"')] * 200
    rows = _rows_once(dev_a, f"{SVC}-{demo}-wiretap", 200)
    assert sorted(r["path"] for r in rows) == sorted(f"/color?i={i}" for i in range(200))
    for r in rows:
        assert (r["status"], r["response_body"].strip()) == (200, '"green"')
        assert (r["local_status"], r["local_response_body"].strip(), r["local_error"]) == (
            200, '"blue"', "")
        assert (r["namespace"], r["workload"], r["routed_to"]) == (demo, SVC, "cluster")
        assert r["pod"].startswith(SVC) and r["developer"]
    listed = tp(dev_a, f"list -n {demo}")
    assert "Copies" in listed.stdout and "dropped" in listed.stdout, listed.stdout
    status = _json(dev_a, "status")
    mirror = next(ic for ic in status["intercepts"] if ic["mode"] == "mirror")
    assert mirror["mirror"]["copied"] >= 200 and mirror["mirror"]["dropped"] == 0
    assert "Mirrors:" in tp(dev_a, "status").stdout


def test_a_personal_intercept_and_a_mirror_on_one_workload_each_route_right(
        dev_a: Laptop, dev_b: Laptop, demo: str) -> None:
    made = tp(dev_b, f"intercept {SVC} -n {demo} -p 3000 --http-match x-dev=bob "
                     "--http-path-prefix /color --http-method GET --mount false")
    assert made.returncode == 0, made.stderr
    assert 'path starts with "/color"' in made.stdout and "method in (GET)" in made.stdout
    before = len(_mirror_rows(dev_a, f"{SVC}-{demo}-wiretap"))
    assert _load(dev_b, demo, 20, "x-dev:bob") == [(200, '"red"')] * 20
    assert _load(dev_a, demo, 20) == [(200, '"green"')] * 20
    rows = _rows_once(dev_a, f"{SVC}-{demo}-wiretap", before + 20)
    # A's mirror got copies of what the app answered, never of B's requests
    assert len(rows) == before + 20
    assert all(r["request_headers"].get("x-dev") != "bob" for r in rows)
    b_rows = _json(dev_b, f"traffic {SVC}-{demo}")["rows"]
    assert len([r for r in b_rows if r["mode"] == "intercept"]) == 20


def test_two_developers_mirror_one_workload_and_each_gets_their_copies(
        dev_a: Laptop, dev_b: Laptop, demo: str) -> None:
    made = tp(dev_b, f"wiretap {SVC} -n {demo} -p 3000 --name bob-wt")
    assert made.returncode == 0, made.stderr
    before = len(_mirror_rows(dev_a, f"{SVC}-{demo}-wiretap"))
    assert _load(dev_a, demo, 10) == [(200, '"green"')] * 10
    a = _rows_once(dev_a, f"{SVC}-{demo}-wiretap", before + 10)
    b = _rows_once(dev_b, "bob-wt", 10)
    assert {r["local_response_body"].strip() for r in a} == {'"blue"'}
    assert {r["local_response_body"].strip() for r in b} == {'"red"'}
    # each developer's rows are their own session's
    assert not {r["client_session"] for r in a} & {r["client_session"] for r in b}


def test_bad_filters_are_one_line_errors_and_leave_nothing_behind(
        dev_a: Laptop, demo: str) -> None:
    before = _json(dev_a, "status")["intercepts"]
    one_line_error(tp(dev_a, f"wiretap {SVC} -n {demo} -p 3000 --name bad "
                             "--http-path-regex '(unclosed'"), "invalid regex")
    one_line_error(tp(dev_a, f"wiretap {SVC} -n {demo} -p 3000 --name bad "
                             "--http-path-equal /a --http-path-prefix /b"), "never both")
    one_line_error(tp(dev_a, f"wiretap nosuchworkload -n {demo} -p 3000 --name bad"))
    assert _json(dev_a, "status")["intercepts"] == before
    assert "bad" not in tp(dev_a, f"list -n {demo}").stdout


def test_leaving_the_mirrors_gives_the_workload_back_untouched(
        dev_a: Laptop, dev_b: Laptop, demo: str) -> None:
    assert tp(dev_a, f"leave {SVC}-{demo}-wiretap").returncode == 0
    assert tp(dev_b, "leave bob-wt").returncode == 0
    assert tp(dev_b, f"leave {SVC}-{demo}").returncode == 0
    assert _load(dev_a, demo, 5) == [(200, '"green"')] * 5
    assert not _json(dev_a, "status")["intercepts"]
