"""The image catalog: tutorial images resolve to something that runs, unknown ones do
not, busybox applets fill what the host lacks, and the web stand-ins serve their page."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request

import pytest
from sandbox_testing import wait_for
from tp_sandbox import images


@pytest.mark.parametrize("ref", ["nginx", "nginx:1.27", "docker.io/library/nginx:latest",
                                 "httpd:2.4", "redis:7", "busybox:1.36", "alpine:3.20"])
def test_tutorial_images_are_in_the_catalog(ref: str) -> None:
    assert images.known(ref)


def test_an_unknown_image_is_not_in_the_catalog() -> None:
    assert images.resolve("example.com/team/app:1.0") is None


def test_redis_runs_the_hosts_redis_server_without_persistence() -> None:
    argv = images.resolve("redis")
    assert argv is not None and argv[0] == "redis-server" and "--save" in argv


@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs the host's busybox")
def test_busybox_applets_the_host_lacks_are_linked_for_busybox_images() -> None:
    folder = images.applets_dir()
    assert folder is not None
    for applet in ("nslookup", "nc"):
        if shutil.which(applet) is None:
            assert os.path.realpath(folder / applet) == os.path.realpath(
                shutil.which("busybox") or "")
    assert not (folder / "sh").exists()  # the host's own tools come first


@pytest.mark.parametrize(("kind", "text"), [("nginx", "Welcome to nginx!"),
                                            ("httpd", "It works!")])
def test_the_web_stand_ins_serve_their_welcome_page(kind: str, text: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tp_sandbox.standins", kind],
                            env={**os.environ, "TP_STANDIN_PORT": str(port)},
                            stdout=subprocess.PIPE, text=True)
    try:
        def page() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    return str(r.read().decode())
            except OSError:
                return None

        assert text in wait_for(page, 15, f"{kind} answers")
    finally:
        proc.terminate()
        proc.wait(10)


def test_tp_sandbox_images_lists_what_each_image_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "tp_jupyter.cli", "sandbox", "images"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["IMAGE", "RUNS"]
    assert any(line.startswith("nginx ") and "welcome page" in line for line in lines)
    assert any(line.startswith("redis ") and "redis-server" in line for line in lines)
    assert "ImagePullBackOff" in lines[-1]
