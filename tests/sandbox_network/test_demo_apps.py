"""The demo apps, served in-process on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient, TestServer
from tp_sandbox.demo import dataprocessingservice, verylargedatastore, verylargejavaservice

ROOT = Path(__file__).resolve().parents[2]


async def test_dataprocessingservice_answers_green_as_json() -> None:
    async with TestClient(TestServer(dataprocessingservice.make_app())) as client:
        resp = await client.get("/color")
        assert resp.status == 200 and await resp.text() == '"green"\n'
        assert (await client.get("/healthz")).status == 200


async def test_the_color_is_configurable_for_a_local_copy() -> None:
    async with TestClient(TestServer(dataprocessingservice.make_app("blue"))) as client:
        assert await (await client.get("/color")).json() == "blue"


async def test_the_web_page_shows_the_color_and_the_data() -> None:
    async with TestClient(TestServer(dataprocessingservice.make_app())) as dps, \
            TestClient(TestServer(verylargedatastore.make_app())) as store:
        app = verylargejavaservice.make_app(str(dps.make_url("/color")),
                                            str(store.make_url("/data")))
        async with TestClient(TestServer(app)) as web:
            status = await (await web.get("/api/status")).json()
            assert status == {"color": "green", "records": 3, "errors": []}
            page = await (await web.get("/")).text()
            assert 'style="color: green"' in page


async def test_the_web_page_names_a_backend_that_is_down() -> None:
    app = verylargejavaservice.make_app("http://127.0.0.1:9/color", "http://127.0.0.1:9/data")
    async with TestClient(TestServer(app)) as web:
        status = await (await web.get("/api/status")).json()
        assert status["color"] is None and len(status["errors"]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_demo_process_serves_and_stops_gracefully_on_sigterm() -> None:
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "COLOR": "blue"}
    proc = subprocess.Popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/color", timeout=2) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b'"blue"\n'
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_manifest_has_three_deployments_and_services_without_namespace() -> None:
    path = ROOT / "sandbox" / "manifests" / "demo.yaml"
    assert path.is_symlink() and path.resolve() == (
        ROOT / "sandbox" / "tp_sandbox" / "manifests" / "demo.yaml")
    docs = list(yaml.safe_load_all(path.read_text()))
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert [k for k, _ in kinds] == ["Deployment"] * 3 + ["Service"] * 3
    assert all("namespace" not in d["metadata"] for d in docs)
    dps = next(d for d in docs if d["kind"] == "Service"
               and d["metadata"]["name"] == "dataprocessingservice")
    assert dps["spec"]["ports"][0]["targetPort"] == "http"
