"""Fixtures of the daily-use commands' tests (apply/delete, gather-logs, replace): `tp` run
inside laptop 1 as a developer runs it, with its own daemon home, against a fresh demo
namespace; documents are checked with the shipped JSON Schemas (`tp_output_testing`)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import Laptop

# the schema checker of the --format tests, also when this folder runs alone
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli_output"))

Tp = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    if not sandbox.has_node:
        pytest.skip("these commands need the sandbox node (pods)")
    from tp_sandbox import lifecycle

    namespace = f"ops-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    yield namespace
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def lap(sandbox: Any) -> Laptop:
    return Laptop(sandbox, 1)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A short $TP_HOME: the daemon's socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="tpops-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def tp(lap: Laptop, home: Path, demo: str) -> Iterator[Tp]:
    """`tp ARGS...` in laptop 1 (its own daemon home); quits at the end."""

    def run(*args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
        return lap.run([sys.executable, "-m", "tp_jupyter.cli", *args], timeout=timeout,
                       env={"TP_HOME": str(home / "tp")})

    yield run
    run("quit", timeout=60)
