"""The intercept front without a cluster: argument parsing and the seed's output formats."""

from __future__ import annotations

from typing import Any

import pytest
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb

from tp_jupyter import api, cli
from tp_jupyter.errors import UsageError

pytestmark = pytest.mark.timeout(30)


def _info(**spec: object) -> mpb.InterceptInfo:
    base = {"name": "dataprocessingservice-telepresence-demo",
            "workload": "dataprocessingservice", "namespace": "telepresence-demo",
            "workload_kind": "Deployment", "target_port": 3000, "target_host": "127.0.0.1"}
    base.update(spec)
    return mpb.InterceptInfo(spec=mpb.InterceptSpec(**base),  # type: ignore[arg-type]
                             state=mpb.INTERCEPT_STATE_ACTIVE)


def test_a_global_intercept_prints_the_seed_block_with_the_mount_point() -> None:
    result = api.InterceptResult(_info(mechanism=mpb.MECHANISM_TCP), "Deployment",
                                 "/tmp/telfs-886957741")
    assert str(result).splitlines() == [
        "Using Deployment dataprocessingservice",
        "    Intercept name    : dataprocessingservice-telepresence-demo",
        "    State             : ACTIVE",
        "    Workload kind     : Deployment",
        "    Destination       : 127.0.0.1:3000",
        "    Volume Mount Point: /tmp/telfs-886957741",
        "    Intercepting      : all TCP connections"]
    assert "telfs-886957741" in result._repr_html_()


def test_a_personal_intercept_lists_each_header_match() -> None:
    info = _info(mechanism=mpb.MECHANISM_HTTP, header_matches=[
        mpb.HeaderMatch(name="blog-demo-id", regex="louise")])
    assert str(api.InterceptResult(info, "Deployment", None)).splitlines()[-2:] == [
        "    Intercepting  : HTTP requests that match all of:",
        '      header("blog-demo-id") ~= regexp("louise")']


def test_the_listing_aligns_names_and_nests_intercept_blocks() -> None:
    listing = api.WorkloadListing("telepresence-demo", [
        dpb.WorkloadInfo(name="dataprocessingservice", state=dpb.WORKLOAD_STATE_INTERCEPTED,
                         intercepts=[_info()]),
        dpb.WorkloadInfo(name="verylargedatastore",
                         state=dpb.WORKLOAD_STATE_READY_NOT_INSTALLED),
        dpb.WorkloadInfo(name="web", state=dpb.WORKLOAD_STATE_NOT_INTERCEPTABLE,
                         reason="no Service selects the pods of web")])
    assert str(listing).splitlines() == [
        "dataprocessingservice: intercepted",
        "    Intercept name: dataprocessingservice-telepresence-demo",
        "    State         : ACTIVE",
        "    Workload kind : Deployment",
        "    Destination   : 127.0.0.1:3000",
        "    Intercepting  : all TCP connections",
        "verylargedatastore   : ready to intercept (traffic-agent not yet installed)",
        "web                  : not interceptable: no Service selects the pods of web"]


@pytest.mark.parametrize("bad", ["alice", "=alice", "id=(a"])
def test_a_bad_http_match_is_a_one_line_usage_error(bad: str) -> None:
    with pytest.raises(UsageError) as e:
        api.parse_http_match([bad])
    assert "\n" not in str(e.value)


def test_http_match_all_or_none_means_global_and_pairs_mean_personal() -> None:
    assert api.parse_http_match(None) is None
    assert api.parse_http_match(["all"]) is None
    pairs = api.parse_http_match(["a=1", "b=x=y"])
    assert pairs is not None and [(m.name, m.regex) for m in pairs] == [("a", "1"),
                                                                         ("b", "x=y")]


def test_the_front_reports_the_shared_spec_check_as_its_usage_error() -> None:
    from tp_protocol.errors import TpJupyterError
    from tp_protocol.intercept_spec import InvalidInterceptSpec

    with pytest.raises(UsageError, match="not a valid HTTP header name") as e:
        api.parse_http_match(["bad header=x"])
    assert isinstance(e.value.__cause__, InvalidInterceptSpec)
    assert isinstance(e.value, TpJupyterError)
    with pytest.raises(UsageError, match="1-65535") as e:
        api.parse_port("0")
    assert isinstance(e.value.__cause__, InvalidInterceptSpec)


def test_the_python_api_refuses_a_header_name_with_a_space_before_asking_the_daemon(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_daemon() -> None:
        raise AssertionError("the daemon was asked")

    monkeypatch.setattr(api, "_client", no_daemon)
    with pytest.raises(UsageError) as e:
        api.intercept("web", "team", 3000, http_match=["x dev=alice"])
    assert str(e.value) == ("--http-match header name 'x dev' is not a valid HTTP header "
                            "name (letters, digits and !#$%&'*+-.^_`|~ only); fix the KEY of "
                            "KEY=REGEX")


def test_the_cli_refuses_a_header_name_with_a_space_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_daemon() -> None:
        raise AssertionError("the daemon was asked")

    monkeypatch.setattr(api, "_client", no_daemon)
    assert cli.main(["intercept", "web", "-n", "team", "-p", "3000", "--http-match",
                     "x dev=alice"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tp: --http-match header name 'x dev' is not a valid HTTP header")


def test_traffic_of_an_unknown_name_is_a_usage_error_naming_the_known_ones(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tp_jupyter import traffic_data

    monkeypatch.setenv("TP_HOME", str(tmp_path))  # no daemon here: no current intercepts
    kept = [mpb.TrafficRecord(intercept_name="web-team"),
            mpb.TrafficRecord(intercept_name="")]
    traffic_data.check_names(["web-team"], kept)  # a kept row's name is known
    with pytest.raises(UsageError) as e:
        traffic_data.check_names(["nosuch", "web-team"], kept)
    assert str(e.value) == "no intercept named 'nosuch'; the known ones are web-team"
    with pytest.raises(UsageError, match="there is none yet: start one with `tp intercept"):
        traffic_data.traffic("nosuch")


def test_port_and_mount_arguments_parse_as_documented() -> None:
    assert api.parse_port(3000) == (3000, "")
    assert api.parse_port("3000:http") == (3000, "http")
    for bad in ("0", "x", "70000:80"):
        with pytest.raises(UsageError):
            api.parse_port(bad)
    assert api.parse_mount("false") == (True, "")
    assert api.parse_mount("true") == (False, "")
    assert api.parse_mount("/tmp/x") == (False, "/tmp/x")


def test_the_cli_grammar_has_intercept_leave_uninstall_and_list() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["intercept", "svc", "-n", "ns", "-p", "3000:http",
                              "--http-match", "a=b", "--http-match", "c=d", "--mount",
                              "false"])
    assert (args.workload, args.namespace, args.port, args.http_match, args.mount) == (
        "svc", "ns", "3000:http", ["a=b", "c=d"], "false")
    assert parser.parse_args(["uninstall", "--everything"]).everything
    with pytest.raises(UsageError):
        parser.parse_args(["uninstall", "--all-agents", "--everything"])
    assert parser.parse_args(["leave", "x"]).name == "x"
    assert parser.parse_args(["list", "-n", "ns"]).namespace == "ns"


def test_the_package_is_the_one_public_surface() -> None:
    import inspect

    import tp_jupyter

    names = dir(tp_jupyter)
    for name in ("connect", "status", "intercept", "leave", "traffic", "replay", "panel",
                 "Request", "Response", "UsageError"):
        assert name in names and name in tp_jupyter.__all__
        assert getattr(tp_jupyter, name) is not None
    assert inspect.isfunction(tp_jupyter.traffic)   # the function, not a module
    assert tp_jupyter.connect is api.connect
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        tp_jupyter.nothing  # noqa: B018
