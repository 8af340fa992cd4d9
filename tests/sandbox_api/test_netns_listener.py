"""`--listen ADDR:PORT@NETNS`: the server also answers inside a network namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from apiserver_testing import ADMIN_TOKEN, start_server, stop_server

pytestmark = [pytest.mark.root, pytest.mark.timeout(60),
              pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                 reason="needs root and iproute2")]


@pytest.fixture
def netns_name() -> Iterator[str]:
    name = f"tp-h1-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        subprocess.run(["ip", "-n", name, "addr", "add", "172.30.0.1/32", "dev", "lo"],
                       check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=10)


def test_a_netns_listener_serves_inside_the_namespace(tmp_path: Path, netns_name: str) -> None:
    srv = start_server(tmp_path, extra_listen=[f"172.30.0.1:6443@{netns_name}"])
    try:
        ca = srv.state_dir / "pki" / "ca.crt"
        proc = subprocess.run(
            ["ip", "netns", "exec", netns_name, "curl", "-s", "--cacert", str(ca),
             "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
             "https://172.30.0.1:6443/api/v1/namespaces/default/services/kubernetes"],
            capture_output=True, text=True, timeout=20, check=True)
        assert json.loads(proc.stdout)["spec"]["clusterIP"] == "10.96.0.1"
        # The host loopback listener is still there, and nothing listens on the host's
        # side for the in-namespace address.
        assert srv.raw("GET", "/readyz", token=None).data == b"ok"
    finally:
        stop_server(srv.proc)
