"""Raw dials: in direct connect each tunneled connection is its own TLS stream to the
manager's raw dial port (8444 on the LoadBalancer address), no gRPC framing (root).

The admin installs the manager with `--manager-service-type LoadBalancer`; a pod in the
cluster runs a listener that logs every connection it accepts, so "nothing was dialed"
is read from its log. Laptop 1 connects directly and its connections go raw; raw dials
without the session's secret, with a wrong one or for a departed session are refused
before anything is dialed; laptop 2, whose packets to the raw port are rejected, tunnels
through gRPC with one line. The tests of this module run in order and share state.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from direct_manager_testing import install_direct_manager, load_balancer
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

TP = f"{sys.executable} -m tp_jupyter.cli"
PORT = 7000

# The pod's listener: one line per accepted connection; it reads until a newline or
# the client's half-close, then answers how many bytes it got.
LISTENER = r"""
import socket
srv = socket.create_server(("0.0.0.0", 7000))
while True:
    conn, _ = srv.accept()
    print("accepted", flush=True)
    got = 0
    while data := conn.recv(65536):
        got += len(data)
        if data.endswith(b"\n"):
            break
    conn.sendall(b"got %d\n" % got)
    conn.close()
"""

# A client inside a laptop: sends N bytes to IP:PORT (through the daemon's tunnel), then
# half-closes, and prints the listener's answer.
CLIENT = r"""
import socket, sys
ip, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = socket.create_connection((ip, port), timeout=10)
conn.sendall(b"x" * size)
conn.shutdown(socket.SHUT_WR)
answer = b""
while data := conn.recv(65536):
    answer += data
print(answer.decode().strip())
"""

# The sender pod: per connection it reads a size, sends that many bytes of a fixed
# pattern, half-closes, then reads until the client's EOF and logs what it heard.
SENDER = r"""
import hashlib, socket
srv = socket.create_server(("0.0.0.0", 7001))
block = hashlib.sha256(b"tp").digest() * 32768  # 1 MiB
while True:
    conn, _ = srv.accept()
    line = b""
    while not line.endswith(b"\n"):
        line += conn.recv(1)
    left = int(line)
    while left > 0:
        part = block[:min(left, len(block))]
        conn.sendall(part)
        left -= len(part)
    conn.shutdown(socket.SHUT_WR)
    heard = b""
    while data := conn.recv(65536):
        heard += data
    print("heard", heard.decode(), flush=True)
    conn.close()
"""

# A client inside a laptop: asks the sender for N bytes, reads to the EOF, then says
# "bye" and half-closes; prints the SHA-256 of what it got.
DOWNLOAD = r"""
import hashlib, socket, sys
ip, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = socket.create_connection((ip, port), timeout=30)
conn.sendall(b"%d\n" % size)
digest, got = hashlib.sha256(), 0
while data := conn.recv(1 << 20):
    digest.update(data)
    got += len(data)
conn.sendall(b"bye")
conn.shutdown(socket.SHUT_WR)
conn.recv(1)
print(got, digest.hexdigest())
"""

# The daemon's counters of how its connections went.
STATUS = r"""
import hashlib
import json
from tp_jupyter import daemon_client
with daemon_client.DaemonClient() as client:
    st = client.status()
print(json.dumps({"raw_dials": st.raw_dials, "grpc_dials": st.grpc_dials,
                  "note": st.raw_dial_note, "path": st.connection.manager_path}))
"""

# Raw dials by hand, run inside a laptop: arrive as a client over the TLS gRPC port with
# the laptop's token, then dial the listener raw with the session's secret, with none,
# with a wrong one, and again with the right one after departing. Prints each answer.
RAW = r"""
import json, socket, ssl, struct, sys
import grpc
from tp_protocol import manager_pb2 as pb, manager_pb2_grpc
host, ca_file, name, token, ip, port = sys.argv[1:7]
ca = open(ca_file).read()
metadata = (("authorization", f"Bearer {token}"),)
channel = grpc.secure_channel(f"{host}:8443", grpc.ssl_channel_credentials(ca.encode()),
                              [("grpc.ssl_target_name_override", name)])
stub = manager_pb2_grpc.ManagerStub(channel)
info = stub.ArriveAsClient(pb.ClientInfo(name="raw-test"), timeout=10, metadata=metadata)

def exactly(conn, size):
    data = b""
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            raise EOFError("closed")
        data += more
    return data

def dial(session_id, secret):
    context = ssl.create_default_context(cadata=ca)
    raw = socket.create_connection((host, info.raw_dial_port), timeout=10)
    conn = context.wrap_socket(raw, server_hostname=name)
    body = pb.RawDialHeader(session_id=session_id, dial_secret=secret, ip=ip,
                            port=int(port)).SerializeToString()
    conn.sendall(b"TPRD" + struct.pack(">I", len(body)) + body)
    (size,) = struct.unpack(">I", exactly(conn, 4))
    answer = pb.RawDialAnswer.FromString(exactly(conn, size))
    said = ""
    if answer.ok:
        conn.sendall(b"ping\n")
        said = conn.recv(100).decode().strip()
    conn.close()
    return {"ok": answer.ok, "code": answer.code, "message": answer.message, "said": said}

results = {"port": info.raw_dial_port, "secret_bytes": len(info.dial_secret)}
results["right"] = dial(info.session_id, info.dial_secret)
results["none"] = dial(info.session_id, b"")
results["wrong"] = dial(info.session_id, bytes(32))
stub.Depart(pb.SessionInfo(session_id=info.session_id), timeout=10, metadata=metadata)
results["departed"] = dial(info.session_id, info.dial_secret)
print(json.dumps(results))
"""


def _tp(lap: Laptop, args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


def _status(lap: Laptop) -> dict[str, Any]:
    done = lap.run([sys.executable, "-c", STATUS], timeout=30)
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def _send(lap: Laptop, ip: str, size: int) -> str:
    done = lap.run([sys.executable, "-c", CLIENT, ip, str(PORT), str(size)], timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def manager_ns(sandbox: Any, core: Any) -> Iterator[str]:
    """The admin installs the manager with a LoadBalancer Service."""
    yield from install_direct_manager(sandbox, core, "rawd")


@pytest.fixture(scope="module")
def lb(core: Any, manager_ns: str) -> dict[str, str]:
    """The LoadBalancer address and the certificate the manager published."""
    return load_balancer(core, manager_ns)


@pytest.fixture(scope="module")
def listener(core: Any) -> Iterator[dict[str, str]]:
    """A pod that logs each connection it accepts: its namespace, name and IP."""
    from kubernetes import client

    namespace = f"rawl-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    yield _running_pod(core, namespace, "listener", LISTENER)
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def sender(core: Any, listener: dict[str, str]) -> dict[str, str]:
    """A pod beside the listener that sends what it is asked for (port 7001)."""
    return _running_pod(core, listener["namespace"], "sender", SENDER)


def _running_pod(core: Any, namespace: str, name: str, code: str) -> dict[str, str]:
    """A pod running `python -c code`, once Running: its namespace, name and IP."""
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": name, "image": "python:3.11-slim",
                                 "command": [sys.executable, "-c", code]}]}})

    def ip() -> str:
        pod = core.read_namespaced_pod(name, namespace)
        running = pod.status.phase == "Running" and pod.status.pod_ip
        return str(pod.status.pod_ip) if running else ""

    return {"namespace": namespace, "name": name, "ip": wait_for(ip, 60, f"the {name} pod running")}


def _accepted(core: Any, pod: dict[str, str]) -> int:
    log = core.read_namespaced_pod_log(pod["name"], pod["namespace"])
    return str(log).count("accepted")


@pytest.fixture(scope="module")
def lap1(sandbox: Any) -> Iterator[Laptop]:
    lap = Laptop(sandbox, 1)
    yield lap
    _tp(lap, "quit", timeout=30)


@pytest.fixture(scope="module")
def lap2(sandbox: Any) -> Iterator[Laptop]:
    lap = Laptop(sandbox, 2)
    yield lap
    _tp(lap, "quit", timeout=30)


def test_a_direct_connection_moves_its_bytes_over_a_raw_tls_stream(
        lap1: Laptop, manager_ns: str, lb: dict[str, str], core: Any,
        listener: dict[str, str]) -> None:
    done = _tp(lap1, f"connect --manager-namespace {manager_ns} --manager-address direct")
    assert done.returncode == 0, done.stderr
    before = _accepted(core, listener)
    # a megabyte up, then a half-close: the listener answers after the EOF reached it
    assert _send(lap1, listener["ip"], 1 << 20) == f"got {1 << 20}"
    assert _accepted(core, listener) == before + 1
    status = _status(lap1)
    assert status["path"] == "direct"
    assert status["raw_dials"] >= 1 and status["grpc_dials"] == 0, status
    assert status["note"] == ""


def test_a_large_download_over_a_raw_dial_arrives_byte_exact_and_each_eof_half_closes(
        lap1: Laptop, core: Any, sender: dict[str, str]) -> None:
    size = 64 << 20
    before = _status(lap1)["raw_dials"]
    done = lap1.run([sys.executable, "-c", DOWNLOAD, sender["ip"], "7001", str(size)],
                    timeout=60)
    assert done.returncode == 0, done.stderr
    block = hashlib.sha256(b"tp").digest() * 32768
    expected = hashlib.sha256(block * (size // len(block))).hexdigest()
    assert done.stdout.split() == [str(size), expected]
    # the pod's EOF reached the laptop while the laptop's side stayed open: its "bye"
    # (sent after that EOF) reached the pod, ended by the laptop's own half-close
    wait_for(lambda: "heard bye" in str(core.read_namespaced_pod_log("sender",
                                                                      sender["namespace"])),
             10, "the sender hearing the laptop after its own EOF")
    assert _status(lap1)["raw_dials"] == before + 1


def test_a_raw_dial_without_the_secret_with_a_wrong_one_or_after_departing_dials_nothing(
        lap2: Laptop, lb: dict[str, str], core: Any,
        listener: dict[str, str], tmp_path: Path) -> None:
    kubeconfig = yaml.safe_load(Path(lap2.kubeconfig).read_text())
    token = str(kubeconfig["users"][0]["user"]["token"])
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(lb["ca"])
    before = _accepted(core, listener)
    done = lap2.run([sys.executable, "-c", RAW, lb["host"], str(ca_file), lb["name"], token,
                     listener["ip"], str(PORT)], timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["port"] == 8444 and got["secret_bytes"] == 32
    # the control: the session's own secret dials, and the bytes go through
    assert got["right"]["ok"] and got["right"]["said"] == "got 5", got
    for case in ("none", "wrong", "departed"):
        assert not got[case]["ok"], (case, got)
        assert got[case]["code"] == "no_session", (case, got)
        assert "arrive again" in got[case]["message"]
    # only the control reached the listener
    assert _accepted(core, listener) == before + 1


def test_without_the_raw_port_a_direct_connection_tunnels_through_grpc_with_one_line(
        lap2: Laptop, manager_ns: str, listener: dict[str, str]) -> None:
    reject = ("nft add table ip tp-test-raw && nft add chain ip tp-test-raw out "
              "'{ type filter hook output priority 0; }' && nft add rule ip tp-test-raw "
              "out ip daddr 172.29.0.0/24 tcp dport 8444 reject with tcp reset")
    assert lap2.run(reject).returncode == 0
    log_size = ("from tp_daemon import paths; p = paths.log_path(); "
                "print(p.stat().st_size if p.exists() else 0)")
    offset = int(lap2.run([sys.executable, "-c", log_size], timeout=30).stdout)
    try:
        done = _tp(lap2, f"connect --manager-namespace {manager_ns} --manager-address direct")
        assert done.returncode == 0, done.stderr
        assert _send(lap2, listener["ip"], 1000) == "got 1000"
        assert _send(lap2, listener["ip"], 2000) == "got 2000"
        status = _status(lap2)
        assert status["path"] == "direct"
        assert status["raw_dials"] == 0 and status["grpc_dials"] >= 2, status
        assert "raw dials not used" in status["note"], status
        assert "connection refused" in status["note"].lower(), status
        # what this connect logged (the log file outlives daemons and earlier tests)
        logged = lap2.run([sys.executable, "-c", "import sys; from tp_daemon import paths; "
                           "print(paths.log_path().read_bytes()[int(sys.argv[1]):]"
                           ".decode(errors='replace'))", str(offset)], timeout=30)
        said = [line for line in logged.stdout.splitlines() if "raw dials not used" in line]
        assert len(said) == 1, said
    finally:
        lap2.run("nft delete table ip tp-test-raw")
        _tp(lap2, "quit", timeout=30)
