"""Authentication (static bearer tokens, ServiceAccount JWTs) and RBAC authorization.

Static tokens come from DIR/tokens.json. ServiceAccount tokens are HS256 JWTs signed
with DIR/pki/sa.key (created once, so tokens stay valid across restarts). A JWT is
valid while unexpired, for its audiences only (API requests need the API server's
audience, `API_AUDIENCES`), and while the ServiceAccount (and the pod it is bound to,
if any) still exist with the UIDs it names: deleting the pod revokes its tokens.
Static tokens are audience-agnostic and so valid for the API server's audiences only,
as upstream's token file. `review` answers TokenReview with the same rules.

Authorization: `system:masters` may do anything; everyone else is checked against the
Role/ClusterRole rules bound to them in the store. A ClusterRole with an
`aggregationRule` also grants the rules of every ClusterRole its selectors match
(upstream's aggregation controller, evaluated at check time). `decide` gives the
reason a SubjectAccessReview reports. `impersonate` applies Impersonate-* headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_sandbox.apiserver import errors
from tp_sandbox.apiserver.resources import by_plural
from tp_sandbox.apiserver.store import Store

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)
_PUBLIC_INFO = {"/healthz", "/livez", "/readyz", "/version"}


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    def info(self) -> dict[str, Any]:
        """The `UserInfo` of TokenReview/SelfSubjectReview."""
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = self.extra
        return out

    @property
    def is_master(self) -> bool:
        return "system:masters" in self.groups


@dataclass(frozen=True)
class Attributes:
    """What a request wants to do, in RBAC terms."""

    verb: str
    group: str = ""
    resource: str = ""  # plural
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # for non-resource requests

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


def is_public(path: str) -> bool:
    """Paths a real cluster serves without credentials (system:public-info-viewer)."""
    return path in _PUBLIC_INFO or path.startswith(("/readyz/", "/livez/", "/healthz/"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenInvalid(Exception):
    """Why a token does not authenticate (TokenReview's status.error)."""


# (kind, namespace, name) -> the object's uid, or None when it does not exist.
UidLookup = Callable[[str, str, str], str | None]


class Authenticator:
    def __init__(self, state_dir: Path) -> None:
        self.lookup: UidLookup | None = None
        self._tokens_file = state_dir / "tokens.json"
        self._tokens: dict[str, User] = {}
        self._tokens_mtime = -1.0
        key_file = state_dir / "pki" / "sa.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        self._key = key_file.read_bytes()

    def _static(self) -> dict[str, User]:
        """tokens.json, re-read when it changes (the lifecycle may add tokens)."""
        try:
            mtime = self._tokens_file.stat().st_mtime
        except FileNotFoundError:
            return {}
        if mtime != self._tokens_mtime:
            raw = json.loads(self._tokens_file.read_text(encoding="utf-8"))
            self._tokens = {tok: User(str(v["user"]), tuple(v.get("groups", ())))
                            for tok, v in raw.items()}
            self._tokens_mtime = mtime
        return self._tokens

    def authenticate(self, header: str | None) -> User:
        # The scheme is case-insensitive (RFC 7235); load_incluster_config sends "bearer".
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthorized("Unauthorized")
        try:
            return self.review(token)[0]
        except TokenInvalid:
            raise errors.Unauthorized("Unauthorized") from None

    def review(self, token: str, audiences: list[str] | None = None
               ) -> tuple[User, list[str]]:
        """The user `token` stands for and the audiences it is valid for among
        `audiences` (default: the API server's); raises TokenInvalid."""
        want = list(audiences or API_AUDIENCES)
        user = self._static().get(token)
        if user is not None:
            valid = [a for a in want if a in API_AUDIENCES]
            if not valid:
                raise TokenInvalid(f"token audiences {list(API_AUDIENCES)} is invalid for "
                                   f"the target audiences {want}")
            return User(user.name, (*user.groups, "system:authenticated"), user.uid), valid
        claims = self.verify(token)
        if claims is None:
            raise TokenInvalid("invalid bearer token")
        aud = claims.get("aud") or []
        aud = [aud] if isinstance(aud, str) else list(aud)
        valid = [a for a in want if a in aud]
        if not valid:
            raise TokenInvalid(f"token audiences {aud} is invalid for the target audiences "
                               f"{want}")
        k8s = claims["kubernetes.io"]
        ns, sa = str(k8s["namespace"]), k8s["serviceaccount"]
        extra: dict[str, list[str]] = {}
        if self.lookup is not None:
            if self.lookup("ServiceAccount", ns, str(sa.get("name"))) != sa.get("uid"):
                raise TokenInvalid(f"service account {ns}/{sa.get('name')} has been deleted")
            pod = k8s.get("pod")
            if pod:
                if self.lookup("Pod", ns, str(pod.get("name"))) != pod.get("uid"):
                    raise TokenInvalid(f"pod {ns}/{pod.get('name')} has been deleted")
                extra = {"authentication.kubernetes.io/pod-name": [str(pod.get("name"))],
                         "authentication.kubernetes.io/pod-uid": [str(pod.get("uid"))]}
        return User(f"system:serviceaccount:{ns}:{sa['name']}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}",
                     "system:authenticated"), str(sa.get("uid") or ""), extra), valid

    def issue(self, namespace: str, sa_name: str, sa_uid: str, *, audiences: list[str],
              expiration: int, bound: dict[str, Any] | None = None) -> tuple[str, int]:
        """A signed token for the ServiceAccount; returns (token, expiry epoch)."""
        now = int(time.time())
        exp = now + expiration
        k8s: dict[str, Any] = {"namespace": namespace,
                               "serviceaccount": {"name": sa_name, "uid": sa_uid}}
        if bound:
            k8s[str(bound.get("kind", "object")).lower()] = {
                "name": bound.get("name"), "uid": bound.get("uid")}
        payload = {"aud": audiences, "exp": exp, "iat": now, "nbf": now, "iss": ISSUER,
                   "sub": f"system:serviceaccount:{namespace}:{sa_name}", "kubernetes.io": k8s}
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}", exp

    def verify(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        want = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(want, _unb64(parts[2])):
                return None
            claims: dict[str, Any] = json.loads(_unb64(parts[1]))
        except ValueError:
            return None
        if claims.get("exp", 0) < time.time() or "kubernetes.io" not in claims:
            return None
        return claims


_IMPERSONATE_EXTRA = "impersonate-extra-"


def impersonate(authz: Authorizer, user: User, headers: Any) -> User:
    """The user a request acts as: `user`, or whom its Impersonate-* headers (a
    case-insensitive multidict) name once `user` may impersonate each part (upstream's
    impersonation filter; what `kubectl --as/--as-group` sends)."""
    name = headers.get("Impersonate-User")
    if name is None:
        if any(k.lower().startswith("impersonate-") for k in headers):
            raise errors.BadRequest("impersonating groups, uid or extra requires "
                                    "Impersonate-User: name the user too")
        return user
    groups = list(headers.getall("Impersonate-Group", []))
    uid = headers.get("Impersonate-Uid")
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower().startswith(_IMPERSONATE_EXTRA):
            extra.setdefault(key[len(_IMPERSONATE_EXTRA):].lower(), []).append(value)
    checks = [Attributes("impersonate", "", "groups", name=g) for g in groups]
    if name.startswith("system:serviceaccount:"):
        ns, _, sa = name.removeprefix("system:serviceaccount:").partition(":")
        checks.insert(0, Attributes("impersonate", "", "serviceaccounts", namespace=ns,
                                    name=sa))
        # A service account's own groups come with it, unchecked (as upstream).
        groups = groups or ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    else:
        checks.insert(0, Attributes("impersonate", "", "users", name=name))
    if uid:
        checks.append(Attributes("impersonate", "authentication.k8s.io", "uids", name=uid))
    checks += [Attributes("impersonate", "authentication.k8s.io", f"userextras/{k}", name=v)
               for k, vs in extra.items() for v in vs]
    for attrs in checks:
        if not authz.allowed(user, attrs):
            scope = (f'in the namespace "{attrs.namespace}"' if attrs.namespace
                     else "at the cluster scope")
            raise errors.Forbidden(
                f'{attrs.resource} "{attrs.name}" is forbidden: User "{user.name}" cannot '
                f'impersonate resource "{attrs.resource}" in API group "{attrs.group}" '
                f"{scope}", {"name": attrs.name, "group": attrs.group,
                             "kind": attrs.resource})
    if name != "system:anonymous" and "system:authenticated" not in groups:
        groups.append("system:authenticated")
    return User(name, tuple(groups), uid or "", extra)


def _subject_matches(subject: dict[str, Any], user: User, binding_ns: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user.name)
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.name == f"system:serviceaccount:{ns}:{subject.get('name')}"
    return False


def _who(user: User) -> str:
    if user.name.startswith("system:serviceaccount:"):
        ns, _, name = user.name.removeprefix("system:serviceaccount:").partition(":")
        return f'ServiceAccount "{name}/{ns}"'
    return f'User "{user.name}"'


def _rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.is_resource:
        urls = rule.get("nonResourceURLs") or []
        return any(u in ("*", attrs.path) or (u.endswith("*") and
                                                 attrs.path.startswith(u[:-1]))
                   for u in urls)
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    want = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    if not any(r in ("*", want) or (attrs.subresource and r == f"*/{attrs.subresource}")
               for r in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


class Authorizer:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._roles = by_plural("rbac.authorization.k8s.io", "v1", "roles")
        self._cluster_roles = by_plural("rbac.authorization.k8s.io", "v1", "clusterroles")
        self._bindings = by_plural("rbac.authorization.k8s.io", "v1", "rolebindings")
        self._cluster_bindings = by_plural("rbac.authorization.k8s.io", "v1",
                                           "clusterrolebindings")

    def _role_rules(self, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        if ref.get("kind") == "ClusterRole" and self._cluster_roles:
            role = self._store.get(self._cluster_roles, "", str(ref.get("name")))
        elif ref.get("kind") == "Role" and self._roles:
            role = self._store.get(self._roles, namespace, str(ref.get("name")))
        else:
            role = None
        return self._aggregated(role, set()) if role else []

    def _aggregated(self, role: dict[str, Any], seen: set[str]) -> list[dict[str, Any]]:
        """The role's rules plus, through its aggregationRule, those of the ClusterRoles
        its selectors match (recursively, as the aggregation controller converges)."""
        seen.add(str(role["metadata"].get("name")))
        rules = list(role.get("rules") or [])
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors")
        if selectors and self._cluster_roles:
            for other in self._store.list(self._cluster_roles):
                labels = other.get("metadata", {}).get("labels") or {}
                # matchLabels only: what upstream's bootstrap roles aggregate by.
                if other["metadata"].get("name") not in seen and any(
                        sel.get("matchLabels")
                        and sel["matchLabels"].items() <= labels.items()
                        for sel in selectors):
                    rules += self._aggregated(other, seen)
        return rules

    def allowed(self, user: User, attrs: Attributes) -> bool:
        return self.decide(user, attrs)[0]

    def decide(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """Whether `user` may do `attrs`, and the reason as upstream's RBAC words it."""
        if user.is_master:
            return True, 'allowed by group "system:masters"'
        # system:discovery and system:public-info-viewer, bound to every authenticated user.
        if not attrs.is_resource and attrs.verb == "get" and (
                is_public(attrs.path) or attrs.path.startswith(("/api", "/openapi"))):
            return True, 'RBAC: allowed by ClusterRoleBinding "system:discovery"'
        assert self._cluster_bindings and self._bindings
        for crb in self._store.list(self._cluster_bindings):
            if any(_subject_matches(s, user, "") for s in crb.get("subjects") or []) and any(
                    _rule_allows(r, attrs) for r in self._role_rules(crb["roleRef"], "")):
                return True, (f'RBAC: allowed by ClusterRoleBinding '
                              f'"{crb["metadata"]["name"]}" of ClusterRole '
                              f'"{crb["roleRef"].get("name")}" to {_who(user)}')
        if attrs.namespace:
            for rb in self._store.list(self._bindings, attrs.namespace):
                if any(_subject_matches(s, user, attrs.namespace)
                       for s in rb.get("subjects") or []) and any(
                        _rule_allows(r, attrs)
                        for r in self._role_rules(rb["roleRef"], attrs.namespace)):
                    return True, (f'RBAC: allowed by RoleBinding "{rb["metadata"]["name"]}/'
                                  f'{attrs.namespace}" of {rb["roleRef"].get("kind")} '
                                  f'"{rb["roleRef"].get("name")}" to {_who(user)}')
        return False, ""

    def rules_for(self, user: User, namespace: str) -> list[dict[str, Any]]:
        """Every RBAC rule that applies to `user` in `namespace` (SelfSubjectRulesReview)."""
        if user.is_master:
            return [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]}]
        assert self._cluster_bindings and self._bindings
        rules: list[dict[str, Any]] = [
            {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                 "/openapi", "/openapi/*", "/readyz", "/version",
                                 "/version/"], "verbs": ["get"]}]
        for crb in self._store.list(self._cluster_bindings):
            if any(_subject_matches(s, user, "") for s in crb.get("subjects") or []):
                rules += self._role_rules(crb["roleRef"], "")
        for rb in self._store.list(self._bindings, namespace) if namespace else []:
            if any(_subject_matches(s, user, namespace) for s in rb.get("subjects") or []):
                rules += self._role_rules(rb["roleRef"], namespace)
        return rules

    def check(self, user: User, attrs: Attributes) -> None:
        """Raise the 403 a real API server sends when `user` may not do `attrs`."""
        if self.allowed(user, attrs):
            return
        if not attrs.is_resource:
            raise errors.Forbidden(
                f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"')
        what = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        subject = (f'{attrs.resource}.{attrs.group}' if attrs.group else attrs.resource)
        if attrs.name:
            subject += f' "{attrs.name}"'
        scope = (f'in the namespace "{attrs.namespace}"' if attrs.namespace
                 else "at the cluster scope")
        raise errors.Forbidden(
            f'{subject} is forbidden: User "{user.name}" cannot {attrs.verb} resource '
            f'"{what}" in API group "{attrs.group}" {scope}',
            {"name": attrs.name, "group": attrs.group, "kind": attrs.resource}
            if attrs.name else {"group": attrs.group, "kind": attrs.resource})
