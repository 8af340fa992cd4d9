"""The magics against the sandbox: an IPython shell inside laptop 1 runs `%tp connect`,
`%tp status`, reaches a cluster name, and `%tp quit`s, all through `run_line_magic`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPT = r'''
import json, socket
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.error import UsageError
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "tp_jupyter")
out = {}
out["connect"] = str(ip.run_line_magic("tp", "connect"))
status = ip.run_line_magic("tp", "status")
out["connected"] = status.connected
out["status_html"] = "<table>" in status._repr_html_()
out["kubernetes"] = socket.gethostbyname("kubernetes.default")
try:
    ip.run_line_magic("tp", "connect --context no-such-context")
except UsageError as e:
    out["bad_context"] = str(e)
out["quit"] = str(ip.run_line_magic("tp", "quit"))
ip.run_line_magic("unload_ext", "tp_jupyter")
print("RESULT=" + json.dumps(out))
'''


def test_connect_status_and_quit_through_the_magics_in_a_laptop(sandbox: Any, laptop: Any,
                                                                tmp_path: Path) -> None:
    lap = laptop(1)
    env = {"HOME": str(tmp_path), "TP_HOME": str(tmp_path / "tp"),
           "KUBECONFIG": str(lap.kubeconfig), "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        r = lap.run([sys.executable, "-c", SCRIPT], timeout=240, env=env)
    finally:
        lap.run([sys.executable, "-m", "tp_jupyter.cli", "quit"], timeout=60, env=env)
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT=")), None)
    assert line, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads(line[len("RESULT="):])
    assert out["connect"].startswith("Connected to context") or "Installed" in out["connect"]
    assert out["connected"] and out["status_html"]
    assert out["kubernetes"] == "10.96.0.1"
    assert "tp quit" in out.get("bad_context", "")   # a one-line UsageError with the fix
    assert out["quit"].startswith("Disconnected")
