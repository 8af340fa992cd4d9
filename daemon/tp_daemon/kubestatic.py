"""A kubeconfig context with static credentials, read without importing the official client.

Importing the official client costs ~170 ms of CPU (`kubernetes/__init__` imports every
subpackage, `kube_config` imports requests-oauthlib and the pydantic `ApiClient`): most of
the daemon's work before a `tp connect` can send its first request. A context whose
cluster and user hold only static fields needs none of it, so `read` takes those exactly
as `kubernetes.config.kube_config` does (data before file, paths relative to the
kubeconfig's folder, the CA and client certificate only for https, `token` before
`tokenFile`) and `tp_daemon.kube.Kube` then sends its few GETs with the standard library.

Anything else returns None and the official loader is used, unchanged: exec and
auth-provider plugins, username/password, proxy-url, tls-server-name, certificate data
inline for the client, a proxy in the environment, plain http, a missing file (the
official loader then says what is wrong), or a context, cluster or user it cannot find.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

CLUSTER_KEYS = frozenset({"server", "certificate-authority", "certificate-authority-data",
                          "insecure-skip-tls-verify", "extensions"})
USER_KEYS = frozenset({"token", "tokenFile", "client-certificate", "client-key",
                       "extensions"})


@dataclass(frozen=True)
class Static:
    """What the official loader would put in its `Configuration` for this context."""

    context: str
    namespace: str
    """The context's namespace ("" when it has none)."""
    host: str
    token: str
    ca_file: str | None
    ca_data: str | None
    """PEM text of certificate-authority-data (the official client writes it to a file)."""
    cert_file: str | None
    key_file: str | None
    verify: bool

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS of `tp_daemon.kube.Kube.endpoint`, from these fields."""
        ctx = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


class StatusError(Exception):
    """The API server answered a GET with a status outside 2xx (the attributes of the
    official client's `ApiException`, so `tp_daemon.kube` translates both alike)."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"({status}) Reason: {reason}")
        self.status, self.reason, self.body = status, reason, body


def _named(items: Any, name: str) -> dict[str, Any] | None:
    """The `name`d entry of a kubeconfig list (the first, as the official client takes)."""
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return None


def _file(base: str, name: Any) -> str | None:
    """A file named in the kubeconfig, as the official client resolves it; None when
    it does not exist (the official loader then raises its own error)."""
    if not isinstance(name, str) or not name:
        return None
    path = os.path.normpath(os.path.join(base, name))
    return path if os.path.isfile(path) else None


def _proxy_in_environment() -> bool:
    """Whether the official client would take a proxy from the environment (it reads
    `urllib.request.getproxies()`: any `*_proxy` variable, in either case); checked
    without importing urllib.request (~10 ms), erring towards the official loader."""
    return any(value and name.lower().endswith("_proxy") and name.lower() != "no_proxy"
               for name, value in os.environ.items())


def read(path: Path, context: str) -> Static | None:
    """The chosen context (`context`, else the current one) when it is static, else None.

    The file is parsed once with yaml's C loader when built (the official client uses
    the pure-Python `safe_load`: the same documents). Errors reading or parsing it are
    the official loader's to report, so they return None too."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(doc, dict) or _proxy_in_environment():
        return None
    name = context or doc.get("current-context") or ""
    ctx = (_named(doc.get("contexts"), name) or {}).get("context")
    if not name or not isinstance(ctx, dict):
        return None
    cluster = (_named(doc.get("clusters"), ctx.get("cluster", "")) or {}).get("cluster")
    user = (_named(doc.get("users"), ctx.get("user", "")) or {}).get("user")
    if not isinstance(cluster, dict) or not isinstance(user, dict):
        return None
    if not set(cluster) <= CLUSTER_KEYS or not set(user) <= USER_KEYS:
        return None
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        return None
    base = os.path.abspath(os.path.dirname(str(path)))
    if "token" in user:
        token = user["token"]
    elif "tokenFile" in user:
        token_file = _file(base, user["tokenFile"])
        if token_file is None:
            return None
        try:
            token = Path(token_file).read_text(encoding="utf-8")
        except (OSError, ValueError):
            return None
    else:
        return None
    if not isinstance(token, str) or not token:
        return None
    ca_file, ca_data = None, None
    if "certificate-authority-data" in cluster:
        try:
            ca_data = base64.standard_b64decode(cluster["certificate-authority-data"]).decode()
        except (TypeError, ValueError):
            return None
    elif "certificate-authority" in cluster:
        ca_file = _file(base, cluster["certificate-authority"])
        if ca_file is None:
            return None
    cert_file = key_file = None
    if "client-certificate" in user or "client-key" in user:
        cert_file = _file(base, user.get("client-certificate"))
        key_file = _file(base, user.get("client-key"))
        if cert_file is None or key_file is None:
            return None
    verify = not cluster.get("insecure-skip-tls-verify", False)
    namespace = ctx.get("namespace") or ""
    return Static(name, namespace if isinstance(namespace, str) else "",
                  server.rstrip("/"), token, ca_file, ca_data, cert_file, key_file, verify)


def get_json(static: Static, ctx: ssl.SSLContext, path: str, query: list[tuple[str, str]],
             timeout: float) -> Any:
    """GET `path` from the API server as JSON, with this context's TLS and token; a status
    outside 2xx raises `StatusError`, the network `OSError`/`TimeoutError`."""
    url = urlsplit(static.host)
    conn = http.client.HTTPSConnection(url.hostname or "", url.port or 443, context=ctx,
                                       timeout=timeout)
    try:
        target = (url.path.rstrip("/") + path) + (f"?{urlencode(query)}" if query else "")
        conn.request("GET", target, headers={"Accept": "application/json",
                                             "Authorization": f"Bearer {static.token}"})
        response = conn.getresponse()
        data = response.read()
    except http.client.HTTPException as e:  # a broken answer: the network's fault
        raise ConnectionError(f"bad answer from the API server: {e}") from e
    finally:
        conn.close()
    if not 200 <= response.status <= 299:
        raise StatusError(response.status, response.reason, data.decode(errors="replace"))
    return json.loads(data)
