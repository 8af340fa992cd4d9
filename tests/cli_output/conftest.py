"""Fixtures of the machine-readable output tests: `tp` run as the user runs it (a process,
its own $TP_HOME so it never meets another test's daemon). Helpers: `tp_output_testing`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "tp"


@pytest.fixture
def tp(home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`tp ARGS...` in a fresh process with $TP_HOME set to this test's folder."""

    def run(*args: str, env: dict[str, str] | None = None,
            unset: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        import os

        environ = {k: v for k, v in os.environ.items() if k not in unset}
        environ.update({"TP_HOME": str(home), **(env or {})})
        return subprocess.run([sys.executable, "-m", "tp_jupyter.cli", *args], env=environ,
                              capture_output=True, text=True, timeout=60, check=False)

    return run
