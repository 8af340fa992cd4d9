"""The review APIs, answered from the sandbox's own tokens and RBAC as a real API
server answers them (none is stored; each POST returns the review with its status):

    authentication.k8s.io/v1 TokenReview             who a token is, for which audiences
    authentication.k8s.io/v1 SelfSubjectReview       who the caller is (`kubectl auth whoami`)
    authorization.k8s.io/v1  SubjectAccessReview     may user/groups do X (cluster-wide)
    authorization.k8s.io/v1  LocalSubjectAccessReview  the same, inside one namespace
    authorization.k8s.io/v1  SelfSubjectAccessReview may the caller do X (`kubectl auth can-i`)
    authorization.k8s.io/v1  SelfSubjectRulesReview  what may the caller do in a namespace
                                                     (`kubectl auth can-i --list`)

Who may ask: the self reviews every authenticated user (upstream's system:basic-user);
the others need `create` on the review resource (system:auth-delegator, or admin for
LocalSubjectAccessReview), checked by the caller before `answer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tp_sandbox.apiserver import errors
from tp_sandbox.apiserver.auth import Attributes, Authenticator, Authorizer, TokenInvalid, User

Obj = dict[str, Any]


@dataclass(frozen=True)
class Review:
    group: str
    kind: str
    plural: str
    namespaced: bool = False
    self_review: bool = False


_REVIEWS = (
    Review("authentication.k8s.io", "TokenReview", "tokenreviews"),
    Review("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews",
           self_review=True),
    Review("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews"),
    Review("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews",
           namespaced=True),
    Review("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
           self_review=True),
    Review("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
           self_review=True),
)


def match(path: str) -> tuple[Review, str] | None:
    """The review a POST path asks for, and its namespace ("" if cluster-scoped)."""
    segs = [s for s in path.split("/") if s]
    if len(segs) < 4 or segs[0] != "apis" or segs[2] != "v1":
        return None
    for r in _REVIEWS:
        if segs[1] != r.group:
            continue
        if not r.namespaced and segs[3:] == [r.plural]:
            return r, ""
        if r.namespaced and len(segs) == 6 and segs[3] == "namespaces" and segs[5] == r.plural:
            return r, segs[4]
    return None


def required(review: Review, namespace: str) -> Attributes | None:
    """What the caller must be allowed to ask this review (None: anyone authenticated)."""
    if review.self_review:
        return None
    return Attributes("create", review.group, review.plural, namespace=namespace)


def _invalid(review: Review, field: str, message: str, reason: str = "FieldValueRequired"
             ) -> errors.Invalid:
    return errors.Invalid.of(review.kind, review.group, "", [
        {"reason": reason, "field": field, "message": message}])


def _attributes(review: Review, spec: Obj, namespace: str) -> Attributes:
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(res) == bool(nonres):
        raise _invalid(review, "spec.resourceAttributes", "Required value: exactly one of "
                       "nonResourceAttributes or resourceAttributes must be specified")
    if nonres:
        return Attributes(str(nonres.get("verb", "")), path=str(nonres.get("path", "")))
    res = dict(res or {})
    if namespace and res.get("namespace", namespace) != namespace:
        raise _invalid(review, "spec.resourceAttributes.namespace",
                       f"Invalid value: {res.get('namespace')!r}: must match metadata."
                       f"namespace {namespace!r}", "FieldValueInvalid")
    return Attributes(str(res.get("verb", "")), str(res.get("group", "")),
                      str(res.get("resource", "")), str(res.get("subresource", "")),
                      str(res.get("namespace") or namespace), str(res.get("name", "")))


def answer(review: Review, namespace: str, body: Obj, caller: User, *, authn: Authenticator,
           authz: Authorizer) -> Obj:
    """The review object with its status filled in (the caller may already ask it)."""
    if body.get("kind") not in (None, review.kind):
        raise errors.BadRequest(f"the kind in the data ({body.get('kind')}) does not match "
                                f"the expected kind ({review.kind})")
    spec: Obj = dict(body.get("spec") or {})
    meta: Obj = {**(body.get("metadata") or {}), "creationTimestamp": None}
    if namespace:
        meta["namespace"] = namespace
    out: Obj = {"kind": review.kind, "apiVersion": f"{review.group}/v1", "metadata": meta,
                "spec": spec}
    if review.kind == "SelfSubjectReview":
        out["status"] = {"userInfo": caller.info()}
    elif review.kind == "SelfSubjectRulesReview":
        rules = authz.rules_for(caller, str(spec.get("namespace") or ""))
        out["status"] = {
            "resourceRules": [{k: r[k] for k in ("verbs", "apiGroups", "resources",
                                                 "resourceNames") if r.get(k)}
                              for r in rules if not r.get("nonResourceURLs")],
            "nonResourceRules": [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
                                 for r in rules if r.get("nonResourceURLs")],
            "incomplete": False}
    elif review.kind == "TokenReview":
        token = str(spec.get("token") or "")
        if not token:
            raise _invalid(review, "spec.token", "Required value: token must be specified")
        try:
            user, audiences = authn.review(token, list(spec.get("audiences") or []) or None)
        except TokenInvalid as exc:
            out["status"] = {"authenticated": False, "user": {}, "error": str(exc)}
        else:
            out["status"] = {"authenticated": True, "user": user.info(),
                             "audiences": audiences}
    else:
        attrs = _attributes(review, spec, namespace)
        if review.self_review:
            subject = caller
        else:
            if not spec.get("user") and not spec.get("groups"):
                raise _invalid(review, "spec.user", "Required value: at least one of user or "
                               "group must be specified")
            # As upstream: the groups are exactly those given (no implicit ones).
            subject = User(str(spec.get("user") or ""), tuple(spec.get("groups") or ()),
                           str(spec.get("uid") or ""))
        allowed, reason = authz.decide(subject, attrs)
        out["status"] = {"allowed": allowed, **({"reason": reason} if reason else {})}
    return out
