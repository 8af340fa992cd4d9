"""Fixtures of the daily-use commands' tests (apply/delete, gather-logs, replace): `tp` run
inside laptop 1 as a developer runs it, with its own daemon home, against a fresh demo
namespace; documents are checked with the shipped JSON Schemas (`tp_output_testing`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import Laptop
from tp_cli_testing import Tp, demo_namespace, short_home, tp_with_home

# the schema checker of the --format tests, also when this folder runs alone
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli_output"))

@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    if not sandbox.has_node:
        pytest.skip("these commands need the sandbox node (pods)")
    with demo_namespace(sandbox, core, "ops") as namespace:
        yield namespace


@pytest.fixture(scope="module")
def lap(sandbox: Any) -> Laptop:
    return Laptop(sandbox, 1)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    with short_home("tpops-") as path:
        yield path


@pytest.fixture(scope="module")
def tp(lap: Laptop, home: Path, demo: str) -> Iterator[Tp]:
    """`tp ARGS...` in laptop 1 (its own daemon home); quits at the end."""
    with tp_with_home(lap, home) as run:
        yield run
