"""Fixtures of this folder; they live in `controllers_testing` so tests can import its helpers
by a unique module name (several folders have a conftest)."""

from apiserver_process import apps, core  # noqa: F401
from controllers_testing import (  # noqa: F401
    ADMIN_TOKEN,
    Cluster,
    cluster,
    controllers,
    kube,
    namespace,
    wait_for,
)
