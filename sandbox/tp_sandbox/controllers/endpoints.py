"""Endpoints and EndpointSlices from Service selectors. Services without a selector
(the API server's `kubernetes` Service, kube-dns with manual Endpoints) are left alone."""

from __future__ import annotations

import contextlib
import copy
import logging

from . import errors
from .base import Context, Controller
from .endpointsutil import (
    HEADLESS_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    build_slice_groups,
    build_subsets,
    selector_of,
)
from .kube import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES, Obj
from .machinery import Expectations, FuncHandler
from .objects import labels_of, matches_labels, split_key

log = logging.getLogger(__name__)


class _ServicePods(Controller):
    """Keys are Services; a pod change enqueues the Services selecting it."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.services = self.informer(ctx.informers.get(SERVICES))
        self.pods = self.informer(ctx.informers.get(PODS))
        self.services.add_handler(FuncHandler(add=self.enqueue,
                                              update=lambda o, n: self.enqueue(n),
                                              delete=self.enqueue))
        self.pods.add_handler(FuncHandler(add=self._pod, update=self._pod_changed,
                                          delete=self._pod))

    def _pod(self, pod: Obj) -> None:
        self._pod_changed(pod, pod)

    def _pod_changed(self, old: Obj, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        for svc in self.services.items():
            if svc["metadata"].get("namespace") != ns:
                continue
            sel = selector_of(svc)
            if sel and (matches_labels(sel, labels_of(pod)) or matches_labels(sel, labels_of(old))):
                self.enqueue(svc)

    def _pods_in(self, ns: str | None) -> list[Obj]:
        return [p for p in self.pods.items() if p["metadata"].get("namespace") == ns]


class EndpointsController(_ServicePods):
    name = "endpoint-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.endpoints = self.informer(ctx.informers.get(ENDPOINTS))
        self.endpoints.add_handler(FuncHandler(delete=self.enqueue))

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        if svc is None:
            # the Service is gone: so are its Endpoints (as upstream does)
            if self.endpoints.get(key) is not None:
                with contextlib.suppress(errors.NotFound):
                    self.kube.delete(ENDPOINTS, ns, name)
            return
        if not selector_of(svc):
            return
        subsets = build_subsets(svc, self._pods_in(ns))
        labels = labels_of(svc)
        if svc.get("spec", {}).get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        current = self.endpoints.get(key)
        if current is None:
            self.kube.create(ENDPOINTS, ns, {"metadata": {"name": name, "namespace": ns,
                                                          "labels": labels},
                                             "subsets": subsets})
            return
        if (current.get("subsets") or []) == subsets and labels_of(current) == labels:
            return
        body = copy.deepcopy(current)
        body["metadata"]["labels"] = labels
        body["subsets"] = subsets
        self.kube.update(ENDPOINTS, body)


class EndpointSliceController(_ServicePods):
    name = "endpointslice-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # generated names: a slice we created must be seen before we count again
        self.expectations = Expectations(ctx.settings.expectations_timeout)
        self.slices = self.informer(ctx.informers.get(ENDPOINTSLICES))
        self.slices.add_handler(FuncHandler(add=self._slice_added,
                                            update=lambda o, n: self._slice(n),
                                            delete=self._slice))

    def _service_key(self, s: Obj) -> str | None:
        labels = labels_of(s)
        svc = labels.get(SERVICE_NAME_LABEL)
        if svc and labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
            return f"{s['metadata'].get('namespace')}/{svc}"
        return None

    def _slice_added(self, s: Obj) -> None:
        key = self._service_key(s)
        if key:
            self.expectations.created(key)
            self.queue.add(key)

    def _slice(self, s: Obj) -> None:
        key = self._service_key(s)
        if key:
            self.queue.add(key)

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        if svc is None or not selector_of(svc):
            self.expectations.forget(key)
            return  # slices of a deleted Service go with it (ownerReferences, GC)
        if not self.expectations.satisfied(key):
            return  # the add event of our new slice will bring us back
        existing = sorted(
            (s for s in self.slices.items()
             if s["metadata"].get("namespace") == ns
             and labels_of(s).get(SERVICE_NAME_LABEL) == name
             and labels_of(s).get(MANAGED_BY_LABEL) == MANAGED_BY),
            key=lambda s: s["metadata"]["name"])
        labels = {**labels_of(svc), SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY}
        if svc.get("spec", {}).get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        owner = {"apiVersion": "v1", "kind": "Service", "name": name,
                 "uid": svc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        groups = build_slice_groups(svc, self._pods_in(ns))
        for cur, (ports, endpoints) in zip(existing, groups, strict=False):
            if ((cur.get("endpoints") or []) == endpoints
                    and (cur.get("ports") or []) == ports and labels_of(cur) == labels):
                continue
            body = copy.deepcopy(cur)
            body["metadata"]["labels"] = labels
            body["endpoints"], body["ports"] = endpoints, ports
            self.kube.update(ENDPOINTSLICES, body)   # a stale cache: Conflict, retried
        # expected only now: a conflict above must not leave a create expected that was
        # never made (the key would wait for expectations_timeout, its slices stale)
        missing = groups[len(existing):]
        self.expectations.expect(key, adds=len(missing))
        for n, group in enumerate(missing):
            try:
                self._create_slice(ns, name, labels, owner, group)
            except errors.ControllerError:
                for _ in range(len(missing) - n):   # this one and those not attempted
                    self.expectations.creation_failed(key)
                raise
        for extra in existing[len(groups):]:
            with contextlib.suppress(errors.NotFound):
                self.kube.delete(ENDPOINTSLICES, ns, extra["metadata"]["name"],
                                 uid=extra["metadata"]["uid"])

    def _create_slice(self, ns: str | None, name: str, labels: dict[str, str], owner: Obj,
                      group: tuple[list[Obj], list[Obj]]) -> None:
        ports, endpoints = group
        self.kube.create(ENDPOINTSLICES, ns, {
            "metadata": {"generateName": f"{name}-", "namespace": ns, "labels": labels,
                         "ownerReferences": [owner]},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports})
