"""Without a cluster: how `tp list` and `tp uninstall` name other developers' intercepts."""

from __future__ import annotations

from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb


def _intercept(name: str, owner: str, mine: bool) -> mpb.InterceptInfo:
    spec = mpb.InterceptSpec(name=name, workload="web", namespace="team", owner=owner,
                             client=f"{owner}@laptop", target_port=3000)
    # the manager lists another session's intercept without its id
    return mpb.InterceptInfo(id="s1:" + name if mine else "", spec=spec,
                             state=mpb.INTERCEPT_STATE_ACTIVE)


def _listing(*intercepts: mpb.InterceptInfo) -> list[str]:
    from tp_jupyter.api import WorkloadListing

    w = dpb.WorkloadInfo(name="web", namespace="team", kind="Deployment",
                         state=dpb.WORKLOAD_STATE_INTERCEPTED, intercepts=list(intercepts))
    return str(WorkloadListing("team", [w])).splitlines()


def test_an_intercept_that_is_not_yours_names_its_owner_and_client() -> None:
    lines = _listing(_intercept("bobs", "bob", mine=False))
    assert lines[0] == "web: intercepted by bob"
    assert [line.split(":", 1)[1].strip() for line in lines
            if line.strip().startswith("Intercepted by")] == ["bob (bob@laptop)"]


def test_your_own_intercepts_keep_the_seeds_lines() -> None:
    lines = _listing(_intercept("mine", "alice", mine=True), _intercept("bobs", "bob", False))
    assert lines[0] == "web: intercepted"
    assert sum(line.strip().startswith("Intercepted by") for line in lines) == 1
    assert "Intercepted by" not in "\n".join(_listing(_intercept("mine", "alice", True)))


def test_a_forced_uninstall_lists_whose_intercepts_it_ended_in_text_and_json() -> None:
    from tp_jupyter.api import UninstallResult
    from tp_jupyter.output import schema

    ended = [mpb.InterceptSpec(name="bobs", owner="bob", client="bob@laptop", workload="web",
                               namespace="team")]
    result = UninstallResult(["Deployment/web.team"], False, ended)
    assert str(result).splitlines() == [
        "Removed the traffic-agent from Deployment/web.team",
        "Ended the intercept bobs of bob (bob@laptop) on web.team"]
    data = result.to_dict()
    assert data["ended"] == [{"name": "bobs", "owner": "bob", "client": "bob@laptop",
                              "workload": "web", "namespace": "team"}]
    import jsonschema

    jsonschema.validate(data, schema("uninstall"))
