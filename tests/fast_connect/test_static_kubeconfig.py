"""A kubeconfig context with static credentials is read without importing the official
client (`tp_daemon.kubestatic`), field for field as the official loader reads it; any
other context (exec or auth-provider plugins, passwords, proxies...) is left to the
official loader; both kinds reach the sandbox's API server and connect."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sandbox_testing import Laptop
from tp_daemon import kubestatic

pytestmark = pytest.mark.timeout(120)

@pytest.fixture(autouse=True)
def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy in this environment would leave every context to the official loader."""
    import os

    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def _kubeconfig(folder: Path, cluster: dict[str, Any], user: dict[str, Any], *,
                namespace: str = "", current: str = "dev") -> Path:
    """A kubeconfig with contexts `dev` (the one under test) and `other`."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "c", "cluster": cluster},
                     {"name": "elsewhere", "cluster": {"server": "https://192.0.2.1:6443"}}],
        "users": [{"name": "u", "user": user},
                  {"name": "nobody", "user": {"token": "not-this-one"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u",
                                                 **({"namespace": namespace} if namespace
                                                    else {})}},
                     {"name": "other", "context": {"cluster": "elsewhere",
                                                   "user": "nobody"}}],
    }
    path = folder / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


def _official(path: Path, context: str) -> dict[str, Any]:
    """What the official loader puts in its Configuration for that context."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), context=context or None,
                            client_configuration=cfg, persist_config=False)
    contexts, active = config.list_kube_config_contexts(config_file=str(path))
    chosen = next(c for c in contexts if c["name"] == (context or active["name"]))
    return {"context": chosen["name"], "namespace": chosen["context"].get("namespace", ""),
            "host": cfg.host, "authorization": cfg.auth_settings()["BearerToken"]["value"],
            "ca": Path(cfg.ssl_ca_cert).read_text() if cfg.ssl_ca_cert else None,
            "cert": cfg.cert_file, "key": cfg.key_file, "verify": cfg.verify_ssl}


def _ours(path: Path, context: str) -> dict[str, Any]:
    got = kubestatic.read(path, context)
    assert got is not None, "a static context was left to the official loader"
    ca = got.ca_data if got.ca_data is not None else (
        Path(got.ca_file).read_text() if got.ca_file else None)
    return {"context": got.context, "namespace": got.namespace, "host": got.host,
            "authorization": f"Bearer {got.token}", "ca": ca, "cert": got.cert_file,
            "key": got.key_file, "verify": got.verify}


def _files(folder: Path) -> None:
    (folder / "pki").mkdir(parents=True, exist_ok=True)
    for name, text in (("ca.crt", CA_PEM), ("client.crt", CA_PEM), ("client.key", "key"),
                       ("token", "file-token")):
        (folder / "pki" / name).write_text(text)


CA_DATA = base64.b64encode(CA_PEM.encode()).decode()
STATIC = {
    "token and CA data": ({"server": "https://10.0.0.1:6443/",
                           "certificate-authority-data": CA_DATA}, {"token": "abc"}, ""),
    "token file and CA file relative to the kubeconfig": (
        {"server": "https://k8s.example:443", "certificate-authority": "pki/ca.crt"},
        {"tokenFile": "pki/token"}, ""),
    "client certificate files beside a token": (
        {"server": "https://10.0.0.1:6443", "certificate-authority": "pki/ca.crt"},
        {"token": "abc", "client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
        ""),
    "a token before a token file, no CA (the system's), TLS unverified": (
        {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True},
        {"token": "inline", "tokenFile": "pki/token"}, ""),
    "the context's namespace": ({"server": "https://10.0.0.1:6443",
                                 "certificate-authority-data": CA_DATA},
                                {"token": "abc"}, "team-a"),
}


@pytest.mark.parametrize("case", list(STATIC))
@pytest.mark.parametrize("context", ["", "dev"])
def test_a_static_context_reads_as_the_official_loader_reads_it(
        tmp_path: Path, case: str, context: str) -> None:
    _files(tmp_path)
    cluster, user, namespace = STATIC[case]
    path = _kubeconfig(tmp_path, cluster, user, namespace=namespace)
    assert _ours(path, context) == _official(path, context)


def test_a_context_that_is_not_the_current_one_is_read_when_named(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"server": "https://10.0.0.1:6443"}, {"token": "abc"},
                       current="other")
    assert _ours(path, "dev") == _official(path, "dev")
    assert _ours(path, "")["host"] == "https://192.0.2.1:6443"


EXEC = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "get-token"}
OFFICIAL_ONLY = {
    "an exec credential plugin": ({}, {"exec": EXEC}),
    "an auth-provider plugin": ({}, {"auth-provider": {"name": "oidc", "config": {}}}),
    "username and password": ({}, {"username": "a", "password": "b"}),
    "a token beside an exec plugin (the official order decides)": (
        {}, {"token": "abc", "exec": EXEC}),
    "client certificate data": ({}, {"token": "abc", "client-certificate-data": CA_DATA,
                                     "client-key-data": CA_DATA}),
    "a proxy-url": ({"proxy-url": "http://proxy:3128"}, {"token": "abc"}),
    "a tls-server-name": ({"tls-server-name": "kubernetes"}, {"token": "abc"}),
    "a plain http server": ({"server": "http://10.0.0.1:8080"}, {"token": "abc"}),
    "a token file that does not exist": ({}, {"tokenFile": "missing"}),
    "a CA file that does not exist": ({"certificate-authority": "missing.crt"},
                                      {"token": "abc"}),
    "no credentials": ({}, {}),
}


@pytest.mark.parametrize("case", list(OFFICIAL_ONLY))
def test_any_other_context_is_left_to_the_official_loader(tmp_path: Path, case: str) -> None:
    cluster, user = OFFICIAL_ONLY[case]
    path = _kubeconfig(tmp_path, {"server": "https://10.0.0.1:6443", **cluster}, user)
    assert kubestatic.read(path, "") is None


def test_a_proxy_in_the_environment_leaves_the_context_to_the_official_loader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _kubeconfig(tmp_path, {"server": "https://10.0.0.1:6443"}, {"token": "abc"})
    assert kubestatic.read(path, "") is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert kubestatic.read(path, "") is None


def test_an_unknown_context_or_a_broken_file_is_left_to_the_official_loader(
        tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"server": "https://10.0.0.1:6443"}, {"token": "abc"})
    assert kubestatic.read(path, "nope") is None
    path.write_text("clusters: [unclosed")
    assert kubestatic.read(path, "") is None


# --------------------------------------------------------------------- on the sandbox

PROBE = """
import json, sys
sys.modules["kubernetes_validate"] = None  # as the daemon's __main__ does
import tp_daemon.session  # what the daemon's start imports for connect (tp_daemon.preload)
from tp_daemon.kube import Kube
from tp_daemon.errors import DaemonError
kube = Kube(sys.argv[1], "", "", api_timeout=20)
try:
    pod = kube.ready_manager_pod(sys.argv[2])
except DaemonError as e:  # translated once, in the adapter
    print(json.dumps({"error": f"{type(e).__name__}: {e}",
                      "official_imported": "kubernetes" in sys.modules}))
    sys.exit(0)
found = kube.direct_target(sys.argv[2])
import asyncio
from tp_daemon import direct
# --manager-address direct reads the Service and the certificate side by side
both = asyncio.run(direct.lookup(kube, sys.argv[2], direct.Choice(direct.DIRECT)))
missing = kube.manager_certificate("no-such-namespace")  # a 404
print(json.dumps({"static": kube.static is not None, "pod": pod, "namespace":
                  kube.target.namespace, "direct": str(found)[:80], "missing": missing,
                  "both": str(both)[:80],
                  "token": kube.bearer_token()[:8],
                  "official_imported": "kubernetes" in sys.modules}))
"""


def _probe(kubeconfig: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(kubeconfig), "ambassador"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _sandbox_token(sandbox: Any) -> tuple[dict[str, Any], str]:
    doc = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    return doc, str(doc["users"][0]["user"]["token"])


@pytest.mark.root
def test_a_static_context_reaches_the_api_server_without_the_official_client(
        sandbox: Any, tmp_path: Path) -> None:
    doc, token = _sandbox_token(sandbox)
    # a token file (relative to the kubeconfig) and the context's own namespace
    (tmp_path / "token").write_text(token)
    del doc["users"][0]["user"]["token"]
    doc["users"][0]["user"]["tokenFile"] = "token"
    doc["contexts"][0]["context"]["namespace"] = "team-a"
    (tmp_path / "config").write_text(yaml.safe_dump(doc))
    got = _probe(tmp_path / "config")
    assert got["static"] and not got["official_imported"], got
    assert got["pod"].startswith("traffic-manager-") and got["namespace"] == "team-a"
    assert "no LoadBalancer Service" in got["direct"] or "Target" in got["direct"]
    assert got["both"][:30] == got["direct"][:30], got
    assert got["token"] == token[:8] and "has not published" in got["missing"]
    # a wrong token: the API server's 401 is the one-line error of the official path
    doc["users"][0]["user"] = {"token": "wrong"}
    (tmp_path / "config").write_text(yaml.safe_dump(doc))
    got = _probe(tmp_path / "config")
    assert got["error"].startswith("ConfigError: the API server at") and \
        "rejected the credentials" in got["error"] and not got["official_imported"], got


@pytest.mark.root
def test_an_exec_plugin_context_reaches_the_api_server_through_the_official_client(
        sandbox: Any, tmp_path: Path) -> None:
    doc, token = _sandbox_token(sandbox)
    doc["users"][0]["user"] = {"exec": _exec_plugin(token)}
    (tmp_path / "config").write_text(yaml.safe_dump(doc))
    got = _probe(tmp_path / "config")
    assert not got["static"] and got["official_imported"], got
    assert got["pod"].startswith("traffic-manager-") and got["namespace"] == "default"
    assert got["token"] == token[:8] and "has not published" in got["missing"]


def _exec_plugin(token: str) -> dict[str, Any]:
    credential = {"apiVersion": "client.authentication.k8s.io/v1beta1",
                  "kind": "ExecCredential", "status": {"token": token}}
    return {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
            "args": ["-c", f"print({json.dumps(json.dumps(credential))})"],
            "interactiveMode": "Never"}


@pytest.mark.root
@pytest.mark.slow
def test_tp_connect_with_an_exec_plugin_kubeconfig_connects_and_quits(
        sandbox: Any, tmp_path: Path) -> None:
    lap = Laptop(sandbox, 1)
    doc = yaml.safe_load(lap.kubeconfig.read_text())
    token = str(doc["users"][0]["user"]["token"])
    doc["users"][0]["user"] = {"exec": _exec_plugin(token)}
    doc["contexts"][0]["context"]["namespace"] = "team-exec"
    path = lap.kubeconfig.with_name("kubeconfig-exec-test")
    path.write_text(yaml.safe_dump(doc))
    tp = [sys.executable, "-m", "tp_jupyter.cli"]
    try:
        lap.run([*tp, "quit"], timeout=30)
        proc = lap.run([*tp, "connect", "--kubeconfig", str(path), "--manager-address",
                        "port-forward", "--format", "json"], timeout=120)
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert info["namespace"] == "team-exec", info
    finally:
        lap.run([*tp, "quit"], timeout=30)
        path.unlink(missing_ok=True)


RIGHT_AFTER = """
import json
from tp_jupyter import api
api.quit()
api.connect(manager_address="port-forward")
api.quit()  # at once: the bookkeeping's start is cancelled with the rest
api.connect(manager_address="port-forward")
listing = api.list_workloads()  # the next RPC: the intercept bookkeeping may still import
print(json.dumps({"namespace": listing.to_dict()["namespace"],
                  "intercepts": len(api.status().to_dict().get("intercepts") or [])}))
api.quit()
"""


@pytest.mark.root
@pytest.mark.slow
def test_an_intercept_rpc_or_a_quit_right_after_connect_finds_the_bookkeeping_whole(
        sandbox: Any) -> None:
    lap = Laptop(sandbox, 1)
    proc = lap.run([sys.executable, "-c", RIGHT_AFTER], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"namespace": "default",
                                                               "intercepts": 0}
