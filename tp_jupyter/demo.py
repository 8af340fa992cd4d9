"""`tp demo`: the seed walkthrough, replayed on the sandbox cluster.

It brings up the default sandbox with two laptops as a team has them -- laptop 1 is alice's,
laptop 2 bob's, each with a developer's kubeconfig (ClusterRole `edit`); the admin installed
the traffic-manager at `tp sandbox up`, and the admin's steps (creating the namespace,
`tp uninstall --everything`) run visibly with the admin's kubeconfig -- deploys the demo
application and then runs, inside the laptops, the commands a developer types in the seed
document: connect,
reach services by name, a global intercept to a local copy answering blue, leave, and the
team workflow with two personal intercepts (alice -> blue on laptop 1, bob -> red on
laptop 2) while unmatched requests still reach the cluster (green); finally the captured
traffic table. Then a StatefulSet of the demo app: `tp list` shows its kind, an intercept
with a live mount of its pod's volumes, a configMap file and the service-account token read
through the mount point by later commands of the laptop. Every step prints the command and
its output and checks the outcome; the first failed check stops the demo with a one-line reason.

The front drives everything through the `tp` command line (sandbox tooling and the daemon),
never through the Kubernetes API.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files

from tp_protocol.settings import get_settings

from tp_jupyter.errors import TpError

NAMESPACE = "telepresence-demo"
SERVICE = f"dataprocessingservice.{NAMESPACE}:3000/color"
STATEFUL = "colorstore"
MOUNT = "/tmp/tp-demo-mount"


class DemoFailed(TpError):
    """A step of the demo did not show what the seed shows."""


@dataclass
class Step:
    """One command of the walkthrough and what its output must show."""

    title: str
    argv: list[str]
    where: str = "host"  # "host", "laptop-1", "laptop-2"
    expect: str | None = None  # substring of stdout
    should_fail: bool = False
    admin: bool = False  # in the laptop, with the admin's kubeconfig instead of its own
    timeout: float = field(default_factory=lambda: get_settings().notebook.demo_step_timeout)


@dataclass
class DemoReport:
    """What the demo ran; prints as the transcript's summary."""

    steps: list[tuple[Step, float]] = field(default_factory=list)

    def __str__(self) -> str:
        total = sum(seconds for _, seconds in self.steps)
        return (f"\nThe seed walkthrough ran on the sandbox: {len(self.steps)} steps checked "
                f"in {total:.1f} s.\nThe sandbox stays up: `tp sandbox down` removes it.")


def _tp(*args: str) -> list[str]:
    return [sys.executable, "-m", "tp_jupyter.cli", *args]


def _in_laptop(k: int, argv: Sequence[str]) -> list[str]:
    return _tp("sandbox", "exec", "--laptop", str(k), "--", *argv)


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def _local_server(color: str, port: int) -> list[str]:
    # A developer's local copy of dataprocessingservice, started in the background inside
    # the laptop; its PID is written so the demo stops exactly what it started.
    return _sh(f"COLOR={color} PORT={port} HOST=127.0.0.1 {shlex.quote(sys.executable)} "
               f"-m tp_sandbox.demo.dataprocessingservice >/tmp/tp-demo-{color}.log 2>&1 & "
               f"echo $! > /tmp/tp-demo-{color}.pid; "
               f"for i in $(seq 50); do curl -sf localhost:{port}/color && exit 0; "
               f"sleep 0.1; done; exit 1")


def _stop_local_server(color: str) -> list[str]:
    return _sh(f"test -f /tmp/tp-demo-{color}.pid && kill $(cat /tmp/tp-demo-{color}.pid); "
               f"rm -f /tmp/tp-demo-{color}.pid; true")


def _curl(header: str | None = None, service: str = SERVICE) -> list[str]:
    argv = ["curl", "-sS", "--max-time", "10"]
    if header:
        argv += ["-H", header]
    return [*argv, service]


def _statefulset_manifest() -> str:
    return str(files("tp_sandbox.manifests") / "demo-statefulset.yaml")


def steps() -> list[Step]:
    """The walkthrough, in the seed's order."""
    l1, l2 = "laptop-1", "laptop-2"
    rollout = get_settings().notebook.demo_rollout_step_timeout
    return [
        Step("Start from a fresh sandbox (removes the default one if it is up)",
             _tp("sandbox", "down")),
        Step("Start the sandbox cluster with two laptops", _tp("sandbox", "up", "--laptops", "2"),
             expect="kubeconfig"),
        Step("The admin creates the namespace (alice and bob, developers, may not)",
             ["kubectl", "create", "ns", NAMESPACE], where=l1, admin=True,
             expect=f"namespace/{NAMESPACE} created"),
        Step("Deploy the demo application", _tp("sandbox", "demo", "-n", NAMESPACE),
             timeout=rollout),
        Step("Before connecting, the laptop cannot reach the cluster", _curl(), where=l1,
             should_fail=True),
        Step("telepresence connect", _tp("connect"), where=l1, expect="Connected to context"),
        Step("The Traffic Manager runs in the ambassador namespace",
             ["kubectl", "get", "pods", "-n", "ambassador"], where=l1, expect="Running"),
        Step("Cluster DNS from the laptop", ["getent", "hosts", "kubernetes.default"], where=l1,
             expect="10.96.0.1"),
        Step("The API server answers through the tunnel",
             ["curl", "-sk", "https://kubernetes.default:443"], where=l1, expect="Unauthorized"),
        Step("The service answers from the cluster", _curl(), where=l1, expect="green"),
        Step("telepresence list", _tp("list", "-n", NAMESPACE), where=l1,
             expect="ready to intercept"),
        Step("A local copy answering blue", _local_server("blue", 3000), where=l1,
             expect="blue"),
        Step("Intercept all traffic of dataprocessingservice",
             _tp("intercept", "dataprocessingservice", "-n", NAMESPACE, "-p", "3000"), where=l1,
             expect="all TCP connections", timeout=rollout),
        Step("telepresence list shows the intercept", _tp("list", "-n", NAMESPACE), where=l1,
             expect="intercepted"),
        Step("The cluster service now answers from the laptop", _curl(), where=l1,
             expect="blue"),
        Step("Leave the intercept", _tp("leave", f"dataprocessingservice-{NAMESPACE}"),
             where=l1),
        Step("Green again", _curl(), where=l1, expect="green"),
        Step("Team workflow: alice intercepts only her requests",
             _tp("intercept", "dataprocessingservice", "-n", NAMESPACE, "-p", "3000",
                 "--name", "alice", "--http-match", "blog-demo-id=alice"), where=l1,
             expect='header("blog-demo-id") ~= regexp("alice")', timeout=rollout),
        Step("Bob connects from his own laptop", _tp("connect"), where=l2,
             expect="Connected to context"),
        Step("Bob's local copy answers red", _local_server("red", 3000), where=l2,
             expect="red"),
        Step("Bob intercepts only his requests",
             _tp("intercept", "dataprocessingservice", "-n", NAMESPACE, "-p", "3000",
                 "--name", "bob", "--http-match", "blog-demo-id=bob"), where=l2,
             expect='header("blog-demo-id") ~= regexp("bob")', timeout=rollout),
        Step("Alice's requests reach alice", _curl("blog-demo-id: alice"), where=l1,
             expect="blue"),
        Step("Bob's requests reach bob", _curl("blog-demo-id: bob"), where=l1, expect="red"),
        Step("Everyone else still gets the cluster", _curl(), where=l2, expect="green"),
        Step("The captured traffic", _tp("traffic"), where=l1, expect="alice"),
        Step("Alice leaves", _tp("leave", "alice"), where=l1),
        Step("Bob leaves", _tp("leave", "bob"), where=l2),
        Step("The demo app as a StatefulSet (a configMap volume, purple)",
             ["kubectl", "apply", "-n", NAMESPACE, "-f", _statefulset_manifest()], where=l1,
             expect=f"statefulset.apps/{STATEFUL} created"),
        Step("Wait for its pod",
             ["kubectl", "wait", "-n", NAMESPACE, f"statefulset/{STATEFUL}",
              "--for=jsonpath={.status.readyReplicas}=1", f"--timeout={rollout:.0f}s"],
             where=l1, expect="condition met", timeout=rollout),
        Step("telepresence list shows the workload kinds", _tp("list", "-n", NAMESPACE),
             where=l1, expect=f"{STATEFUL} (StatefulSet)"),
        Step("Intercept the StatefulSet with a live mount of its pod's volumes",
             _tp("intercept", STATEFUL, "-n", NAMESPACE, "-p", "3000", "--mount", MOUNT),
             where=l1, expect=f"Volume Mount Point: {MOUNT}", timeout=rollout),
        Step("The StatefulSet's service now answers from the laptop",
             _curl(service=f"{STATEFUL}.{NAMESPACE}:3000/color"), where=l1, expect="blue"),
        Step("The pod's configMap file, read on the laptop through the mount",
             ["cat", f"{MOUNT}/etc/colorstore/greeting"], where=l1,
             expect="hello from the colorstore pod"),
        Step("The pod's service-account token is there too",
             ["ls", f"{MOUNT}/var/run/secrets/kubernetes.io/serviceaccount"], where=l1,
             expect="token"),
        Step("Leave the StatefulSet's intercept (unmounts)",
             _tp("leave", f"{STATEFUL}-{NAMESPACE}"), where=l1),
        Step("Alice quits", _tp("quit"), where=l1),
        Step("Bob quits", _tp("quit"), where=l2),
        Step("The admin connects (removing the traffic manager needs cluster rights)",
             _tp("connect"), where=l1, admin=True, expect="Connected to context"),
        Step("The admin removes the agents and the traffic manager",
             _tp("uninstall", "--everything"), where=l1, admin=True, timeout=rollout,
             expect="Removed the traffic-manager"),
        Step("Stop alice's local copy", _stop_local_server("blue"), where=l1),
        Step("Stop bob's local copy", _stop_local_server("red"), where=l2),
    ]


def _argv(step: Step) -> list[str]:
    if step.where == "host":
        return step.argv
    k = step.where.rsplit("-", 1)[1]
    if not step.admin:
        return _in_laptop(int(k), step.argv)
    # a laptop's own kubeconfig is its developer's; the admin's is beside it
    admin = " ".join(shlex.quote(a) for a in _tp("sandbox", "kubeconfig", "--laptop", k,
                                                  "--admin"))
    return _in_laptop(int(k), ["sh", "-c", f'KUBECONFIG="$({admin})" exec "$@"', "sh",
                               *step.argv])


def _where(step: Step) -> str:
    return f"{step.where} as the admin" if step.admin else step.where


def _shown(argv: Sequence[str]) -> str:
    text = " ".join(shlex.quote(a) for a in argv)
    return text.replace(f"{shlex.quote(sys.executable)} -m tp_jupyter.cli", "tp")


def run_demo(out: Callable[[str], None] = print) -> DemoReport:
    """Run every step; raise DemoFailed at the first one that does not show what it must."""
    report = DemoReport()
    for step in steps():
        out(f"\n# {step.title}\n[{_where(step)}] $ {_shown(step.argv)}")
        started = time.monotonic()
        try:
            # stderr carries progress lines: keep them in order with the output
            proc = subprocess.run(_argv(step), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  timeout=step.timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise DemoFailed(f"step '{step.title}' did not finish in {step.timeout:.0f} s; "
                             "see `tp sandbox status` and the logs it names") from e
        seconds = time.monotonic() - started
        output = proc.stdout.rstrip()
        if output:
            out(output)
        failed = proc.returncode != 0
        if failed != step.should_fail:
            want = "fail" if step.should_fail else "succeed"
            raise DemoFailed(f"step '{step.title}' should {want} but exited "
                             f"{proc.returncode}")
        if step.expect is not None and step.expect not in proc.stdout:
            raise DemoFailed(f"step '{step.title}': output does not show {step.expect!r}")
        report.steps.append((step, seconds))
    return report
