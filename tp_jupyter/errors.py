"""Errors of the front (CLI, magics, plain-Python API).

    TpError                      base of everything the front raises on purpose
    ├── UsageError               the user can fix it: bad arguments, unknown names
    ├── DaemonError              the daemon is not running or failed a request
    └── ClusterError             the cluster refused or is unreachable (as the daemon reported)

Every message is one line that says what to do.
"""


class TpError(Exception):
    """Base of every error the front raises on purpose."""


class UsageError(TpError):
    """A mistake the user can fix; the message says how."""


class DaemonError(TpError):
    """The workstation daemon is not running or failed a request."""


class ClusterError(TpError):
    """The cluster refused a request or cannot be reached."""
