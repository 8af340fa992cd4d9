"""Errors the daemon raises on purpose; each message is one line that says what to do.

    DaemonError                  base (a tp_protocol.errors.TpJupyterError)
    ├── ConfigError              kubeconfig missing/unreadable, unknown context, bad flag
    ├── ClusterUnreachable       the API server (or the port-forward to the manager) fails
    ├── ClusterRefused           the API server answered but refused (RBAC, quota, ...)
    ├── ManagerError             the traffic-manager did not install, start or answer
    ├── RoutingError             routes/links/nft could not be set up (e.g. an overlap)
    ├── AlreadyConnected         connected elsewhere; `tp quit` first
    ├── NotConnected             the request needs a connection and there is none
    ├── InterceptUsage           bad intercept arguments (port, --http-match, regex, --mount)
    ├── InterceptNotFound        no such workload, namespace, service port or intercept
    ├── InterceptConflict        a name clash or a conflicting (global) intercept
    ├── InterceptTimeout         the agent or the manager did not answer in time
    └── InterceptFailed          the agent refused the intercept, or mounting failed

Each `code` is the name of a `tp.daemon.v1.ErrorCode` (without prefix): it crosses the
daemon API so the front can pick an exit status or exception.
"""

from __future__ import annotations

from tp_protocol.errors import TpJupyterError


class DaemonError(TpJupyterError):
    """Base of every error the daemon raises on purpose."""

    code = "INTERNAL"


class ConfigError(DaemonError):
    """The kubeconfig, context or a flag is wrong; the user fixes it locally."""

    code = "KUBECONFIG"


class ClusterUnreachable(DaemonError):
    """The API server or the port-forward to the manager cannot be reached."""

    code = "CLUSTER_UNREACHABLE"


class ClusterRefused(DaemonError):
    """The API server answered but refused (forbidden, invalid)."""

    code = "PERMISSION"


class ManagerError(DaemonError):
    """The traffic-manager could not be installed, did not start or did not answer."""

    code = "INSTALL"


class RoutingError(DaemonError):
    """Cluster ranges could not be made reachable on this workstation."""

    code = "USAGE"


class AlreadyConnected(DaemonError):
    """Connected with other parameters; the user quits first."""

    code = "CONFLICT"


class NotConnected(DaemonError):
    """The request needs a connection; run `tp connect` first."""

    code = "NOT_CONNECTED"


class InterceptUsage(DaemonError):
    """Bad intercept arguments; the user fixes the command line."""

    code = "USAGE"


class InterceptNotFound(DaemonError):
    """A workload, namespace, service port or intercept that does not exist."""

    code = "NOT_FOUND"


class InterceptConflict(DaemonError):
    """The name is taken, or a global intercept excludes this one."""

    code = "CONFLICT"


class InterceptTimeout(DaemonError):
    """The traffic-agent or the manager did not answer in time."""

    code = "TIMEOUT"


class InterceptFailed(DaemonError):
    """The traffic-agent refused the intercept, or its volumes could not be copied."""

    code = "INTERNAL"
