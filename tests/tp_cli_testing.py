"""The `tp` command line in sandbox laptops, as the end-to-end tests of tests/intercept,
tests/mirror and tests/hold drive it (imported by this unique module name): the demo app
in a fresh namespace, developers on laptops with a local copy of the app, `tp` calls and
the one-line-error check. `tp` and `local_app` are durability_testing's, re-exported."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from durability_testing import SVC, TP, local_app, tp
from sandbox_testing import Laptop

__all__ = ["CURL", "SVC", "TP", "Tp", "demo_namespace", "developer", "local_app",
           "one_line_error", "short_home", "tp", "tp_with_home"]

CURL = "curl -sS --max-time 8"

Tp = Callable[..., subprocess.CompletedProcess[str]]
"""`tp ARGS...` in a laptop (`tp_with_home`): env= adds variables, timeout= bounds it."""


@contextmanager
def demo_namespace(sandbox: Any, core: Any, prefix: str) -> Iterator[str]:
    """The demo app deployed in a new namespace PREFIX-xxxxxx, deleted afterwards."""
    from tp_sandbox import lifecycle

    namespace = f"{prefix}-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    yield namespace
    core.delete_namespace(namespace)


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


@contextmanager
def short_home(prefix: str) -> Iterator[Path]:
    """A short $TP_HOME under /tmp: the daemon's socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def tp_with_home(lap: Laptop, home: Path) -> Iterator[Tp]:
    """`tp ARGS...` in `lap` with its own daemon home (HOME/tp); quits at the end."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 200
            ) -> subprocess.CompletedProcess[str]:
        return lap.run([sys.executable, "-m", "tp_jupyter.cli", *args], timeout=timeout,
                       env={"TP_HOME": str(home / "tp"), **(env or {})})

    yield run
    run("quit", timeout=60)


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The failed command's error, checked to be one line (the last; progress lines may
    come first) that contains every word."""
    assert proc.returncode != 0, proc.stdout
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("tp: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]
