"""`--format json|yaml` without a cluster: documents, errors as documents, bad formats,
and the grammar: every reporting subcommand takes the flag."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from tp_output_testing import check, parsed

REPORTING = ["connect", "status", "quit", "list", "intercept x -p 1", "leave x",
             "uninstall --all-agents", "traffic", "version", "config view"]


@pytest.mark.parametrize("command", REPORTING)
def test_every_reporting_subcommand_takes_format_json_and_yaml(command: str) -> None:
    from tp_jupyter.cli import build_parser

    for fmt in ("json", "yaml", "default"):
        args = build_parser().parse_args([*command.split(), "--format", fmt])
        assert args.format == fmt


def test_every_shipped_schema_is_a_valid_json_schema() -> None:
    import jsonschema

    from tp_jupyter.output import SCHEMAS, schema

    for name in SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(schema(name))
        assert schema(name)["$id"].endswith(f"/{name}.json")


def test_status_without_a_daemon_is_a_document_in_json_and_the_same_in_yaml(tp: Any) -> None:
    as_json = tp("status", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    data = check(parsed(as_json), "status")
    assert data["daemon_running"] is False and data["connection"] is None
    as_yaml = tp("status", "--format=yaml")
    assert yaml.safe_load(as_yaml.stdout) == data


def test_an_error_with_format_json_is_a_json_document_on_stdout_and_exit_status_1(
        tp: Any) -> None:
    proc = tp("list", "--format", "json")
    assert proc.returncode == 1 and proc.stderr == ""
    error = check(parsed(proc), "error")["error"]
    assert error["code"] == "not_connected"
    assert error["message"] == "not connected: run `tp connect` first"


def test_a_usage_error_with_format_json_is_a_json_document_too(tp: Any) -> None:
    proc = tp("intercept", "--format", "json")      # WORKLOAD and -p missing
    assert proc.returncode == 1
    error = check(parsed(proc), "error")["error"]
    assert error["code"] == "usage"
    assert "the following arguments are required" in error["message"]
    assert "tp intercept --help" in error["message"]


def test_an_error_with_format_yaml_is_a_yaml_document(tp: Any) -> None:
    proc = tp("leave", "x", "--format", "yaml")
    assert proc.returncode == 1
    assert check(yaml.safe_load(proc.stdout), "error")["error"]["code"] == "not_connected"


def test_an_unknown_format_is_a_one_line_usage_error(tp: Any) -> None:
    proc = tp("status", "--format", "xml")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("tp: argument --format: invalid choice: 'xml' (choose "
                                  "from 'default', 'json', 'yaml')")
    assert "see 'tp status --help'" in proc.stderr


def test_the_default_format_is_todays_text(tp: Any) -> None:
    assert tp("status").stdout == tp("status", "--format", "default").stdout
    assert tp("status").stdout.startswith("Daemon: not running")


def test_the_magic_shows_the_document_and_keeps_the_dict(monkeypatch: Any,
                                                         tmp_path: Any) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("TP_HOME", str(tmp_path))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "tp_jupyter")
    try:
        result = ip.run_line_magic("tp", "version --format json")
        assert json.loads(str(result)) == result.data
        check(result.data, "version")
        assert result._repr_html_().startswith("<pre>")
    finally:
        ip.run_line_magic("unload_ext", "tp_jupyter")
