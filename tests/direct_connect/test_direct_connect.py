"""Direct connect: the traffic-manager at its LoadBalancer address, past the API server (root).

The admin installs the manager once with `--manager-service-type LoadBalancer`; the
sandbox's service-lb-controller gives `traffic-manager-direct` an address of
172.29.0.0/24, which the laptops route to. Laptop 1 connects there (TLS, the certificate
pinned from the API server) and keeps working with the API server blocked; laptop 2
loses its route to the range (in its own netns) and falls back to the port-forward with
one line; callers without valid credentials, or without the pinned certificate, are
refused at the address. The tests of this module run in order and share state.
"""

from __future__ import annotations

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
from sandbox_testing import Laptop

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

TP = f"{sys.executable} -m tp_jupyter.cli"
CURL = "curl -sS --max-time 5"
SVC = "dataprocessingservice"
LB_ROUTE = "172.29.0.0/24 via 172.30.0.1 dev eth0"

# A gRPC caller of the manager's Version, run inside a laptop: prints the status code
# name ("OK" when it answered) for one way of calling.
CALLER = r"""
import json, sys, grpc
from google.protobuf import empty_pb2
from tp_protocol import manager_pb2_grpc
address, how, token, ca_file, name = sys.argv[1:6]
options = [("grpc.ssl_target_name_override", name)]
if how == "plaintext":
    channel = grpc.insecure_channel(address)
else:
    roots = open(ca_file, "rb").read() if ca_file else None
    channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options)
metadata = (("authorization", f"Bearer {token}"),) if token else ()
try:
    manager_pb2_grpc.ManagerStub(channel).Version(empty_pb2.Empty(), timeout=5,
                                                  metadata=metadata)
    print("OK")
except grpc.RpcError as e:
    print(e.code().name)
"""

# A man in the middle at a laptop's loopback: a TLS gRPC server with its own self-signed
# certificate that records every bearer token it is shown.
MITM = r"""
import asyncio, datetime, sys
import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
name, seen = sys.argv[1], sys.argv[2]
key = ec.generate_private_key(ec.SECP256R1())
subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
now = datetime.datetime.now(datetime.UTC)
cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256()))
class Record(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, details):
        with open(seen, "a") as f:
            f.write(repr(details.invocation_metadata) + "\n")
        return await continuation(details)
async def main():
    server = grpc.aio.server(interceptors=[Record()])
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM))]))
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""


def _tp(lap: Laptop, args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


@pytest.fixture(scope="module")
def manager_ns(sandbox: Any, core: Any) -> Iterator[str]:
    """The admin installs the manager with a LoadBalancer Service (laptop 1, port-forward:
    nothing is direct before the install)."""
    yield from install_direct_manager(sandbox, core, "direct")


@pytest.fixture(scope="module")
def lb(core: Any, manager_ns: str) -> dict[str, str]:
    """The LoadBalancer address and the certificate the manager published."""
    return load_balancer(core, manager_ns)


@pytest.fixture(scope="module")
def demo(sandbox: Any) -> str:
    from tp_sandbox import lifecycle

    namespace = f"demo-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    return namespace


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


def _status(lap: Laptop) -> dict[str, Any]:
    done = _tp(lap, "status --format json", timeout=30)
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def test_the_install_publishes_a_load_balancer_address_and_the_managers_certificate(
        lb: dict[str, str]) -> None:
    assert lb["address"].startswith("172.29.0.")
    assert lb["ca"].startswith("-----BEGIN CERTIFICATE-----")
    assert lb["name"].startswith("traffic-manager.direct-")


def test_a_laptop_connects_to_the_manager_at_its_load_balancer_address(
        lap1: Laptop, manager_ns: str, demo: str, lb: dict[str, str]) -> None:
    done = _tp(lap1, f"connect --manager-namespace {manager_ns} -n {demo}", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "direct connect not used" not in done.stdout.lower()
    connection = _status(lap1)["connection"]
    assert connection["manager_path"] == "direct"
    assert connection["manager_address"] == lb["address"]
    assert connection["manager_path_note"] is None
    assert f"direct, TLS to {lb['address']} (LoadBalancer)" in _tp(lap1, "status").stdout


def test_traffic_and_an_intercept_work_with_the_api_server_blocked(
        lap1: Laptop, demo: str) -> None:
    """The API server is out of the data path: with every packet to it dropped in laptop 1,
    cluster names, tunnels and an intercept's routed requests still work."""
    local = lap1.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                       env={"COLOR": "laptop", "PORT": "3000"}, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        done = _tp(lap1, f"intercept {SVC} -n {demo} -p 3000 --http-match x-dev=me "
                         "--mount false")
        assert done.returncode == 0, done.stderr
        block = ("nft add table ip tp-test-block && nft add chain ip tp-test-block out "
                 "'{ type filter hook output priority 0; }' && nft add rule ip "
                 "tp-test-block out ip daddr 172.30.0.1 tcp dport 6443 drop")
        assert lap1.run(block).returncode == 0
        try:
            assert lap1.run(f"{CURL} https://172.30.0.1:6443/readyz -k").returncode != 0
            cluster = lap1.run(f"{CURL} http://{SVC}.{demo}:3000/color")
            assert cluster.returncode == 0 and "laptop" not in cluster.stdout, cluster
            mine = lap1.run(f"{CURL} -H 'x-dev: me' http://{SVC}.{demo}:3000/color")
            assert mine.returncode == 0 and "laptop" in mine.stdout, mine
            # no agent link (it would ride the API server): the manager relayed it
            path = _status(lap1)["data_path"]
            assert path["links"] == [] and path["raw_dials"] >= 1, path
        finally:
            lap1.run("nft delete table ip tp-test-block")
        assert _tp(lap1, f"leave {SVC}-{demo}").returncode == 0
    finally:
        local.terminate()
        local.wait(timeout=10)


def test_a_laptop_without_a_route_to_the_address_falls_back_with_one_line(
        lap2: Laptop, manager_ns: str, demo: str) -> None:
    assert lap2.run(f"ip route del {LB_ROUTE}").returncode == 0
    try:
        done = _tp(lap2, f"connect --manager-namespace {manager_ns} -n {demo}", timeout=120)
        assert done.returncode == 0, done.stderr
        said = [line for line in (done.stdout + done.stderr).splitlines()
                if "direct connect" in line.lower()]
        assert len(said) == 1, done.stdout + done.stderr
        assert "network is unreachable" in said[0] and "port-forward" in said[0], said
        connection = _status(lap2)["connection"]
        assert connection["manager_path"] == "port-forward"
        assert "network is unreachable" in connection["manager_path_note"]
        assert "Not direct" in _tp(lap2, "status").stdout
        answer = lap2.run(f"{CURL} http://{SVC}.{demo}:3000/color")
        assert answer.returncode == 0 and answer.stdout, answer
    finally:
        lap2.run(f"ip route add {LB_ROUTE}")
        _tp(lap2, "quit", timeout=30)


def test_asking_for_direct_where_it_cannot_work_fails_in_one_line(
        lap2: Laptop, manager_ns: str) -> None:
    assert lap2.run(f"ip route del {LB_ROUTE}").returncode == 0
    try:
        done = _tp(lap2, f"connect --manager-namespace {manager_ns} --manager-address direct",
                   timeout=120)
        assert done.returncode != 0
        errors = [line for line in done.stderr.splitlines() if "direct connect" in line]
        assert len(errors) == 1 and "--manager-address auto" in errors[0], done.stderr
    finally:
        lap2.run(f"ip route add {LB_ROUTE}")
        _tp(lap2, "quit", timeout=30)


def _call(lap: Laptop, tmp: Path, lb: dict[str, str], how: str, token: str, *,
          ca: str | None) -> str:
    ca_file = ""
    if ca is not None:
        ca_file = str(tmp / f"ca-{secrets.token_hex(3)}.pem")
        Path(ca_file).write_text(ca)
    done = lap.run([sys.executable, "-c", CALLER, lb["address"], how, token, ca_file,
                    lb["name"]], timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_callers_without_valid_credentials_are_refused_at_the_address(
        sandbox: Any, lap2: Laptop, lb: dict[str, str], tmp_path: Path) -> None:
    kubeconfig = yaml.safe_load(Path(lap2.kubeconfig).read_text())
    token = str(kubeconfig["users"][0]["user"]["token"])
    other_ca = (Path(sandbox.state_dir) / "pki" / "ca.crt").read_text()
    # the control: the pinned certificate and a real token
    assert _call(lap2, tmp_path, lb, "tls", token, ca=lb["ca"]) == "OK"
    assert _call(lap2, tmp_path, lb, "tls", "", ca=lb["ca"]) == "UNAUTHENTICATED"
    assert _call(lap2, tmp_path, lb, "tls", "not-a-token", ca=lb["ca"]) == "UNAUTHENTICATED"
    # TLS without the pinned certificate never gets to send the token
    assert _call(lap2, tmp_path, lb, "tls", token, ca=other_ca) == "UNAVAILABLE"
    assert _call(lap2, tmp_path, lb, "tls", token, ca=None) == "UNAVAILABLE"
    assert _call(lap2, tmp_path, lb, "plaintext", token, ca=None) == "UNAVAILABLE"


def test_a_man_in_the_middle_of_the_address_never_sees_a_token(
        lap2: Laptop, manager_ns: str, lb: dict[str, str], tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    seen.touch()
    mitm = lap2.popen([sys.executable, "-c", MITM, lb["name"], str(seen)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert mitm.stdout is not None
        port = int(mitm.stdout.readline())
        done = _tp(lap2, f"connect --manager-namespace {manager_ns} "
                         f"--manager-address 127.0.0.1:{port}", timeout=120)
        assert done.returncode != 0
        assert "not the certificate the cluster published" in done.stderr, done.stderr
        assert seen.read_text() == ""
    finally:
        mitm.terminate()
        mitm.wait(timeout=10)
        _tp(lap2, "quit", timeout=30)
