"""A real API server process on loopback with a throwaway state dir, and official
`kubernetes` clients for it (admin, and helpers to build clients from other tokens)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from apiserver_process import (
    ApiServerProcess,
    free_port,  # noqa: F401 - tests import it from here
    new_namespace,
    start_apiserver,
)
from apiserver_process import stop_process as stop_server
from kubernetes import client, config
from waiting import wait_for  # noqa: F401  (re-exported: the one poller)

ADMIN_TOKEN = "admin-token-for-tests"
WATCH_HISTORY = 200


@dataclass
class Server(ApiServerProcess):
    """The API server with helpers for requests the typed client does not make."""

    def raw(self, method: str, path: str, *, token: str | None = ADMIN_TOKEN,
            headers: dict[str, str] | None = None, body: bytes | None = None,
            timeout: float = 10.0) -> urllib3.BaseHTTPResponse:
        """A plain HTTPS request, for what the typed client does not expose."""
        http = urllib3.PoolManager(ca_certs=str(self.ca), cert_reqs="CERT_REQUIRED")
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        return http.request(method, self.url + path, headers=hdrs, body=body,
                            timeout=timeout, retries=False)

    def client_for(self, token: str) -> client.ApiClient:
        cfg = client.Configuration()
        cfg.host = self.url
        cfg.ssl_ca_cert = str(self.ca)
        cfg.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(cfg)


def start_server(state_dir: Path, extra_listen: list[str] | None = None) -> Server:
    # A short watch history so that the 410 test can outrun it quickly.
    settings = {"apiserver": {"watch_history": WATCH_HISTORY, "watch_bookmark_interval": 1.0}}
    return start_apiserver(state_dir, ADMIN_TOKEN, settings, Server, extra_listen)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("apiserver"))
    yield srv
    stop_server(srv.proc)
    if os.environ.get("TP_SHOW_APISERVER_LOG"):
        print(srv.log.read_text())


@pytest.fixture(scope="session")
def kube(server: Server) -> client.ApiClient:
    return config.new_client_from_config(str(server.kubeconfig))


@pytest.fixture
def namespace(core: client.CoreV1Api) -> str:
    return new_namespace(core, "t")
