"""Errors of the front (CLI, magics, plain-Python API).

    TpJupyterError               tp_protocol.errors: the root every component shares
    └── TpError                  base of everything the front raises on purpose
        ├── UsageError           the user can fix it: bad arguments, unknown names
        ├── DaemonError          the daemon failed a request
        │   └── DaemonNotRunning no daemon answers on the socket
        └── ClusterError         the cluster refused or is unreachable (as the daemon reported)

Every message is one line that says what to do. `code` names the kind of error in
machine-readable output (`--format json`: `{"error": {"code": ..., "message": ...}}`); an
error the daemon reported carries the daemon's code (`not_found`, `kubeconfig`, ...).
"""

from tp_protocol.errors import TpJupyterError


class TpError(TpJupyterError):
    """Base of every error the front raises on purpose."""

    code = "error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class UsageError(TpError):
    """A mistake the user can fix; the message says how."""

    code = "usage"


class DaemonError(TpError):
    """The workstation daemon failed a request."""

    code = "daemon"


class DaemonNotRunning(DaemonError):
    """No workstation daemon answers (`tp connect` starts one)."""

    code = "daemon_not_running"


class ClusterError(TpError):
    """The cluster refused a request or cannot be reached."""

    code = "cluster"
