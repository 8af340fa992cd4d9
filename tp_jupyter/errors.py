"""Errors of the front (CLI, magics, plain-Python API).

    TpJupyterError               tp_protocol.errors: the root every component shares
    └── TpError                  base of everything the front raises on purpose
        ├── UsageError           the user can fix it: bad arguments, unknown names
        ├── DaemonError          the daemon failed a request
        │   └── DaemonNotRunning no daemon answers on the socket
        └── ClusterError         the cluster refused or is unreachable (as the daemon reported)

Every message is one line that says what to do.
"""

from tp_protocol.errors import TpJupyterError


class TpError(TpJupyterError):
    """Base of every error the front raises on purpose."""


class UsageError(TpError):
    """A mistake the user can fix; the message says how."""


class DaemonError(TpError):
    """The workstation daemon failed a request."""


class DaemonNotRunning(DaemonError):
    """No workstation daemon answers (`tp connect` starts one)."""


class ClusterError(TpError):
    """The cluster refused a request or cannot be reached."""
