"""Helpers of the agent-link tests (tests/agent_link; imported by this unique name): the
daemon's link counters, a stranger's link attempt, requests sent inside the cluster."""

from __future__ import annotations

import json
import sys
from typing import Any

from sandbox_testing import Laptop

TP = f"{sys.executable} -m tp_jupyter.cli"
SVC = "dataprocessingservice"

STATUS = r"""
import json
from tp_jupyter.daemon_client import DaemonClient
with DaemonClient() as d:
    st = d.status(timeout=30)
print(json.dumps({ic.spec.name: {"id": ic.id,
    "link_connections": ic.link_connections, "relay_connections": ic.relay_connections,
    "link_state": ic.link_state, "state": ic.state,
    "pods": [[p.namespace, p.pod, p.port] for p in ic.link_pods]} for ic in st.intercepts}))
"""

PROBE = r"""
import asyncio, json, sys
from tp_daemon.kube import Kube
from tp_daemon.portforward import PodPort, open_stream
from tp_protocol import linkframes
from tp_protocol import manager_pb2 as mpb

ns, pod, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
pairs = json.loads(sys.argv[5]) if len(sys.argv) > 5 else []

async def main():
    kube = Kube("", "", "", api_timeout=10)
    stream = await open_stream(kube.endpoint(), PodPort(ns, pod, port), dial_timeout=10)
    if mode == "garbage":
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    else:
        batch = mpb.RelayBatch(frames=[linkframes.hello([tuple(p) for p in pairs])])
        await stream.send(linkframes.encode(batch))
    decoder, answers = linkframes.Decoder(1 << 20), []
    async with asyncio.timeout(20):
        while chunk := await stream.recv():
            for b in decoder.feed(chunk):
                answers += [{"kind": f.WhichOneof("kind"),
                             "ids": [k.intercept_id for k in f.link_hello.keys],
                             "note": f.link_hello.note} for f in b.frames]
    await stream.close()
    print(json.dumps({"answers": answers, "closed": True}))

asyncio.run(main())
"""

REQUESTS = r"""
import http.client, json, sys
host, n, fresh = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "fresh"
who = sys.argv[4:]
out = {"colors": {}, "failed": 0, "errors": []}
c = None
for i in range(n):
    k = who[i % len(who)]
    try:
        if c is None:
            c = http.client.HTTPConnection(host, 3000, timeout=20)
        c.request("GET", "/color", headers={"blog-demo-id": k} if k != "-" else {})
        r = c.getresponse()
        body = r.read()
        got = json.loads(body) if r.status == 200 else f"{r.status}"
    except Exception as e:
        got, c = "error", None
        out["errors"].append(str(e))
    if fresh and c is not None:
        c.close()
        c = None
    key = f"{k}={got}"
    out["colors"][key] = out["colors"].get(key, 0) + 1
print(json.dumps(out))
"""


def link_status(lap: Laptop) -> dict[str, Any]:
    """The daemon's intercepts: link/relay request counters, link state, link pods."""
    done = lap.run([sys.executable, "-c", STATUS], timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def probe_link(lap: Laptop, pod: list[Any], mode: str = "hello",
               pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A link attempt through the laptop developer's own port-forward rights."""
    argv = [sys.executable, "-c", PROBE, str(pod[0]), str(pod[1]), str(pod[2]), mode,
            json.dumps(pairs or [])]
    done = lap.run(argv, timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def cluster_requests(core: Any, ns: str, n: int, *who: str, fresh: bool = True
                     ) -> dict[str, Any]:
    """`n` requests from inside the cluster (the verylargejavaservice pod) to the Service,
    with `blog-demo-id: <who>` in turn ("-": none), each on a new connection (`fresh`)
    or all on one keep-alive connection; answers counted."""
    from kubernetes.stream import stream

    pod = core.list_namespaced_pod(ns, label_selector="app=verylargejavaservice").items[0]
    raw = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, ns,
                 command=["python3", "-c", REQUESTS, SVC, str(n),
                          "fresh" if fresh else "keep", *who], stdout=True,
                 stderr=True, stdin=False, tty=False, _request_timeout=300)
    return dict(json.loads(str(raw).strip().splitlines()[-1]))
