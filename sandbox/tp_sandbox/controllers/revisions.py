"""ControllerRevisions: the pod-template history StatefulSets and DaemonSets keep (what
`kubectl rollout history/undo` read), and the `controller-revision-hash` of a template."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from . import errors
from .deployutil import template_hash
from .kube import CONTROLLERREVISIONS, Kube, Obj
from .objects import controller_ref, owner_ref_to

HASH_LABEL = "controller-revision-hash"


def patch_of(owner: Mapping[str, Any]) -> Obj:
    """What a revision stores: the template as a strategic-merge patch that replaces it."""
    template = copy.deepcopy(owner["spec"].get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_name(owner: Mapping[str, Any]) -> str:
    """`<owner>-<hash of its template>`, the label value its pods carry."""
    return f"{owner['metadata']['name']}-{template_hash(owner['spec'].get('template') or {})}"


def owned(owner: Mapping[str, Any], revisions: list[Obj]) -> list[Obj]:
    uid = owner["metadata"]["uid"]
    ns = owner["metadata"].get("namespace")
    return sorted((r for r in revisions if r["metadata"].get("namespace") == ns
                   and (controller_ref(r) or {}).get("uid") == uid),
                  key=lambda r: int(r.get("revision") or 0))


def ensure(kube: Kube, owner: Obj, kind: str, revisions: list[Obj]) -> tuple[Obj, bool]:
    """The revision of the owner's current template, created (with the next revision
    number) when missing, or bumped to the newest number when an old one comes back
    (a rollback). Returns (revision, created)."""
    mine = owned(owner, revisions)
    name = revision_name(owner)
    top = max((int(r.get("revision") or 0) for r in mine), default=0)
    for rev in mine:
        if rev["metadata"]["name"] == name:
            if int(rev.get("revision") or 0) < top:
                return kube.merge_patch(CONTROLLERREVISIONS, rev["metadata"]["namespace"],
                                        name, {"revision": top + 1}), False
            return rev, False
    labels = dict((owner["spec"].get("selector") or {}).get("matchLabels") or {})
    labels["controller.kubernetes.io/hash"] = name.rsplit("-", 1)[1]
    body: Obj = {
        "metadata": {"name": name, "namespace": owner["metadata"]["namespace"],
                     "labels": labels,
                     "ownerReferences": [owner_ref_to(owner, kind, "apps/v1")]},
        "data": patch_of(owner), "revision": top + 1,
    }
    try:
        return kube.create(CONTROLLERREVISIONS, owner["metadata"]["namespace"], body), True
    except errors.AlreadyExists:
        return kube.get(CONTROLLERREVISIONS, owner["metadata"]["namespace"], name), False


def prune(kube: Kube, owner: Obj, revisions: list[Obj], keep: set[str]) -> None:
    """Delete the oldest revisions beyond `revisionHistoryLimit` (never those in use)."""
    limit = int(owner["spec"].get("revisionHistoryLimit", 10) or 0)
    mine = [r for r in owned(owner, revisions) if r["metadata"]["name"] not in keep]
    for rev in mine[: max(0, len(mine) - limit)]:
        try:
            kube.delete(CONTROLLERREVISIONS, rev["metadata"]["namespace"],
                        rev["metadata"]["name"])
        except errors.NotFound:
            continue
