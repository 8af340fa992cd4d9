"""ruff and strict mypy, as configured in pyproject.toml, are part of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["tp_jupyter", "daemon", "cluster_images", "sandbox", "protocol", "tests", "bench"]


def test_ruff_finds_nothing_in_the_sources() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", *SOURCES], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_strict_mypy_finds_nothing_in_the_packages() -> None:
    packages = ["tp_jupyter", "tp_daemon", "tp_cluster", "tp_sandbox", "tp_protocol"]
    args = [arg for p in packages for arg in ("-p", p)]
    proc = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr
