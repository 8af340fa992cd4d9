"""`tp status` says how this session's bytes travel: pod port-forwards or the
traffic-manager, raw TLS or gRPC in direct connect, and each intercept's agent link."""

from __future__ import annotations

import re

from tp_output_testing import check
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb


def _linked(name: str, state: str, link: int, relay: int) -> mpb.InterceptInfo:
    return mpb.InterceptInfo(id=f"id-{name}", spec=mpb.InterceptSpec(name=name),
                             link_state=state, link_connections=link,
                             relay_connections=relay)


def test_a_port_forward_session_counts_pod_routes_and_each_intercepts_link() -> None:
    from tp_jupyter import api

    info = dpb.StatusInfo(connected=True, pod_route_connections=12, tunnel_connections=2,
                          intercepts=[_linked("mine", "open to demo/echo-1", 40, 1),
                                      mpb.InterceptInfo(spec=mpb.InterceptSpec(name="global"))])
    info.connection.manager_path = "port-forward"
    status = api.Status(True, True, info)
    text = str(status)
    assert "12 by pod port-forward, 2 through the traffic-manager" in text
    assert re.search(r"Link of mine\s*: open to demo/echo-1; 40 connections by link, 1 "
                     r"through the traffic-manager", " ".join(text.split()))
    assert "Link of global" not in text   # no link state: not a linked intercept
    data = check(status.to_dict(), "status")["data_path"]
    assert (data["pod_route_connections"], data["tunnel_connections"]) == (12, 2)
    assert data["links"] == [{"intercept": "mine", "state": "open to demo/echo-1",
                              "link_connections": 40, "relay_connections": 1}]


def test_a_direct_session_counts_raw_dials_and_says_why_they_are_not_used() -> None:
    from tp_jupyter import api

    info = dpb.StatusInfo(connected=True, raw_dials=0, grpc_dials=3,
                          raw_dial_note="the raw port did not answer")
    info.connection.manager_path = "direct"
    status = api.Status(True, True, info)
    text = " ".join(str(status).split())
    assert "0 as raw TLS streams to the traffic-manager, 3 through gRPC tunnels" in text
    assert re.search(r"Raw dials\s*: the raw port did not answer", text)
    data = check(status.to_dict(), "status")["data_path"]
    assert data["raw_dial_note"] == "the raw port did not answer" and data["grpc_dials"] == 3


def test_a_session_that_is_not_connected_has_no_data_path() -> None:
    from tp_jupyter import api

    status = api.Status(True, False, dpb.StatusInfo())
    assert "Data path" not in str(status)
    assert check(status.to_dict(), "status")["data_path"] is None
