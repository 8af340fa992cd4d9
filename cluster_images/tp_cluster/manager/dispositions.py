"""Intercept dispositions: the manager's own verdict on each intercept (see manager.proto).

An intercept an agent took becomes ACTIVE only when every ready endpoint of its Service
is a pod with the traffic-agent (and no pod without one is still terminating); until
then it stays WAITING with what is pending as its message. An intercept whose agent
cannot start (image pull, crash loop, bad config) becomes AGENT_ERROR with the pod's
reason. Clients read these states and never look at Pods or Endpoints themselves.

One named loop per manager with Kubernetes access: it sweeps on every state change and
at least every `Settings.intercept.manager_rollout_poll` seconds.
"""

from __future__ import annotations

import asyncio
import logging

from tp_protocol import manager_pb2 as pb
from tp_protocol.aio import wait_at_most

from tp_cluster.manager.state import State
from tp_cluster.manager.workloads import WorkloadError, Workloads

log = logging.getLogger(__name__)

S = pb.InterceptState


class Dispositions:
    def __init__(self, state: State, workloads: Workloads, poll: float) -> None:
        self.state = state
        self.workloads = workloads
        self.poll = poll

    async def run(self) -> None:
        while True:
            version = self.state.version
            try:
                await self.sweep()
            except WorkloadError as exc:
                log.warning("intercept dispositions: %s; trying again", exc)
            await wait_at_most(self.state.wait_change(version), self.poll)

    async def sweep(self) -> None:
        for ic in list(self.state.intercepts.values()):
            spec = ic.spec
            if ic.id in self.state.taken and ic.state == S.INTERCEPT_STATE_WAITING:
                pending = await asyncio.to_thread(self.workloads.serving, spec.namespace,
                                                  spec.service_name)
                if not pending:
                    self.state.dispose(ic.id, S.INTERCEPT_STATE_ACTIVE, "")
                elif ic.id in self.state.intercepts:
                    self.state.dispose(ic.id, S.INTERCEPT_STATE_WAITING,
                                       f"the traffic-agent took it; {pending}")
            elif ic.state in (S.INTERCEPT_STATE_NO_AGENT, S.INTERCEPT_STATE_WAITING,
                              S.INTERCEPT_STATE_AGENT_ERROR) and ic.id not in self.state.taken:
                problem = await asyncio.to_thread(self.workloads.rollout_problem,
                                                  spec.namespace, spec.workload,
                                                  spec.workload_kind)
                if problem:
                    self.state.dispose(ic.id, S.INTERCEPT_STATE_AGENT_ERROR, problem)
