"""Garbage collector: dependents whose owners are all gone (by uid) are deleted;
owners deleted with the `foregroundDeletion` finalizer lose their dependents first;
with the `orphan` finalizer their dependents are released instead.

Keys name an object of any watched type: `<type index>|<namespace>/<name>`.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from . import errors
from .base import Context, Controller
from .kube import ALL, CRDS, EVENTS, NAMESPACES, Obj, Res, by_kind, custom_types
from .objects import is_deleting, key_of

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def owner_refs(obj: Obj) -> list[Obj]:
    return list(obj.get("metadata", {}).get("ownerReferences") or [])


class _Handler:
    def __init__(self, gc: GarbageCollector, res: Res) -> None:
        self.gc, self.res = gc, res

    def on_add(self, obj: Obj) -> None:
        self.gc.changed(self.res, obj)

    def on_update(self, old: Obj, new: Obj) -> None:
        self.gc.changed(self.res, new)

    def on_delete(self, obj: Obj) -> None:
        self.gc.deleted(self.res, obj)


class GarbageCollector(Controller):
    name = "garbage-collector"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # namespaces own nothing and events are never owned; watching them is waste
        self.types = [r for r in ALL if r not in (NAMESPACES, EVENTS)]
        self._lock = threading.Lock()
        self._uids: dict[str, tuple[Res, str]] = {}
        self.infs = {r: self.informer(ctx.informers.get(r)) for r in self.types}
        for r, inf in self.infs.items():
            inf.add_handler(_Handler(self, r))

    def _key(self, res: Res, obj: Obj) -> str:
        return f"{self.types.index(res)}|{key_of(obj)}"

    # -- event handlers --------------------------------------------------------------

    def changed(self, res: Res, obj: Obj) -> None:
        uid = obj["metadata"].get("uid")
        if uid:
            with self._lock:
                self._uids[uid] = (res, key_of(obj))
        if owner_refs(obj) or is_deleting(obj):
            self.queue.add(self._key(res, obj))
        if is_deleting(obj):
            self._enqueue_owners(obj)

    def deleted(self, res: Res, obj: Obj) -> None:
        uid = obj["metadata"].get("uid")
        with self._lock:
            self._uids.pop(uid or "", None)
        if uid:
            for dres, dep in self.dependents(uid):
                self.queue.add(self._key(dres, dep))
        self._enqueue_owners(obj)

    def _enqueue_owners(self, obj: Obj) -> None:
        """An owner waiting for its dependents is rechecked when one goes."""
        for ref in owner_refs(obj):
            with self._lock:
                found = self._uids.get(ref.get("uid", ""))
            if found is not None:
                res, key = found
                owner = self.infs[res].get(key)
                if owner is not None and is_deleting(owner):
                    self.queue.add(self._key(res, owner))

    def dependents(self, uid: str) -> list[tuple[Res, Obj]]:
        out = []
        for res, inf in self.infs.items():
            for obj in inf.items():
                if any(r.get("uid") == uid for r in owner_refs(obj)):
                    out.append((res, obj))
        return out

    # -- reconcile ---------------------------------------------------------------------

    def sync(self, key: str) -> None:
        idx, _, obj_key = key.partition("|")
        res = self.types[int(idx)]
        obj = self.infs[res].get(obj_key)
        if obj is None:
            return
        if is_deleting(obj):
            self._owner_deleting(res, obj)
        elif owner_refs(obj):
            self._check_owners(res, obj)

    def _remove_finalizer(self, res: Res, obj: Obj, finalizer: str) -> None:
        meta = obj["metadata"]
        rest = [f for f in meta.get("finalizers") or [] if f != finalizer]
        with contextlib.suppress(errors.NotFound):
            self.kube.merge_patch(res, meta.get("namespace"), meta["name"], {
                "metadata": {"finalizers": rest, "resourceVersion": meta["resourceVersion"]}})

    def _owner_deleting(self, res: Res, obj: Obj) -> None:
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        uid = meta["uid"]
        if ORPHAN in finalizers:
            for dres, dep in self.dependents(uid):
                dmeta = dep["metadata"]
                refs = [r for r in owner_refs(dep) if r.get("uid") != uid]
                with contextlib.suppress(errors.NotFound):
                    self.kube.merge_patch(dres, dmeta.get("namespace"), dmeta["name"], {
                        "metadata": {"ownerReferences": refs or None,
                                     "resourceVersion": dmeta["resourceVersion"]}})
            self._remove_finalizer(res, obj, ORPHAN)
        elif FOREGROUND in finalizers:
            blocking = 0
            for dres, dep in self.dependents(uid):
                ref = next(r for r in owner_refs(dep) if r.get("uid") == uid)
                if ref.get("blockOwnerDeletion"):
                    blocking += 1
                if not is_deleting(dep):
                    dmeta = dep["metadata"]
                    with contextlib.suppress(errors.NotFound, errors.Conflict):
                        self.kube.delete(dres, dmeta.get("namespace"), dmeta["name"],
                                         propagation="Foreground", uid=dmeta["uid"])
            if blocking == 0:
                self._remove_finalizer(res, obj, FOREGROUND)
            # else: each dependent's deletion brings us back here

    def _owner_exists(self, ref: Obj, namespace: str | None) -> bool:
        ores = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if ores is None:  # maybe a custom resource: its CRD names the type
            want = (ref.get("apiVersion"), ref.get("kind"))
            ores = next((r for r in custom_types(self.infs[CRDS].items())
                         if (r.api_version, r.kind) == want), None)
        if ores is None:
            return True  # a type we cannot check: never collect on a guess
        with self._lock:
            if ref.get("uid") in self._uids:
                return True
        # not in our caches (maybe just created): ask the API server
        try:
            owner = self.kube.get(ores, namespace if ores.namespaced else None, ref["name"])
        except errors.NotFound:
            return False
        return bool(owner["metadata"].get("uid") == ref.get("uid"))

    def _check_owners(self, res: Res, obj: Obj) -> None:
        meta = obj["metadata"]
        refs = owner_refs(obj)
        present = [r for r in refs if self._owner_exists(r, meta.get("namespace"))]
        if len(present) == len(refs):
            return
        if not present:
            log.info("collecting %s %s: its owners are gone", res, key_of(obj))
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                self.kube.delete(res, meta.get("namespace"), meta["name"],
                                 propagation="Background", uid=meta["uid"])
            return
        with contextlib.suppress(errors.NotFound):
            self.kube.merge_patch(res, meta.get("namespace"), meta["name"], {
                "metadata": {"ownerReferences": present,
                             "resourceVersion": meta["resourceVersion"]}})
