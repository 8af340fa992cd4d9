"""mitmproxy's own HAR reader, for tests that check our HAR files open in mitmproxy.

mitmproxy cannot be a test extra of this project: every release from 11.1 on needs
Python >= 3.12 (this project runs on 3.11), and 11.0.2, the last for 3.11, requires
cryptography < 44.1 while the project pins cryptography 48.0.0 (and h11 <= 0.14.0 against
our 0.16.0). So it lives in a venv of its own, made on first use with pip:
`~/.cache/tp-jupyter/mitmproxy-<version>` ($TP_MITMPROXY_PYTHON names another
interpreter that has it). `read_with_mitmproxy(path)` runs mitmproxy's `FlowReader`
(which reads HAR files since mitmproxy 10.1) there and returns each flow as a dict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

MITMPROXY_VERSION = "11.0.2"

_READ = r"""
import json, sys
from mitmproxy import io
flows = []
with open(sys.argv[1], "rb") as f:
    for flow in io.FlowReader(f).stream():
        flows.append({
            "method": flow.request.method, "url": flow.request.pretty_url,
            "request_headers": dict(flow.request.headers),
            "request_body": flow.request.get_text(strict=False),
            "status": flow.response.status_code if flow.response else None,
            "response_headers": dict(flow.response.headers) if flow.response else {},
            "response_body": flow.response.get_text(strict=False) if flow.response else None,
        })
print(json.dumps(flows))
"""


def mitmproxy_python() -> str:
    """An interpreter with mitmproxy (made once, see the module doc)."""
    given = os.environ.get("TP_MITMPROXY_PYTHON")
    if given:
        return given
    home = Path.home() / ".cache" / "tp-jupyter" / f"mitmproxy-{MITMPROXY_VERSION}"
    python = home / "bin" / "python"
    probe = [str(python), "-c", "import mitmproxy.io"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return str(python)
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)],
                          capture_output=True, text=True, timeout=120, check=False)
    installed = made.returncode == 0 and subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"mitmproxy=={MITMPROXY_VERSION}"],
        capture_output=True, text=True, timeout=600, check=False).returncode == 0
    if not installed:
        pytest.skip(f"cannot install mitmproxy=={MITMPROXY_VERSION} into {home} (no package "
                    "index?); set TP_MITMPROXY_PYTHON to an interpreter that has it")
    return str(python)


def read_with_mitmproxy(path: str | Path) -> list[dict[str, Any]]:
    """The flows mitmproxy reads from a HAR file (AssertionError with its stderr if it
    refuses the file)."""
    done = subprocess.run([mitmproxy_python(), "-c", _READ, str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"mitmproxy could not read {path}: {done.stderr[-2000:]}"
    flows: list[dict[str, Any]] = json.loads(done.stdout)
    return flows
