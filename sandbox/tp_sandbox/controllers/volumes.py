"""PersistentVolumeClaims: the sandbox's storage is a directory on the node per claim,
so every claim binds at once (a dynamically provisioned volume `pvc-<uid>` with the
requested capacity), as a cluster with a default StorageClass looks to its users."""

from __future__ import annotations

import logging

from .base import Context, Controller
from .kube import PVCS, Obj
from .machinery import FuncHandler
from .objects import is_deleting

log = logging.getLogger(__name__)


class VolumeBinder(Controller):
    name = "persistentvolume-binder-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.claims = self.informer(ctx.informers.get(PVCS))
        self.claims.add_handler(FuncHandler(add=self.enqueue,
                                            update=lambda o, n: self.enqueue(n)))

    def sync(self, key: str) -> None:
        pvc = self.claims.get(key)
        if pvc is None or is_deleting(pvc) or pvc.get("status", {}).get("phase") == "Bound":
            return
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        spec = pvc.get("spec") or {}
        volume = spec.get("volumeName") or f"pvc-{pvc['metadata']['uid']}"
        if not spec.get("volumeName"):
            pvc = self.kube.merge_patch(PVCS, ns, name, {"spec": {"volumeName": volume}})
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        status: Obj = {"phase": "Bound",
                       "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"])}
        if storage:
            status["capacity"] = {"storage": storage}
        self.kube.merge_patch(PVCS, ns, name, {"status": status}, "status")
        self.recorder.event(pvc, "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {volume}")
