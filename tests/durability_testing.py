"""Helpers of the durability tests (imported by this unique module name): the demo, the
two developers' local apps, the manager pod, and answers from inside the cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from sandbox_testing import Laptop, wait_for

TP = f"{sys.executable} -m tp_jupyter.cli"
CURL = "curl -sS --max-time 5"
SVC = "dataprocessingservice"
MANAGER_NS = "ambassador"

COLORS = r"""
import json, sys, urllib.request
out = {}
for who in sys.argv[2:]:
    req = urllib.request.Request(f"http://{sys.argv[1]}:3000/color",
                                 headers={"blog-demo-id": who} if who != "-" else {})
    try:
        out[who] = json.loads(urllib.request.urlopen(req, timeout=4).read())
    except Exception as e:
        out[who] = f"error: {e}"
print(json.dumps(out))
"""


def tp(lap: Laptop, args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


def local_app(lap: Laptop, color: str) -> subprocess.Popen[str]:
    """The demo app on the laptop's port 3000, answering `color`."""
    proc = lap.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                     env={"COLOR": color, "PORT": "3000"}, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    wait_for(lambda: color in lap.run(f"{CURL} http://127.0.0.1:3000/color").stdout, 30,
             f"the local {color} app")
    return proc


def cluster_colors(core: Any, ns: str, *who: str) -> dict[str, str]:
    """What the Service answers inside the cluster (from the verylargejavaservice pod) to
    a request with `blog-demo-id: <who>` each ("-": no header)."""
    from kubernetes.stream import stream

    pod = core.list_namespaced_pod(ns, label_selector="app=verylargejavaservice").items[0]
    raw = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, ns,
                 command=["python3", "-c", COLORS, SVC, *who], stdout=True, stderr=True,
                 stdin=False, tty=False, _request_timeout=30)
    try:
        return dict(json.loads(str(raw).strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"output": str(raw)}


def manager_pods(core: Any) -> list[Any]:
    return list(core.list_namespaced_pod(MANAGER_NS,
                                         label_selector="app=traffic-manager").items)


def ready_manager(core: Any, other_than: str = "") -> str:
    """The name of a Ready, not terminating manager pod other than `other_than` ("")."""
    for pod in manager_pods(core):
        if pod.metadata.name == other_than or pod.metadata.deletion_timestamp:
            continue
        if any(c.type == "Ready" and c.status == "True"
               for c in (pod.status.conditions or [])):
            return str(pod.metadata.name)
    return ""


def status_json(lap: Laptop) -> dict[str, Any]:
    done = tp(lap, "status --format json", timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))
