"""What `tp connect` pays for before it connects: the CLI imports only the front's connect
path, and the daemon and the CLI keep compiled modules under the user's cache even when
the environment forbids writing bytecode (`tp_protocol.bytecode`)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import tp_daemon.server

import tp_jupyter.api

pytestmark = pytest.mark.timeout(120)

NOT_FOR_CONNECT = ("pandas", "IPython", "ipywidgets", "kubernetes", "tp_cluster", "aiohttp",
                   "pyroute2", "pydantic", "cryptography", "tp_sandbox.lifecycle",
                   "tp_jupyter.widgets", "yaml", "tp_jupyter.sessionfile")
"""Modules a `tp connect` from the terminal has no use for (the daemon talks to the
cluster; tables, widgets and the sandbox's certificates are for other commands)."""

RUN_CLI = """
import atexit, json, sys
modules = sys.argv.pop(1)
atexit.register(lambda: open(modules, "w").write(json.dumps(sorted(sys.modules))))
from tp_jupyter.cli import main
sys.exit(main())
"""
"""The `tp` console script (`main()` reads sys.argv), recording its modules at exit."""


def _tp_connect(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                              list[str]]:
    """`tp connect` with a kubeconfig that is missing: the CLI starts a daemon, asks it to
    connect and gets the one-line error; returns the run and the CLI's modules at exit."""
    modules = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CLI, str(modules), "connect", "--kubeconfig",
         str(tmp_path / "missing.yaml")],
        env=env, capture_output=True, text=True, timeout=100, check=False)
    loaded: list[str] = json.loads(modules.read_text())
    return proc, loaded


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONPYCACHEPREFIX")}
    return {**env, "TP_HOME": str(tmp_path / "tp-home"), **extra}


def _compiled(prefix: Path, module_file: str) -> Path:
    source = Path(module_file).resolve()
    return (prefix / source.parent.relative_to(source.anchor)
            / f"{source.stem}.{sys.implementation.cache_tag}.pyc")


def test_the_cli_connect_path_imports_no_cluster_client_tables_widgets_or_sandbox(
        tmp_path: Path) -> None:
    proc, loaded = _tp_connect(tmp_path, _env(tmp_path))
    assert proc.returncode == 1 and "no kubeconfig at" in proc.stderr, proc.stderr
    assert "tp_jupyter.api" in loaded and "tp_jupyter.daemon_client" in loaded
    heavy = [m for m in loaded
             if any(m == h or m.startswith(h + ".") for h in NOT_FOR_CONNECT)]
    assert heavy == []


def test_without_bytecode_writing_the_cli_and_daemon_compile_once_into_the_users_cache(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(tmp_path, HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    prefix = home / ".cache" / "tp-jupyter" / "pycache"
    proc, _ = _tp_connect(tmp_path, env)
    assert proc.returncode == 1 and "no kubeconfig at" in proc.stderr, proc.stderr
    # (the modules run() imports: the entry module itself is imported before main runs)
    cli_pyc = _compiled(prefix, tp_jupyter.api.__file__)
    daemon_pyc = _compiled(prefix, tp_daemon.server.__file__)  # only the daemon imports it
    assert cli_pyc.is_file() and daemon_pyc.is_file()
    written = {p: p.stat().st_mtime_ns for p in (cli_pyc, daemon_pyc)}

    proc, _ = _tp_connect(tmp_path, env)  # the second start loads what the first compiled
    assert proc.returncode == 1 and "no kubeconfig at" in proc.stderr, proc.stderr
    assert {p: p.stat().st_mtime_ns for p in written} == written


def test_an_explicit_pycache_prefix_is_left_as_the_user_set_it(tmp_path: Path) -> None:
    home, own = tmp_path / "home", tmp_path / "own-prefix"
    env = _env(tmp_path, HOME=str(home), PYTHONDONTWRITEBYTECODE="1",
               PYTHONPYCACHEPREFIX=str(own))
    proc, _ = _tp_connect(tmp_path, env)
    assert proc.returncode == 1, proc.stderr
    assert not (home / ".cache" / "tp-jupyter" / "pycache").exists()


CA_PROBE = """
import asyncio, json, ssl, sys, threading
from tp_daemon.preload import Preload

done, elsewhere = threading.Event(), []


def other_thread() -> None:  # contexts made beside the import keep the system bundle
    while not done.is_set() or not elsewhere:
        elsewhere.append(ssl.create_default_context().cert_store_stats()["x509_ca"])


thread = threading.Thread(target=other_thread)
thread.start()
import tp_daemon.portforward
before = "aiohttp" in sys.modules   # the port-forward itself needs no aiohttp
asyncio.run(Preload(("aiohttp._websocket.helpers",), "t", default_cas=False).start().wait())
done.set()
thread.join()
import aiohttp.connector
print(json.dumps({"aiohttp before": before,
    "aiohttp": aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
    "elsewhere": min(elsewhere),
    "later": ssl.create_default_context().cert_store_stats()["x509_ca"]}))
"""


def test_the_port_forward_needs_no_aiohttp_and_the_masks_import_skips_its_default_cas(
        ) -> None:
    """aiohttp comes in only for its C WebSocket mask (a port-forward's first large frame,
    `tp_daemon.podws`), in a thread whose default TLS contexts get no system bundle."""
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    if not system:
        pytest.skip("this machine has no system CA bundle to skip")
    proc = subprocess.run([sys.executable, "-c", CA_PROBE], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)
    assert counts == {"aiohttp before": False, "aiohttp": 0, "elsewhere": system,
                      "later": system}


def test_a_failed_connect_still_says_why_and_exits_1_through_the_quick_exit(
        tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tp_jupyter.cli", "connect", "--kubeconfig",
         str(tmp_path / "missing.yaml")],
        env=_env(tmp_path), capture_output=True, text=True, timeout=100, check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("tp: no kubeconfig at"), proc.stderr


QUICK_EXIT = """
import atexit, sys, threading, time
from tp_jupyter.quick_exit import exit_now
atexit.register(lambda: print("atexit ran"))
sys.stdout.write("buffered, ")
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.2), print("thread done"))).start()
exit_now(3)
"""


@pytest.mark.parametrize("other_thread", [False, True])
def test_the_quick_exit_flushes_output_runs_atexit_and_keeps_the_status(
        other_thread: bool) -> None:
    proc = subprocess.run([sys.executable, "-c", QUICK_EXIT,
                           "thread" if other_thread else "alone"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3
    # a thread still running gets the interpreter's normal exit (it is joined)
    expected = "buffered, thread done\natexit ran\n" if other_thread else \
        "buffered, atexit ran\n"
    assert proc.stdout == expected
