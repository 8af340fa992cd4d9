"""Every reporting subcommand's `--format json` document against the sandbox cluster: `tp`
run inside laptop 1 as a developer runs it, each document parsed and checked against its
shipped JSON Schema, errors included.

The tests run in order and share one connection and a fresh demo namespace: connect,
status, version, list, intercept, traffic, errors, leave, config view, uninstall, quit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sandbox_testing import Laptop, wait_for
from tp_cli_testing import Tp, demo_namespace, short_home, tp_with_home
from tp_output_testing import check

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

SVC = "dataprocessingservice"
PORT = 3791   # the local app's port (no other test module uses it)


@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    if not sandbox.has_node:
        pytest.skip("intercepts need the sandbox node (pods)")
    with demo_namespace(sandbox, core, "fmt") as namespace:
        yield namespace


@pytest.fixture(scope="module")
def lap(sandbox: Any) -> Laptop:
    return Laptop(sandbox, 1)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    with short_home("tpfmt-") as path:
        yield path


@pytest.fixture(scope="module")
def tp(lap: Laptop, home: Path, demo: str) -> Iterator[Tp]:
    """`tp ARGS...` in laptop 1 (its own daemon home); quits at the end."""
    with tp_with_home(lap, home) as run:
        yield run


@pytest.fixture(scope="module")
def local_app(lap: Laptop) -> Iterator[None]:
    app = lap.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                    env={"COLOR": "violet", "PORT": str(PORT)}, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "violet" in lap.run(f"curl -sS --max-time 5 "
                                             f"http://127.0.0.1:{PORT}/color").stdout,
                 30, "the local app")
        yield
    finally:
        app.terminate()
        app.wait(10)


def document(proc: subprocess.CompletedProcess[str], schema: str) -> Any:
    """stdout parsed as JSON and checked against `schema`, for a command that succeeded."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return check(json.loads(proc.stdout), schema)


def error(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found: dict[str, str] = check(json.loads(proc.stdout), "error")["error"]
    return found


def test_connect_in_json_says_where_it_connected(tp: Tp) -> None:
    from tp_protocol import VERSION

    data = document(tp("connect", "--format", "json"), "connect")
    assert data["mode"] == "tun" and data["socks_address"] is None    # root in the laptop
    assert data["server"].startswith("https://") and data["session_id"]
    assert data["daemon_version"] == data["manager_version"] == VERSION
    again = document(tp("connect", "--format", "json"), "connect")
    assert again["already_connected"] is True and again["session_id"] == data["session_id"]


def test_status_in_json_and_yaml_is_the_same_document(tp: Tp) -> None:
    data = document(tp("status", "--format", "json"), "status")
    assert data["connected"] is True and data["daemon"]["root"] is True
    assert data["connection"]["pod_cidrs"] and data["connection"]["cluster_domain"]
    as_yaml = tp("status", "--format", "yaml")
    assert as_yaml.returncode == 0
    again = yaml.safe_load(as_yaml.stdout)
    assert again["connection"] == data["connection"]


def test_version_shows_the_daemon_and_the_traffic_manager_with_no_skew(tp: Tp) -> None:
    from tp_protocol import VERSION

    data = document(tp("version", "--format", "json"), "version")
    assert data["client"]["version"] == data["daemon"]["version"] == VERSION
    assert data["traffic_manager"] == {"version": VERSION, "namespace": "ambassador"}
    assert data["skew"] == []
    text = tp("version").stdout.splitlines()
    assert text[2] == f"Traffic Manager: {VERSION} (namespace ambassador)"
    assert not any(line.startswith("Version skew") for line in text)


def test_list_in_json_has_the_demo_workloads(tp: Tp, demo: str) -> None:
    data = document(tp("list", "-n", demo, "--format", "json"), "list")
    assert data["namespace"] == demo
    by_name = {w["name"]: w for w in data["workloads"]}
    assert by_name[SVC]["state"] in ("ready_not_installed", "ready_installed")
    assert by_name[SVC]["intercepts"] == []


def test_intercept_in_json_keeps_progress_off_stdout(tp: Tp, demo: str,
                                                     local_app: None) -> None:
    proc = tp("intercept", SVC, "-n", demo, "-p", str(PORT), "--mount", "false",
              "--http-match", "x-fmt=yes", "--format", "json")
    data = document(proc, "intercept")     # stdout is exactly one document
    assert data["name"] == f"{SVC}-{demo}" and data["state"] == "active"
    assert data["mechanism"] == "http"
    assert data["header_matches"] == [{"name": "x-fmt", "regex": "yes"}]
    assert data["destination"] == {"host": "127.0.0.1", "port": PORT}
    assert data["mount_point"] is None and data["environment"]
    listing = document(tp("list", "-n", demo, "--format", "json"), "list")
    mine = next(w for w in listing["workloads"] if w["name"] == SVC)
    assert mine["state"] == "intercepted" and mine["intercepts"][0]["id"] == data["id"]
    status = document(tp("status", "--format", "json"), "status")
    assert [ic["name"] for ic in status["intercepts"]] == [data["name"]]


def test_traffic_in_json_has_the_intercepted_request(tp: Tp, lap: Laptop, demo: str) -> None:
    out = lap.run(f"curl -sS --max-time 8 -H 'x-fmt: yes' http://{SVC}.{demo}:3000/color?fmt")
    assert "violet" in out.stdout, out.stdout + out.stderr

    def rows() -> Any:
        data = document(tp("traffic", f"{SVC}-{demo}", "--format", "json"), "traffic")
        return [r for r in data["rows"] if r["path"] == "/color?fmt"]

    row = wait_for(rows, 30, "the intercepted request in `tp traffic`")[0]
    assert row["status"] == 200 and row["routed_to"] == "local"
    assert row["captured_by"] == "agent" and row["method"] == "GET"


def test_errors_from_the_daemon_are_json_documents_with_its_code(tp: Tp, demo: str) -> None:
    found = error(tp("intercept", "no-such-workload", "-n", demo, "-p", str(PORT),
                     "--format", "json"))
    assert found["code"] == "not_found" and "tp list" in found["message"]
    found = error(tp("leave", "no-such-intercept", "--format", "json"))
    assert found["code"] == "not_found"
    found = error(tp("list", "-n", "--format", "json"))     # -n lacks its value
    assert found["code"] == "usage" and "expected one argument" in found["message"]


def test_leave_in_json_names_the_intercept(tp: Tp, demo: str) -> None:
    assert document(tp("leave", f"{SVC}-{demo}", "--format", "json"), "leave") == {
        "left": f"{SVC}-{demo}"}


def test_config_view_in_the_laptop_shows_the_settings_file_as_the_source(
        tp: Tp, home: Path) -> None:
    path = home / "settings.json"
    path.write_text(json.dumps({"notebook": {"completion_timeout": 0.5}}))
    data = document(tp("config", "view", "--format", "json", env={"TP_SETTINGS": str(path)}),
                    "config-view")
    entry = next(s for s in data["settings"] if s["name"] == "notebook.completion_timeout")
    assert entry == {"name": "notebook.completion_timeout", "value": 0.5, "source": "file",
                     "origin": str(path)}
    kubeconfig = next(s for s in data["environment"] if s["name"] == "kubeconfig")
    assert kubeconfig["source"] == "environment" and kubeconfig["origin"] == "KUBECONFIG"


def test_uninstall_and_quit_in_json(tp: Tp, demo: str) -> None:
    data = document(tp("uninstall", "--agent", SVC, "-n", demo, "--format", "json"),
                    "uninstall")
    assert data["manager_removed"] is False and any(SVC in r for r in data["restored"])
    assert document(tp("quit", "--format", "json"), "quit") == {"was_running": True,
                                                                  "was_connected": True}
    after = document(tp("status", "--format", "json"), "status")
    assert after["daemon_running"] is False
