"""The one root of every error a tp-jupyter component raises on purpose.

    TpJupyterError                       tp_protocol.errors (this module)
    ├── intercept_spec.InvalidInterceptSpec   a bad intercept spec (also a ValueError)
    ├── tp_jupyter.errors.TpError              the front's tree (its module docstring)
    ├── tp_daemon.errors.DaemonError           the daemon's tree
    ├── tp_cluster.errors.ClusterError         the manager's and agent's tree
    └── tp_sandbox.errors.SandboxError         the sandbox's tree

Each component keeps its own subclasses beside the code that raises them; the shared
root lets any caller tell "ours, with a one-line message meant for a person" from a bug.
"""

from __future__ import annotations


class TpJupyterError(Exception):
    """Base of every error a tp-jupyter component raises on purpose (one line each)."""
