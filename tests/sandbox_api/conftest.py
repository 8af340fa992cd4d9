"""Fixtures of this folder; they live in `apiserver_testing` so tests can import its helpers
by a unique module name (several folders have a conftest)."""

from apiserver_testing import (  # noqa: F401
    ADMIN_TOKEN,
    START_TIMEOUT,
    WATCH_HISTORY,
    free_port,
    wait_ready,
    write_kubeconfig,
    Server,
    start_server,
    stop_server,
    server,
    kube,
    core,
    apps,
    _counter,
    namespace,
    wait_for,
)
