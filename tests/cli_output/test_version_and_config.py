"""`tp version` (the skew rule) and `tp config view` (each value's source), without a
cluster; the sandbox module shows the daemon's and traffic-manager's versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tp_output_testing import check, parsed


def test_version_without_a_daemon_shows_the_client_and_says_the_rest_is_not_running(
        tp: Any) -> None:
    from tp_protocol import VERSION

    text = tp("version").stdout.splitlines()
    assert text == [f"Client         : {VERSION}", "Daemon         : not running",
                    "Traffic Manager: not connected"]
    data = check(parsed(tp("version", "--format", "json")), "version")
    assert data["client"] == {"version": VERSION} and data["daemon"] is None
    assert data["skew"] == []


def test_the_skew_rule_says_what_to_do_in_one_line_per_component() -> None:
    from tp_jupyter.info import skew

    assert skew("0.2.0", "0.2.0", "0.2.0") == []
    assert skew("0.2.0", "0.2.0", "0.1.0") == [
        "traffic-manager 0.1.0 is older than client 0.2.0: run `tp uninstall --everything` "
        "then `tp connect` to upgrade it"]
    assert skew("0.2.0", "0.2.0", "0.10.0") == [
        "traffic-manager 0.10.0 is newer than client 0.2.0: upgrade this client "
        "(`pip install -U tp-jupyter`) to match it"]
    assert skew("0.2.0", "0.1.9", None) == [
        "daemon 0.1.9 is older than client 0.2.0: run `tp quit` then `tp connect` to restart "
        "it with this client"]


def test_the_version_report_prints_the_skew_below_the_versions() -> None:
    from tp_protocol import daemon_pb2 as dpb

    from tp_jupyter.info import VersionReport

    report = VersionReport("0.2.0", dpb.VersionInfo(version="0.2.0", pid=7), "0.1.0",
                           "ambassador")
    assert str(report).splitlines() == [
        "Client         : 0.2.0", "Daemon         : 0.2.0 (pid 7)",
        "Traffic Manager: 0.1.0 (namespace ambassador)",
        "Version skew: traffic-manager 0.1.0 is older than client 0.2.0: run "
        "`tp uninstall --everything` then `tp connect` to upgrade it"]
    check(report.to_dict(), "version")


def _by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in [*data["environment"], *data["settings"]]}


def test_config_view_shows_every_setting_with_its_default(tp: Any) -> None:
    from tp_protocol.settings import Settings

    data = check(parsed(tp("config", "view", "--format", "json", unset=["TP_SETTINGS"])),
                 "config-view")
    settings = _by_name(data)
    assert data["settings_file"] is None
    assert settings["notebook.daemon_call_timeout"] == {
        "name": "notebook.daemon_call_timeout",
        "value": Settings().notebook.daemon_call_timeout, "source": "default", "origin": None}
    assert len(data["settings"]) == sum(len(vars(getattr(Settings(), s)))
                                        for s in vars(Settings()))


def test_config_view_says_which_values_came_from_the_tp_settings_file(
        tp: Any, tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"notebook": {"daemon_call_timeout": 7.5},
                                "connect": {"manager_namespace": "tools"}}))
    env = {"TP_SETTINGS": str(path), "KUBECONFIG": str(tmp_path / "kc")}
    data = check(parsed(tp("config", "view", "--format", "json", env=env)), "config-view")
    settings = _by_name(data)
    assert data["settings_file"] == str(path)
    assert settings["notebook.daemon_call_timeout"] == {
        "name": "notebook.daemon_call_timeout", "value": 7.5, "source": "file",
        "origin": str(path)}
    assert settings["connect.manager_namespace"]["value"] == "tools"
    assert settings["notebook.replay_timeout"]["source"] == "default"
    assert settings["kubeconfig"] == {"name": "kubeconfig", "value": str(tmp_path / "kc"),
                                      "source": "environment", "origin": "KUBECONFIG"}
    assert settings["settings_file"]["source"] == "environment"
    text = tp("config", "view", env=env).stdout.splitlines()
    line = next(t for t in text if t.startswith("notebook.daemon_call_timeout "))
    assert line.split() == ["notebook.daemon_call_timeout", "=", "7.5", "file", f"({path})"]


def test_a_broken_tp_settings_file_is_a_one_line_error_that_says_what_to_do(
        tp: Any, tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"notebook": {"no_such_setting": 1}}')
    proc = tp("config", "view", env={"TP_SETTINGS": str(path)})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "unknown setting notebook.no_such_setting" in proc.stderr
    assert "unset TP_SETTINGS" in proc.stderr
    path.write_text("{not json")
    proc = tp("config", "view", "--format", "json", env={"TP_SETTINGS": str(path)})
    error = check(parsed(proc), "error")["error"]
    assert error["code"] == "usage" and "is not valid JSON" in error["message"]
