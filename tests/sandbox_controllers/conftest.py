"""Fixtures of this folder; they live in `controllers_testing` so tests can import its helpers
by a unique module name (several folders have a conftest)."""

from controllers_testing import (  # noqa: F401
    ADMIN_TOKEN,
    START_TIMEOUT,
    free_port,
    wait_for,
    _ready,
    _stop,
    Cluster,
    cluster,
    controllers,
    kube,
    core,
    apps,
    _counter,
    namespace,
)
