"""Namespace deletion: empty a Terminating namespace of every namespaced object
(pods deleted gracefully), then clear `spec.finalizers` through /finalize so the
API server removes it."""

from __future__ import annotations

import contextlib
import copy
import logging

from . import errors
from .base import Context, Controller
from .kube import ALL, CRDS, EVENTS, NAMESPACES, PODS, Obj, custom_types
from .machinery import FuncHandler
from .objects import is_deleting

log = logging.getLogger(__name__)


class NamespaceController(Controller):
    name = "namespace-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.namespaces = self.informer(ctx.informers.get(NAMESPACES))
        self.namespaces.add_handler(FuncHandler(add=self._ns, update=lambda o, n: self._ns(n)))

    def _ns(self, ns: Obj) -> None:
        if is_deleting(ns) or ns.get("status", {}).get("phase") == "Terminating":
            self.enqueue(ns)

    def sync(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or not (is_deleting(ns)
                              or ns.get("status", {}).get("phase") == "Terminating"):
            return
        if "kubernetes" not in (ns.get("spec", {}).get("finalizers") or []):
            return
        remaining = 0
        # events last: deleting the others may still record some
        crds, _ = self.kube.list_all(CRDS)
        types = [r for r in [*ALL, *custom_types(crds)] if r.namespaced and r != EVENTS]
        types.append(EVENTS)
        for res in types:
            try:
                items, _ = self.kube.list_all(res, key)
            except errors.NotFound:
                continue  # a type this cluster does not serve
            for obj in items:
                remaining += 1
                if is_deleting(obj):
                    continue
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    self.kube.delete(res, key, obj["metadata"]["name"],
                                     propagation=None if res == PODS else "Background")
        if remaining:
            log.info("namespace %s: waiting for %d objects to go", key, remaining)
            self.queue.add_after(key, self.settings.namespace_recheck_interval)
            return
        body = copy.deepcopy(ns)
        body["spec"]["finalizers"] = []
        self.kube.finalize_namespace(body)
