"""Aggregated discovery (`apidiscovery.k8s.io/v2`, and `v2beta1` for older clients):
`/api` and `/apis` answer one `APIGroupDiscoveryList` with every group, version and
resource when the client's Accept asks for it, as kube-apiserver does since 1.30.

kubectl 1.37 sends
`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json`
and treats a plain `application/json` answer as the legacy documents, fetching every
group-version separately. The content is built from the same tables as the legacy documents
(`discovery`), so both forms always agree.

    negotiate(accept) -> "v2" | "v2beta1" | None   None: answer the legacy document
    document(core, version) -> dict                 the list for /api (core) or /apis
    content_type(version) -> str                    the media type to answer with
"""

from __future__ import annotations

from typing import Any

from tp_sandbox.apiserver.discovery import REVIEWS, SUBRESOURCE_KINDS, groups
from tp_sandbox.apiserver.resources import ResourceType, served

GROUP = "apidiscovery.k8s.io"
VERSIONS = ("v2", "v2beta1")
KIND = "APIGroupDiscoveryList"
Obj = dict[str, Any]


def content_type(version: str) -> str:
    return f"application/json;g={GROUP};v={version};as={KIND}"


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """The Accept header's media ranges with their parameters, best `q` first (stable)."""
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for index, part in enumerate(accept.split(",")):
        media, *raw = [p.strip() for p in part.split(";")]
        if not media:
            continue
        params = {}
        for param in raw:
            name, _, value = param.partition("=")
            params[name.strip().lower()] = value.strip()
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            ranges.append((-q, index, media.lower(), params))
    return [(media, params) for _, _, media, params in sorted(ranges)]


def negotiate(accept: str) -> str | None:
    """The aggregated version the client takes first, or None when it takes the legacy
    document first (or only). Media types the server cannot produce are skipped, as the
    upstream negotiator does (the protobuf form of the list is not served)."""
    for media, params in _media_ranges(accept):
        if "as" in params:
            if (media == "application/json" and params.get("g") == GROUP
                    and params.get("v") in VERSIONS and params["as"] == KIND):
                return params["v"]
            continue  # another conversion, or the protobuf list: not offered here
        if media in ("application/json", "application/*", "*/*"):
            return None
    return None


def _kind(group: str, version: str, kind: str) -> Obj:
    return {"group": group, "version": version, "kind": kind}


def _resource(rt: ResourceType) -> Obj:
    entry: Obj = {
        "resource": rt.plural,
        "responseKind": _kind(rt.group, rt.version, rt.kind),
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subs = []
    for sub in rt.subresources:
        group, version, kind, verbs = SUBRESOURCE_KINDS.get(sub, (None, None, None, ["get"]))
        subs.append({"subresource": sub,
                     "responseKind": _kind(rt.group if group is None else group,
                                           version or rt.version, kind or rt.kind),
                     "verbs": list(verbs)})
    if subs:
        entry["subresources"] = subs
    return entry


def _group(name: str, versions: list[str]) -> Obj:
    types = (*served(), *REVIEWS)
    return {
        "metadata": {"name": name} if name else {"creationTimestamp": None},
        "versions": [{"version": v,
                      "resources": [_resource(rt) for rt in types
                                    if (rt.group, rt.version) == (name, v)],
                      "freshness": "Current"} for v in versions],
    }


def document(core: bool, version: str = "v2") -> Obj:
    """`/api` (core=True: the core group only) or `/apis` (every named group, in the
    order of the legacy APIGroupList, preferred version first)."""
    items = [_group(name, versions) for name, versions in groups().items()
             if (name == "") == core]
    return {"kind": KIND, "apiVersion": f"{GROUP}/{version}", "metadata": {},
            "items": items}
