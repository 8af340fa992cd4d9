"""Authentication (static bearer tokens, ServiceAccount JWTs) and RBAC authorization.

Static tokens come from DIR/tokens.json. ServiceAccount tokens are HS256 JWTs signed
with DIR/pki/sa.key (created once, so tokens stay valid across restarts).
Authorization: `system:masters` may do anything; everyone else is checked against the
Role/ClusterRole rules bound to them in the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tp_sandbox.apiserver import errors
from tp_sandbox.apiserver.resources import by_plural
from tp_sandbox.apiserver.store import Store

ISSUER = "https://kubernetes.default.svc.cluster.local"
_PUBLIC_INFO = {"/healthz", "/livez", "/readyz", "/version"}


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

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


class Authenticator:
    def __init__(self, state_dir: Path) -> None:
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
        user = self._static().get(token)
        if user is not None:
            return User(user.name, (*user.groups, "system:authenticated"))
        claims = self.verify(token)
        if claims is None:
            raise errors.Unauthorized("Unauthorized")
        sa = claims["kubernetes.io"]
        ns = sa["namespace"]
        return User(f"system:serviceaccount:{ns}:{sa['serviceaccount']['name']}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}",
                     "system:authenticated"))

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
        return list((role or {}).get("rules") or [])

    def allowed(self, user: User, attrs: Attributes) -> bool:
        if user.is_master:
            return True
        # system:discovery and system:public-info-viewer, bound to every authenticated user.
        if not attrs.is_resource and attrs.verb == "get" and (
                is_public(attrs.path) or attrs.path.startswith(("/api", "/openapi"))):
            return True
        assert self._cluster_bindings and self._bindings
        for crb in self._store.list(self._cluster_bindings):
            if any(_subject_matches(s, user, "") for s in crb.get("subjects") or []) and any(
                    _rule_allows(r, attrs) for r in self._role_rules(crb["roleRef"], "")):
                return True
        if attrs.namespace:
            for rb in self._store.list(self._bindings, attrs.namespace):
                if any(_subject_matches(s, user, attrs.namespace)
                       for s in rb.get("subjects") or []) and any(
                        _rule_allows(r, attrs)
                        for r in self._role_rules(rb["roleRef"], attrs.namespace)):
                    return True
        return False

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
