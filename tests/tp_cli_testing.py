"""The `tp` command line in sandbox laptops, as the end-to-end tests of tests/intercept,
tests/mirror and tests/hold drive it (imported by this unique module name): the demo app
in a fresh namespace, developers on laptops with a local copy of the app, `tp` calls and
the one-line-error check."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sandbox_testing import Laptop, wait_for

TP = f"{sys.executable} -m tp_jupyter.cli"
CURL = "curl -sS --max-time 8"
SVC = "dataprocessingservice"


@contextmanager
def demo_namespace(sandbox: Any, core: Any, prefix: str) -> Iterator[str]:
    """The demo app deployed in a new namespace PREFIX-xxxxxx, deleted afterwards."""
    from tp_sandbox import lifecycle

    namespace = f"{prefix}-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    yield namespace
    core.delete_namespace(namespace)


def local_app(lap: Laptop, color: str) -> subprocess.Popen[str]:
    """The demo app on the laptop's port 3000 answering `color`, once it answers."""
    proc = lap.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                     env={"COLOR": color, "PORT": "3000"}, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    wait_for(lambda: color in lap.run(f"{CURL} http://127.0.0.1:3000/color").stdout, 30,
             f"the local {color} app")
    return proc


@contextmanager
def developer(sandbox: Any, number: int, color: str) -> Iterator[Laptop]:
    """Laptop NUMBER running a local app answering `color`, connected with `tp connect`;
    quit and the app stopped afterwards."""
    lap = Laptop(sandbox, number)
    proc = local_app(lap, color)
    connected = lap.run(f"{TP} connect", timeout=180)
    assert connected.returncode == 0, connected.stderr
    yield lap
    lap.run(f"{TP} quit", timeout=30)
    proc.terminate()
    proc.wait(timeout=10)


def tp(lap: Laptop, args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The failed command's error, checked to be one line (the last; progress lines may
    come first) that contains every word."""
    assert proc.returncode != 0, proc.stdout
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("tp: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]
