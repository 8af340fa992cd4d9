"""Helpers for the mirror tests (imported by this unique module name): make an intercept
or a mirror with filters straight at the real traffic-manager, as a FakeDaemon."""

from __future__ import annotations

from typing import Any

from tp_protocol import manager_pb2 as pb
from waiting import wait_until


async def make_mirror(daemon: Any, name: str, port: int, *,
                      matches: dict[str, str] | None = None, mirror: bool = True,
                      **filters: Any) -> Any:
    """A mirror (or, with mirror=False, a personal intercept) of workload web.demo, ACTIVE."""
    spec = pb.InterceptSpec(
        name=name, workload="web", namespace="demo", target_port=port,
        mechanism=pb.MECHANISM_HTTP, mirror=mirror,
        header_matches=[pb.HeaderMatch(name=k, regex=v) for k, v in (matches or {}).items()],
        **filters)
    created = await daemon.manager.stub.CreateIntercept(
        pb.CreateInterceptRequest(session=daemon.session, spec=spec), timeout=5)
    state = daemon.manager.server.state
    await wait_until(lambda: state.intercepts[created.id].state == pb.INTERCEPT_STATE_ACTIVE,
                     what=f"{name} to be ACTIVE")
    return created


async def remove(daemon: Any, name: str) -> None:
    await daemon.manager.stub.RemoveIntercept(
        pb.RemoveInterceptRequest(session=daemon.session, name=name), timeout=5)
