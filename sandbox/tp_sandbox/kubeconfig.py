"""Kubeconfig files and users of a sandbox instance, and the sandbox tooling's one API
adapter.

Every kubeconfig names its cluster, user and context `tp-sandbox` (default instance)
or `tp-sandbox-<name>`, embeds the instance CA and authenticates with a bearer token
of `tokens.json`: the admin's (`system:masters`), or for a named user's kubeconfig
(`USERS`) that user's, with context and user `<user>@tp-sandbox[-<name>]`. The named
users are in the groups `DEVELOPERS_GROUP` and `system:authenticated` and get the
`edit` ClusterRole in every namespace through `DEVELOPERS_BINDING`, never admin
rights. The host's kubeconfigs point at the API server on the host loopback; a
laptop's at the in-sandbox address (the laptop's only route).

`api_client()` is the only place the lifecycle code builds an official-client
`ApiClient`, so status/demo/bench share one way in.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tp_sandbox.paths import Instance

USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "ken", "laura", "mike", "nina", "oscar", "peggy")
"""The sandbox's named (non-admin) developers, one per laptop at most
(`settings.sandbox.max_laptops`): laptop K's kubeconfig is user K's unless `up
--laptop-users` says otherwise."""

ADMIN = "admin"
"""The admin user (`system:masters`): `--laptop-users admin`, `kubeconfig --admin`."""

DEVELOPERS_GROUP = "developers"
DEVELOPERS_BINDING = "tp-sandbox:developers-edit"
"""ClusterRoleBinding of `DEVELOPERS_GROUP` to the `edit` ClusterRole."""


def context_name(instance: Instance) -> str:
    """Cluster, user and context name used in this instance's kubeconfigs."""
    return f"tp-sandbox-{instance.name}" if instance.name else "tp-sandbox"


def _tokens(instance: Instance) -> dict[str, dict[str, Any]]:
    path = instance.tokens_file
    if not path.exists():
        return {}
    tokens: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return tokens


def _ensure_token(instance: Instance, user: str, groups: list[str]) -> str:
    tokens = _tokens(instance)
    for token, who in tokens.items():
        if who.get("user") == user:
            return token
    token = secrets.token_urlsafe(32)
    tokens[token] = {"user": user, "groups": groups}
    _write_private(instance.tokens_file, json.dumps(tokens, indent=2))
    return token


def ensure_admin_token(instance: Instance) -> str:
    """The admin token of `tokens.json`, creating the file with a random one if missing."""
    return _ensure_token(instance, "admin", ["system:masters"])


def ensure_user_token(instance: Instance, user: str) -> str:
    """User `user`'s token (one of `USERS`), added to `tokens.json` if missing."""
    if user not in USERS:
        raise ValueError(f"unknown sandbox user {user!r}: choose from {', '.join(USERS)}")
    return _ensure_token(instance, user, [DEVELOPERS_GROUP])


def user_kubeconfig(instance: Instance, user: str) -> Path:
    """The host kubeconfig of a named user."""
    return instance.state_dir / "users" / f"{user}.kubeconfig"


def render(instance: Instance, server: str, token: str, user: str | None = None) -> str:
    """A kubeconfig (YAML text) for `server` with the instance CA and `token` (of the
    admin, or of the named `user`)."""
    cluster = context_name(instance)
    name = f"{user}@{cluster}" if user else cluster
    ca = base64.b64encode((instance.pki_dir / "ca.crt").read_bytes()).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority-data": ca}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {
            "cluster": cluster, "user": name, "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(path: Path, text: str) -> Path:
    """Write a kubeconfig readable only by its owner (it carries the admin token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, text)
    return path


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    tmp.replace(path)


def readyz(instance: Instance, port: int, token: str | None = None, timeout: float = 2.0
           ) -> bool:
    """True when the API server on the host loopback answers `/readyz` with `ok`.

    A health probe, not API access: plain urllib with the instance CA, so it works
    before any client library state exists.
    """
    ctx = ssl.create_default_context(cafile=str(instance.pki_dir / "ca.crt"))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"https://127.0.0.1:{port}/readyz", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return bool(resp.status == 200 and resp.read().strip() == b"ok")
    except (OSError, urllib.error.URLError, ssl.SSLError, ValueError):
        return False


def api_client(kubeconfig: Path) -> Any:
    """An official-client `ApiClient` for `kubeconfig` (its current context)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(cfg)
