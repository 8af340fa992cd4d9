"""The README's main job, `tp demo`, runs the seed walkthrough to the end.

It uses the default sandbox instance (as a user on a fresh machine would) and removes it
afterwards.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(900)]


def tp(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tp_jupyter.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_tp_demo_replays_the_seed_walkthrough_with_every_check_passing() -> None:
    try:
        proc = tp("demo", timeout=850)
        out = proc.stdout
        assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
        assert "Connected to context alice@tp-sandbox (https://172.30.0.1:6443)" in out
        assert "Connected to context bob@tp-sandbox (https://172.30.0.1:6443)" in out
        # what only an admin may do runs with the admin's kubeconfig, and says so
        assert "[laptop-1 as the admin] $ kubectl create ns telepresence-demo" in out
        assert "[laptop-1 as the admin] $ tp uninstall --everything" in out
        assert "Connected to context tp-sandbox (https://172.30.0.1:6443)" in out
        assert "dataprocessingservice: ready to intercept (traffic-agent not yet installed)" in out
        assert "Using Deployment dataprocessingservice" in out
        assert "Intercepting      : all TCP connections" in out
        assert 'header("blog-demo-id") ~= regexp("alice")' in out
        assert 'header("blog-demo-id") ~= regexp("bob")' in out
        # the StatefulSet, listed with its kind and intercepted with a live mount that later
        # commands of the laptop read through
        assert "colorstore (StatefulSet): ready to intercept" in out
        assert "Using StatefulSet colorstore" in out
        assert "Volume Mount Point: /tmp/tp-demo-mount" in out
        assert "hello from the colorstore pod" in out
        assert "The seed walkthrough ran on the sandbox" in out
    finally:
        tp("sandbox", "down", timeout=120)
