"""`tp list`: the manager's ListWorkloads, mapped onto the daemon API's states.

The manager owns cluster truth: the state is its `WorkloadState` enum, never text.
"""

from __future__ import annotations

import grpc
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb

from tp_daemon.intercepts.base import Owner, rpc_error

STATES = {
    mpb.WORKLOAD_STATE_INTERCEPTABLE: dpb.WORKLOAD_STATE_READY_NOT_INSTALLED,
    mpb.WORKLOAD_STATE_AGENT_INSTALLED: dpb.WORKLOAD_STATE_READY_INSTALLED,
    mpb.WORKLOAD_STATE_INTERCEPTED: dpb.WORKLOAD_STATE_INTERCEPTED,
    mpb.WORKLOAD_STATE_NOT_INTERCEPTABLE: dpb.WORKLOAD_STATE_NOT_INTERCEPTABLE,
}
"""Manager workload state -> daemon API workload state."""


async def list_workloads(owner: Owner, request: dpb.ListRequest, rpc_seconds: float
                         ) -> dpb.WorkloadList:
    namespace = request.namespace or owner.namespace()
    stub, session = owner.manager()
    try:
        listed = await stub.ListWorkloads(
            mpb.ListWorkloadsRequest(session=session, namespace=namespace), timeout=rpc_seconds)
    except grpc.aio.AioRpcError as e:
        raise rpc_error(e, f"listing the workloads of {namespace}") from e
    result = dpb.WorkloadList()
    for w in listed.workloads:
        if request.only_intercepted and w.state != mpb.WORKLOAD_STATE_INTERCEPTED:
            continue
        result.workloads.append(dpb.WorkloadInfo(
            name=w.name, namespace=w.namespace, kind=w.kind,
            state=STATES.get(w.state, dpb.WORKLOAD_STATE_NOT_INTERCEPTABLE),
            reason=w.reason, intercepts=w.intercepts, agent_versions=w.agent_versions))
    return result
