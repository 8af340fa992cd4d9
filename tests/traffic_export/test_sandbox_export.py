"""Filter, export, replay and traffic-into-tests against the sandbox cluster (root).

Laptop 1 is a developer whose local books service (tests/export_books_app.py) takes the
requests marked `x-dev: me` that reach the demo's `dataprocessingservice` in the cluster
(a personal intercept named `books`); the app in the cluster answers "green" on /color.
The traffic is real: curl in the laptop -> the cluster Service -> the traffic-agent ->
the manager -> the daemon -> the local service. The tests run in order and share it.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy_har_reader import read_with_mitmproxy
from sandbox_testing import Laptop, wait_for

import tp_jupyter

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

TP = [sys.executable, "-m", "tp_jupyter.cli"]
SVC = "dataprocessingservice"
APP = str(Path(__file__).resolve().parents[1] / "export_books_app.py")
IGNORE = ["$.id", "$.created"]


@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    if not sandbox.has_node:
        pytest.skip("needs the sandbox node (pods)")
    from tp_sandbox import lifecycle

    namespace = f"export-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    yield namespace
    core.delete_namespace(namespace)


class Dev:
    """Laptop 1 with the local books service and a connected daemon."""

    def __init__(self, lap: Laptop, namespace: str, files: Path) -> None:
        self.lap, self.namespace, self.files = lap, namespace, files
        self.app: subprocess.Popen[str] | None = None

    def start_app(self, broken: bool = False) -> None:
        self.stop_app()
        self.app = self.lap.popen([sys.executable, APP], env={"PORT": "8081",
                                                              "BREAK": "1" if broken else "0"},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.lap.run("curl -s --max-time 2 http://127.0.0.1:8081/color"
                                      ).stdout.strip() == '"blue"', 30, "the local service")

    def stop_app(self) -> None:
        if self.app is not None:
            self.app.terminate()
            self.app.wait(timeout=10)
            self.app = None

    def tp(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.lap.run([*TP, *args], timeout=timeout)

    def send(self, method: str, path: str, body: str = "") -> str:
        """One request to the cluster Service, marked as ours (so routed to us)."""
        argv = ["curl", "-sS", "--max-time", "8", "-X", method, "-H", "x-dev: me",
                f"http://{SVC}.{self.namespace}:3000{path}"]
        if body:
            argv += ["-H", "Content-Type: application/json", "--data-binary", body]
        done = self.lap.run(argv, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def py(self, code: str, timeout: float = 120) -> Any:
        """Run Python in the laptop (where the daemon is); the last line it prints, as JSON."""
        done = self.lap.run([sys.executable, "-c", "import json, tp_jupyter\n" + code],
                            timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def rows(self, *args: str) -> list[dict[str, Any]]:
        done = self.tp("traffic", "books", "--format", "json", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)["rows"]
        return rows


@pytest.fixture(scope="module")
def dev(sandbox: Any, demo: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    me = Dev(Laptop(sandbox, 1), demo, tmp_path_factory.mktemp("export"))
    me.start_app()
    try:
        connected = me.tp("connect", timeout=180)
        assert connected.returncode == 0, connected.stderr
        made = me.tp("intercept", SVC, "-n", demo, "-p", "8081", "--name", "books",
                     "--http-match", "x-dev=me", "--mount", "false", timeout=180)
        assert made.returncode == 0, made.stdout + made.stderr
        yield me
    finally:
        me.tp("leave", "books")
        me.tp("uninstall", "--agent", SVC, "-n", demo, timeout=180)
        me.tp("quit", timeout=60)
        me.stop_app()


def test_traffic_of_a_real_intercept_is_filtered_with_mitmproxy_expressions(dev: Dev) -> None:
    assert json.loads(dev.send("POST", "/books", '{"title": "Dune"}'))["title"] == "Dune"
    dev.send("POST", "/books", '{"title": "Emma"}')
    dev.send("GET", "/books")
    dev.send("GET", "/boom")
    assert dev.send("GET", "/color").strip() == '"blue"'
    # rows reach the daemon just after the answers reach the caller: --at-least waits
    assert len(dev.rows("--at-least", "5")) == 5

    posts = dev.rows("--filter", "~m POST & ~p ^/books & ~s 2..")
    assert [(r["status"], r["routed_to"]) for r in posts] == [(201, "local")] * 2
    assert [r["path"] for r in dev.rows("--filter", "~s 5..")] == ["/boom"]
    assert [r["path"] for r in dev.rows("--filter", "~bq Emma | ~bs blue")] == ["/books",
                                                                               "/color"]
    assert len(dev.rows("--filter", "~hq '^x-dev: me$' & !~m POST")) == 3
    from_python = dev.py("df = tp_jupyter.traffic('~m POST & ~p ^/books & ~s 5..')\n"
                         "print(len(df))")
    assert from_python == 0


def test_a_bad_filter_is_one_line_and_changes_nothing(dev: Dev) -> None:
    before = dev.rows()
    done = dev.tp("traffic", "books", "--filter", "~m POST & ~z 1")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("tp: invalid traffic filter '~m POST & ~z 1' at column 11")
    assert "unknown operator ~z" in done.stderr and done.stderr.count("\n") == 1
    bad_regex = dev.tp("traffic", "--filter", "~p '(unclosed'")
    assert bad_regex.returncode == 1 and "invalid regex '(unclosed' after ~p" in bad_regex.stderr
    negative = dev.tp("traffic", "--at-least", "-1")
    assert negative.returncode == 1 and negative.stderr == (
        "tp: --at-least takes a count of rows (0 or more)\n")
    assert dev.rows() == before


def test_the_exported_har_reads_back_in_read_har_and_in_mitmproxy(dev: Dev) -> None:
    har = dev.files / "books.har"
    done = dev.tp("traffic", "books", "--format", "har", "-o", str(har))
    assert done.returncode == 0 and done.stdout.strip() == f"Wrote 5 rows to {har} as HAR"

    df = tp_jupyter.read_har(har)
    assert list(df["path"]) == ["/books", "/books", "/books", "/boom", "/color"]
    assert set(df["intercept"]) == {"books"} and set(df["namespace"]) == {dev.namespace}
    assert json.loads(df.loc[0, "request_body"]) == {"title": "Dune"}
    assert df.loc[3, "status"] == 503 and df.loc[0, "request_headers"]["x-dev"] == "me"

    flows = read_with_mitmproxy(har)
    assert [(f["method"], f["status"]) for f in flows] == [
        ("POST", 201), ("POST", 201), ("GET", 200), ("GET", 503), ("GET", 200)]
    assert flows[0]["url"] == f"http://{SVC}.{dev.namespace}:3000/books"
    assert json.loads(flows[0]["request_body"]) == {"title": "Dune"}
    assert json.loads(flows[1]["response_body"])["title"] == "Emma"


def test_the_curl_command_of_a_row_goes_through_the_intercept_again(dev: Dev) -> None:
    done = dev.tp("traffic", "books", "--filter", "~p ^/color", "--format", "curl")
    assert done.returncode == 0, done.stderr
    command = done.stdout.strip()
    assert command.startswith(f"curl http://{SVC}.{dev.namespace}:3000/color -H ")
    assert "-H 'x-dev: me'" in command
    again = dev.lap.run(command + " -sS --max-time 8", timeout=30)
    assert again.stdout.strip() == '"blue"', again.stderr   # marked as ours: our code answers


def test_har_rows_replay_to_local_and_cluster_with_edits(dev: Dev) -> None:
    har = dev.files / "books.har"
    out = dev.py(f"""
df = tp_jupyter.read_har({str(har)!r})
posts = df[df.method == "POST"]
many = tp_jupyter.replay(posts, to="local")
color = tp_jupyter.replay(df[df.path == "/color"].iloc[0], to="cluster")
edited = tp_jupyter.replay(posts.iloc[0], to="local", body='{{"title": "Persuasion"}}')
moved = tp_jupyter.replay(posts.iloc[0], to="cluster", method="GET", path="/color")
try:
    tp_jupyter.replay(posts.iloc[0], to="local", intercept="nope")
    refused = ""
except tp_jupyter.TpError as e:
    refused = str(e)
print(json.dumps({{
    "many": [[r.replay_of, int(r.status), json.loads(r.response_body)["title"],
              bool(r.status_changed), r.routed_to] for r in many.itertuples()],
    "color": [int(color.status), color.response_body.strip(), color.routed_to],
    "edited": json.loads(edited.response_body)["title"],
    "moved": [int(moved.status), moved.response_body.strip()],
    "refused": refused}}))
""")
    ids = tp_jupyter.read_har(har).query("method == 'POST'")["id"].tolist()
    assert out["many"] == [[ids[0], 201, "Dune", False, "local"],
                           [ids[1], 201, "Emma", False, "local"]]
    assert out["color"] == [200, '"green"', "cluster"]   # the app container in the cluster
    assert out["edited"] == "Persuasion"
    assert out["moved"] == [200, '"green"']
    assert out["refused"].startswith("no intercept of yours is named 'nope': say which one")
    assert "\n" not in out["refused"]


def _pytest(dev: Dev, path: Path, against: str = "") -> subprocess.CompletedProcess[str]:
    env = f"TP_TEST_AGAINST={against} " if against else ""
    return dev.lap.run(f"cd {path.parent} && {env}{sys.executable} -m pytest -q "
                       f"-p no:cacheprovider {path.name}", timeout=180)


def test_generated_tests_pass_then_catch_a_breaking_change(dev: Dev) -> None:
    generated = dev.files / "test_books_generated.py"
    made = dev.py(f"""
rows = tp_jupyter.traffic("books", filter="~m POST | ~p ^/boom")
print(json.dumps(tp_jupyter.to_pytest(rows, {str(generated)!r}, against="local",
                                      ignore={IGNORE!r}).tests))
""")
    assert made == ["test_01_post_books_answers_201", "test_02_post_books_answers_201",
                    "test_03_get_boom_answers_503"]
    green = _pytest(dev, generated)
    assert green.returncode == 0 and "3 passed" in green.stdout, green.stdout[-3000:]

    dev.start_app(broken=True)   # the breaking change: titles come back upper-cased
    try:
        red = _pytest(dev, generated)
    finally:
        dev.start_app()
    assert red.returncode == 1 and "2 failed, 1 passed" in red.stdout, red.stdout[-3000:]
    assert ("POST /books answers differently than captured (ignoring $.id, $.created):"
            in red.stdout)
    assert "body $.title: expected 'Dune', got 'DUNE'" in red.stdout
    assert "body $.title: expected 'Emma', got 'EMMA'" in red.stdout


def test_tests_generated_from_the_clusters_answers_show_where_local_code_differs(
        dev: Dev) -> None:
    generated = dev.files / "test_color_in_cluster.py"
    dev.py(f"""
df = tp_jupyter.traffic("books", filter="~p ^/color")
answer = tp_jupyter.replay(df.iloc[0], to="cluster")   # what the cluster's app says
print(json.dumps(tp_jupyter.to_pytest(answer, {str(generated)!r}, against="cluster").tests))
""")
    cluster = _pytest(dev, generated)
    assert cluster.returncode == 0 and "1 passed" in cluster.stdout, cluster.stdout[-3000:]
    local = _pytest(dev, generated, against="local")
    assert local.returncode == 1 and "1 failed" in local.stdout
    assert "body $: expected 'green', got 'blue'" in local.stdout
