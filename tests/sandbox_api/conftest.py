"""Fixtures of this folder; they live in `apiserver_testing` so tests can import its helpers
by a unique module name (several folders have a conftest)."""

from apiserver_process import apps, core  # noqa: F401
from apiserver_testing import (  # noqa: F401
    ADMIN_TOKEN,
    WATCH_HISTORY,
    Server,
    kube,
    namespace,
    server,
    start_server,
    stop_server,
    wait_for,
)
