"""`tp replace` on the manager's side: who may replace, and giving the app back.

    Replacements(state, workloads)
      .refusal(spec)        why CreateIntercept must refuse (one line), or ""
      .hold(ns, name)       the workload is replaced (after the injection)
      .run()                the keeper: restores a held workload once no replace intercept
                            of it is left (leave, quit, an expired session)

A replace is a global intercept whose spec has `replace_app`: the injector takes the app
container out of the pod template (`injector.inject(replace_app=True)`) and `restore`
puts the template back exactly, so the app runs again. A workload someone else
intercepts cannot be replaced, and a replaced one cannot be intercepted.

Limits: what is held lives in memory; a manager restarted while a workload is replaced
leaves it replaced until `tp uninstall --agent` restores it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tp_protocol.aio import wait_at_most

from tp_cluster.manager.state import State
from tp_cluster.manager.workloads import WorkloadError, Workloads

log = logging.getLogger(__name__)


def _key(spec: Any) -> tuple[str, str]:
    return str(spec.namespace), str(spec.workload)


class Replacements:
    """The replaced workloads of this manager and their keeper (see the module)."""

    def __init__(self, state: State, workloads: Workloads, poll: float) -> None:
        self.state = state
        self.workloads = workloads
        self.poll = poll
        self.held: set[tuple[str, str]] = set()

    def refusal(self, session_id: str, spec: Any) -> str:
        """One line when `spec` may not be created next to the intercepts there are."""
        for other in self.state.intercepts.values():
            if _key(other.spec) != _key(spec) or (
                    other.client_session == session_id and other.spec.name == spec.name):
                continue
            if spec.replace_app:
                return (f"cannot replace {spec.workload}.{spec.namespace}: it is intercepted "
                        f"by {other.spec.name!r} of {other.spec.client}; they must leave it "
                        "first")
            if other.spec.replace_app:
                return (f"{spec.workload}.{spec.namespace} is replaced by "
                        f"{other.spec.name!r} of {other.spec.client}: its app does not run "
                        "until they leave")
        return ""

    def hold(self, namespace: str, name: str) -> None:
        self.held.add((namespace, name))

    def _wanted(self) -> set[tuple[str, str]]:
        return {_key(ic.spec) for ic in self.state.intercepts.values() if ic.spec.replace_app}

    async def sweep(self) -> None:
        """Restore every held workload no replace intercept wants any more."""
        for ns, name in sorted(self.held - self._wanted()):
            self.held.discard((ns, name))
            log.info("%s.%s is no longer replaced; restoring its app", name, ns)
            try:
                await asyncio.to_thread(self.workloads.restore, ns, name)
            except WorkloadError:
                log.exception("restoring replaced %s.%s failed; trying again", name, ns)
                self.held.add((ns, name))

    async def run(self) -> None:
        while True:
            version = self.state.version
            try:
                await self.sweep()
            except Exception:
                log.exception("the replace keeper failed; trying again")
            await wait_at_most(self.state.wait_change(version), self.poll)
