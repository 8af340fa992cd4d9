"""Fixtures of this folder; they live in `sandbox_testing` so tests can import its helpers
by a unique module name (several folders have a conftest)."""

from sandbox_testing import (  # noqa: F401
    IS_ROOT,
    _module_runnable,
    pytest_collection_modifyitems,
    SandboxHandle,
    unique_name,
    sandbox,
    kube,
    core,
    apps,
    namespace,
    Laptop,
    laptop,
    wait_for,
)
