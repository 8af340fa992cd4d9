"""Fixtures of this folder; they live in `sandbox_testing` so tests can import its helpers
by a unique module name (several folders have a conftest)."""

from sandbox_testing import (  # noqa: F401
    IS_ROOT,
    Laptop,
    SandboxHandle,
    _module_runnable,
    apps,
    core,
    kube,
    laptop,
    namespace,
    pytest_collection_modifyitems,
    sandbox,
    unique_name,
    wait_for,
)
